"""Which file a member's work was made from, recorded where every job that reads it looks.

A member's identity is :class:`image3.datamodel.InputIdentity`: its resolved path, size,
modification time and change time (ns). The change time is what a copy that keeps the old date
(``cp -p``, ``rsync -t``), or a rewrite followed by ``touch -d``, cannot set back, so a new file
under an old date is seen; it also moves with ``chmod``/``chown`` and a rename, which then redo
the member's work (the safe error).

Each member's identity is written to a small JSON stamp in its work folder when it differs from
the stamp's (:func:`update_stamp`, while the workflow is parsed, before the job graph is built);
every job that reads the member's ``_cal`` lists the stamp as an input, so a member whose file
changed, or a work folder holding another association's member of the same name, has its work
redone (Snakemake redoes what is older than its inputs), whatever folder the run starts from.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

from .datamodel import InputIdentity, atomic_write_text

__all__ = ["signature", "update_stamp"]


def update_stamp(stamp: str | Path, path: str | Path) -> bool:
    """Write the identity of ``path`` to ``stamp`` (JSON) unless it already holds it; returns
    whether it was written (the member's work is then redone). An unreadable stamp is
    rewritten."""
    stamp = Path(stamp)
    current = asdict(InputIdentity.of(path))
    try:
        if json.loads(stamp.read_text()) == current:
            return False
    except (OSError, ValueError):
        pass
    stamp.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(stamp, json.dumps(current) + "\n")
    return True


def signature(path: str | Path) -> str:
    """The identity of ``path`` as a short text, for caches keyed on the file's version."""
    identity = InputIdentity.of(path)
    return f"{identity.size}:{identity.mtime_ns}:{identity.ctime_ns}"
