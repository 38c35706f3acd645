"""What a finished tiled run keeps for members added later (``tiles.keep_previous``).

When members are added to a finished run of sky tiles, the members already made keep their
alignment (tweakreg's gwcs sidecar), their sky level (skymatch's record) and the tiled grid
keeps its projection and tile frame, unless the user asks for a refit. Each of those joins
copies what it wrote into ``<work>/kept/<step>/`` with a manifest: the step's parameters and,
per member, the SHA-256 of the files its result was computed from. On the next run the join
takes a member's kept file, byte for byte, when the parameters are the same and its own files
are unchanged; its consumers then see the same checksum and Snakemake does not redo them.

The kept files are not outputs of any rule (Snakemake deletes a job's outputs before it runs
again). The step that takes a kept file reads it first, as any work sidecar
(:func:`image3.sidecar.read_sidecar`, :func:`image3.sidecar.read_work_json`): a damaged one
stops the job with one line naming it, and is never copied on. The tiled catalogue's background
mesh is kept per tile in ``<work>/kept/background_mesh/`` on another criterion, a tolerance
(:mod:`image3.tile_background`; a damaged one is made again).
"""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path

from .datamodel import atomic_write_text

__all__ = ["KEPT_FOLDER", "kept_files", "keep_files", "whole_groups"]

#: Under a product's work folder.
KEPT_FOLDER = "kept"
_MANIFEST = "manifest.json"


def _digest(paths: Sequence[str | Path]) -> str:
    """SHA-256 over the bytes of ``paths`` in order (each file's length first)."""
    digest = hashlib.sha256()
    for path in paths:
        data = Path(path).read_bytes()
        digest.update(len(data).to_bytes(8, "little") + data)
    return digest.hexdigest()


def _canonical(params) -> str:
    return json.dumps(params, sort_keys=True, default=str)


def _step_folder(work: str | Path, step: str) -> Path:
    return Path(work, KEPT_FOLDER, step)


def keep_files(work: str | Path, step: str, params, outputs: Mapping[str, str | Path],
               inputs: Mapping[str, Sequence[str | Path]]) -> None:
    """Keep ``outputs`` (key -> file a join wrote) of ``step`` run with ``params`` (JSON-able)
    from ``inputs`` (key -> the files that result was computed from), replacing what was kept
    before; the manifest is written last, so an interrupted copy keeps nothing."""
    folder = _step_folder(work, step)
    manifest = folder / _MANIFEST
    manifest.unlink(missing_ok=True)
    folder.mkdir(parents=True, exist_ok=True)
    for key, path in outputs.items():
        shutil.copyfile(path, folder / f"{key}{''.join(Path(path).suffixes)}")
    record = {"params": _canonical(params),
              "members": {key: {"file": f"{key}{''.join(Path(outputs[key]).suffixes)}",
                                "inputs": _digest(inputs.get(key, ()))} for key in outputs}}
    atomic_write_text(manifest, json.dumps(record, indent=1) + "\n")


def kept_files(work: str | Path, step: str, params,
               inputs: Mapping[str, Sequence[str | Path]]) -> dict[str, Path]:
    """The files kept for ``step`` (key -> path) that still apply: kept with the same
    ``params``, from inputs whose bytes equal those of ``inputs`` now. Empty on a first run,
    after a change of parameters, or when nothing applies."""
    folder = _step_folder(work, step)
    try:
        record = json.loads((folder / _MANIFEST).read_text())
    except (OSError, ValueError):
        return {}
    if record.get("params") != _canonical(params):
        return {}
    found = {}
    for key, files in inputs.items():
        entry = record.get("members", {}).get(key)
        if entry and (folder / entry["file"]).is_file() and entry["inputs"] == _digest(files):
            found[key] = folder / entry["file"]
    return found


def whole_groups(found: Mapping[str, Path],
                 groups: Mapping[str, Sequence[str]]) -> dict[str, Path]:
    """The members of ``found`` (member -> kept file) whose whole group (``groups``: group ->
    its members) is found: a group moves (or is levelled) as one, so it is kept whole or
    fitted again whole."""
    return {m: found[m] for names in groups.values() if all(n in found for n in names)
            for m in names}
