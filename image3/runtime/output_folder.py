"""What a run claims of its output folder before it builds its job graph: a lock that every
run writing to the folder shares, and the record of the members each product was made from.

The lock is ``.image3.lock`` in ``output_dir``, an exclusive ``flock`` the Snakemake process
holds until it exits (the system releases it when the process dies, killed or not). Snakemake's
own lock lives in the folder it runs in (``--directory``), so two runs started from different
folders, or by ``image3 run`` from elsewhere, would otherwise write the same files together.

The members record (``members.json`` in a product's work folder) lists the members the product
was last made from, with their ``_cal`` and ``_crf``: a member that disappears between runs is
then noticed (:func:`missing_members`), not silently dropped while its old ``_crf`` stays.
"""

from __future__ import annotations

import fcntl
import json
import os
import time
from collections.abc import Mapping
from pathlib import Path

from ..errors import Image3Error

__all__ = ["LOCK_FILE", "MEMBERS_FILE", "OutputLocked", "at_start", "lock", "missing_members",
           "read_members", "settle", "write_members"]

LOCK_FILE = ".image3.lock"
MEMBERS_FILE = "members.json"

_held: dict[str, int] = {}  # folder -> descriptor of its lock, kept open for the process's life
_pending: list[tuple[str, dict, list[str]]] = []  # (work folder, members record, stale products)


class OutputLocked(Image3Error):
    """Another running image3 writes to the same output folder."""


def lock(folder: str | Path) -> None:
    """Take the output folder's lock for the rest of this process (created with the folder);
    OutputLocked names the process holding it. Taking it again is a no-op."""
    folder = Path(folder)
    key = str(folder.resolve())
    if key in _held:
        return
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / LOCK_FILE
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(fd, 512, 0).decode(errors="replace").strip() or "another process"
        os.close(fd)
        raise OutputLocked(f"{folder}: another image3 run writes here ({holder}); wait for it "
                           "to end, or give this run another output_dir") from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, (f"pid {os.getpid()}, started {time.strftime('%Y-%m-%d %H:%M:%S')} "
                   f"in {Path.cwd()}\n").encode(), 0)
    _held[key] = fd


def read_members(work: str | Path) -> dict[str, dict]:
    """The members record of the product whose work folder is ``work``: member name ->
    {"cal": path, "crf": path}; empty when there is none (a first run) or it is unreadable."""
    try:
        return json.loads(Path(work, MEMBERS_FILE).read_text())
    except (OSError, ValueError):
        return {}


def write_members(work: str | Path, members: Mapping[str, Mapping[str, str]]) -> None:
    """Record the members a product is made from (see :func:`read_members`)."""
    path = Path(work, MEMBERS_FILE)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(dict(members), indent=1) + "\n")
    os.replace(tmp, path)


def missing_members(previous: Mapping[str, Mapping[str, str]], current: Mapping[str, object],
                    listed: set[str]) -> tuple[dict, dict]:
    """Split the members of the previous run that this one does not use into (gone, dropped):
    ``gone`` still listed in the association (their ``_cal`` path is in ``listed``) but
    missing or unusable now; ``dropped`` no longer listed (the user took them out). Both map
    member name -> its record."""
    gone, dropped = {}, {}
    for name, record in previous.items():
        if name in current:
            continue
        (gone if record.get("cal") in listed else dropped)[name] = dict(record)
    return gone, dropped


def at_start(work: str | Path, members: Mapping[str, Mapping[str, str]],
             stale: list[str]) -> None:
    """Note, while the workflow is parsed, what :func:`settle` does once the run really starts
    (not in a dry run): record ``members`` in ``work`` and remove the ``stale`` products."""
    _pending.append((str(work), {k: dict(v) for k, v in members.items()}, list(stale)))


def settle() -> list[str]:
    """Do what :func:`at_start` noted (the ``onstart`` of a run); returns a line per removed
    product."""
    lines = []
    while _pending:
        work, members, stale = _pending.pop(0)
        for path in stale:
            if Path(path).exists():
                Path(path).unlink()
                lines.append(f"{path}: removed (its member is no longer used)")
        write_members(work, members)
    return lines
