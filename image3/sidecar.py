"""Work sidecars: small pickles passing gwcs objects (and a few values) between the jobs of a run,
and the readers of the work folder's JSON files (:func:`read_work_json`).

Unpickling a gwcs takes ~3 ms where reading an ASDF file costs ~0.7 s in a fresh process (asdf
loads every installed extension's manifests once per process). Sidecars are internal files of
the work folder, read only by the installation that wrote them (package versions are recorded
and checked); users get the WCS in the ``_crf`` and ``_i2d`` products.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import pickle
from pathlib import Path
from typing import Any

from .errors import InputFileError, first_line

__all__ = ["read_sidecar", "read_work_json", "write_sidecar"]

#: What a pickled sidecar depends on: a rerun with other versions must not unpickle it.
_SIDECAR_PACKAGES = ("gwcs", "astropy", "numpy")


@functools.cache
def _versions() -> dict[str, str]:
    from importlib.metadata import version

    return {name: version(name) for name in _SIDECAR_PACKAGES}


#: A sidecar file: this tag, the BLAKE2b digest of the pickle, the pickle (a damaged file is
#: refused before it is unpickled: a changed byte inside an array would still unpickle).
_MAGIC = b"image3-sidecar-1\n"
_DIGEST_BYTES = 32


def write_sidecar(path: str | Path, **items) -> None:
    """Write a work sidecar (gwcs objects and small items) as a pickle, atomically."""
    path = Path(path)
    payload = pickle.dumps({"versions": _versions(), **items}, protocol=pickle.HIGHEST_PROTOCOL)
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        with open(tmp, "wb") as stream:
            stream.write(_MAGIC + hashlib.blake2b(payload, digest_size=_DIGEST_BYTES).digest()
                         + payload)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)  # nothing left behind by a failed write (a full disk)


def read_sidecar(path: str | Path) -> dict:
    """The items of :func:`write_sidecar`'s file; one-line error if it cannot be used."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise InputFileError(f"{path}: unreadable work sidecar ({exc.strerror or exc}); delete it "
                             "and rerun") from None
    if not data.startswith(_MAGIC):
        raise InputFileError(f"{path}: not a work sidecar of this image3 version: remove the work "
                             "folder and rerun")
    digest = data[len(_MAGIC):len(_MAGIC) + _DIGEST_BYTES]
    payload = data[len(_MAGIC) + _DIGEST_BYTES:]
    if hashlib.blake2b(payload, digest_size=_DIGEST_BYTES).digest() != digest:
        raise InputFileError(f"{path}: damaged work sidecar (checksum differs); delete it and rerun")
    try:
        items = pickle.loads(payload)
    except Exception as exc:  # noqa: BLE001 - unpickling can raise almost anything
        reason = first_line(exc)
        raise InputFileError(f"{path}: unreadable work sidecar ({reason}); delete it and rerun") \
            from None
    if not isinstance(items, dict):
        raise InputFileError(f"{path}: unreadable work sidecar (not image3's); delete it and rerun")
    if items.pop("versions", None) != _versions():
        raise InputFileError(f"{path}: a work file of another installation (gwcs, astropy or "
                             "numpy versions differ): remove the work folder and rerun")
    return items


def read_work_json(path: str | Path) -> Any:
    """A JSON file of the work folder; one-line InputFileError naming it if it is damaged."""
    try:
        return json.loads(Path(path).read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        reason = first_line(exc)
        raise InputFileError(f"{path}: unreadable work file ({reason}); delete it and rerun") \
            from None
