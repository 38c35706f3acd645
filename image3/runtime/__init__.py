"""How jobs run, not what they compute: the job server of local runs (``jobserver``), the edge
every job script runs inside (``runjob``: logging, one-line errors), work shared out over
forked processes (``forked``) and photutils imported without its slow start
(``photutils_import``)."""
