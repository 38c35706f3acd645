"""photutils, imported without its scan of every installed distribution.

When first imported, photutils 3.0 (``photutils.utils._optional_deps``) calls
``importlib.metadata.packages_distributions()`` only to learn the distribution name of its
own import package; that call reads the file list of every installed distribution: 0.52-0.57 s
here, in every job that finds sources (``find_sources``, ``source_catalog``), as long as the
rest of photutils' import together. The distribution of the ``photutils`` import package is
``photutils``, which is also photutils' own answer when the mapping lacks it, so this module
imports photutils while that function returns an empty mapping, and puts it back at once.
Import it before any ``photutils`` module; everything else about photutils is unchanged
(``tests/test_photutils_import.py`` compares its optional-dependency table with a normal
import's).
"""

from __future__ import annotations

import contextlib
import importlib.metadata


@contextlib.contextmanager
def _without_distribution_scan():
    scan = importlib.metadata.packages_distributions
    importlib.metadata.packages_distributions = dict
    try:
        yield
    finally:
        importlib.metadata.packages_distributions = scan


with _without_distribution_scan():
    import photutils  # noqa: F401
