"""Work sidecars: small pickles passing gwcs objects (and a few values) between the jobs of a run.

Unpickling a gwcs takes ~3 ms where reading an ASDF file costs ~0.7 s in a fresh process (asdf
loads every installed extension's manifests once per process). Sidecars are internal files of
the work folder, read only by the installation that wrote them (package versions are recorded
and checked); users get the WCS in the ``_crf`` and ``_i2d`` products.
"""

from __future__ import annotations

import functools
import os
import pickle
from pathlib import Path

from .errors import InputFileError

__all__ = ["read_sidecar", "write_sidecar"]

#: What a pickled sidecar depends on: a rerun with other versions must not unpickle it.
_SIDECAR_PACKAGES = ("gwcs", "astropy", "numpy")


@functools.cache
def _versions() -> dict[str, str]:
    from importlib.metadata import version

    return {name: version(name) for name in _SIDECAR_PACKAGES}


def write_sidecar(path: str | Path, **items) -> None:
    """Write a work sidecar (gwcs objects and small items) as a pickle, atomically."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "wb") as stream:
        pickle.dump({"versions": _versions(), **items}, stream, protocol=pickle.HIGHEST_PROTOCOL)
    os.replace(tmp, path)


def read_sidecar(path: str | Path) -> dict:
    """The items of :func:`write_sidecar`'s file; one-line error if it cannot be used."""
    try:
        with open(path, "rb") as stream:
            items = pickle.load(stream)
    except (OSError, pickle.UnpicklingError, EOFError, AttributeError, ImportError) as exc:
        raise InputFileError(f"{path}: unreadable work sidecar ({exc}); delete it and rerun") \
            from None
    if items.pop("versions", None) != _versions():
        raise InputFileError(f"{path}: a work file of another installation (gwcs, astropy or "
                             "numpy versions differ): remove the work folder and rerun")
    return items
