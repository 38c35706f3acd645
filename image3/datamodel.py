"""Reading exposures and writing products in the JWST datamodel format.

Exposures are read as users have them: stdatamodels ``ImageModel`` (SCI, ERR, DQ, VAR_POISSON,
VAR_RNOISE, VAR_FLAT, AREA if present, meta, gwcs in ``meta.wcs``). Stage results are small
sidecar files (a corrected gwcs, a sky record) applied on read by :func:`load_exposure`, so no
stage writes a 100 MB copy of an exposure. Products are written atomically: to a temporary name
in the destination folder, then renamed, so a crash never leaves a truncated file that looks good.
"""

from __future__ import annotations

import contextlib
import json
import os
import pickle
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from astropy.io import fits
from stdatamodels.jwst import datamodels

from .asn import IMAGING_EXPTYPES, SURFACE_BRIGHTNESS_UNIT
from .errors import InputFileError


@dataclass(frozen=True)
class SkyRecord:
    """One member's skymatch result, the reference's ``meta.background`` fields.

    ``level`` is in the data's units (MJy/sr) or None when it could not be computed;
    ``subtracted`` says whether later stages see data with the level already removed.
    """

    level: float | None
    method: str
    subtracted: bool
    status: str = "COMPLETE"

    def write(self, path: str | Path) -> None:
        atomic_write_text(path, json.dumps(asdict(self), indent=2) + "\n")

    @classmethod
    def read(cls, path: str | Path) -> SkyRecord:
        return cls(**json.loads(Path(path).read_text()))


def atomic_write_text(path: str | Path, text: str) -> None:
    """Write a text file under a temporary name and rename it into place."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


@contextlib.contextmanager
def atomic_path(path: str | Path):
    """Yield a temporary path beside ``path``; rename it to ``path`` if the block succeeds.

    The temporary name keeps the extension so writers that dispatch on it (FITS, ASDF, ECSV)
    still work. On failure the temporary file is removed and nothing is left at ``path``.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".tmp-{os.getpid()}-{path.name}")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def _open_image(path: str | Path, what: str, arrays: tuple[str, ...]) -> datamodels.ImageModel:
    """Open an ImageModel and read ``arrays`` now; any failure is one InputFileError line.

    Reading the arrays here makes a truncated file fail on open, not in the middle of a stage.
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model = datamodels.ImageModel(str(path))
            for name in arrays:
                getattr(model, name)
    except Exception as exc:  # stdatamodels raises many types for corrupt files
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise InputFileError(f"{path}: not a readable JWST image {what} ({reason})") from None
    return model


def open_exposure(path: str | Path) -> datamodels.ImageModel:
    """Open a level-2 imaging exposure; any failure is one :class:`InputFileError` line."""
    path = Path(path)
    if not path.is_file():
        raise InputFileError(f"{path}: file not found")
    model = _open_image(path, "datamodel", ("data", "dq", "err"))
    if model.data is None or model.data.ndim != 2 or model.data.size == 0:
        model.close()
        raise InputFileError(f"{path}: no 2-D SCI array (truncated or corrupt file?)")
    return model


def open_meta(path: str | Path) -> datamodels.ImageModel:
    """Open an exposure for its metadata and gwcs only (arrays stay unread until used)."""
    return _open_image(path, "datamodel", ())


def sci_shape(path: str | Path) -> tuple[int, int]:
    """(ny, nx) of the SCI array, from its header."""
    header = fits.getheader(path, "SCI")
    return int(header["NAXIS2"]), int(header["NAXIS1"])


def open_product(path: str | Path) -> datamodels.ImageModel:
    """Open a resampled product (``_i2d``); failure is one :class:`InputFileError` line."""
    return _open_image(path, "product", ())


def check_exposure(model: datamodels.ImageModel, path: str | Path) -> None:
    """Raise :class:`InputFileError` if ``model`` cannot be used by image3.

    Checks what the reference would fail on later, with a clearer message: imaging exposure
    type, a gwcs, surface-brightness units, and science pixels that are not all unusable.
    """
    exp_type = model.meta.exposure.type
    if exp_type not in IMAGING_EXPTYPES:
        raise InputFileError(f"{path}: exposure type {exp_type!r} is not an imaging exposure")
    if model.meta.wcs is None:
        raise InputFileError(f"{path}: has no WCS (meta.wcs is empty; run assign_wcs first)")
    unit = model.meta.bunit_data
    if unit != SURFACE_BRIGHTNESS_UNIT:
        raise InputFileError(f"{path}: SCI units are {unit!r}, expected {SURFACE_BRIGHTNESS_UNIT!r}")
    data = model.data
    good = np.isfinite(data) & (data != 0)
    if model.dq is not None and model.dq.shape == data.shape:
        good &= (model.dq & datamodels.dqflags.pixel["DO_NOT_USE"]) == 0
    if not good.any():
        raise InputFileError(f"{path}: no usable science pixel (SCI all NaN/zero or DQ all DO_NOT_USE)")


#: What a pickled sidecar depends on: a rerun with other versions must not unpickle it.
_SIDECAR_PACKAGES = ("gwcs", "astropy", "numpy")


def _versions() -> dict[str, str]:
    from importlib.metadata import version

    return {name: version(name) for name in _SIDECAR_PACKAGES}


def write_sidecar(path: str | Path, **items) -> None:
    """Write a work sidecar (a gwcs and small items) as a pickle, atomically.

    Sidecars pass gwcs objects between jobs of one run: unpickling takes ~3 ms where reading
    an ASDF file costs ~0.7 s (asdf loads every extension's manifests once per process).
    They are internal files of the work folder, read only by the same installation (the
    package versions are recorded and checked); users get the WCS in the ``_crf``/``_i2d``.
    """
    with atomic_path(path) as tmp, open(tmp, "wb") as stream:
        pickle.dump({"versions": _versions(), **items}, stream, protocol=pickle.HIGHEST_PROTOCOL)


def read_sidecar(path: str | Path) -> dict:
    """The items of :func:`write_sidecar`'s file; one-line error if it cannot be used."""
    try:
        with open(path, "rb") as stream:
            items = pickle.load(stream)
    except (OSError, pickle.UnpicklingError, EOFError, AttributeError, ImportError) as exc:
        raise InputFileError(f"{path}: unreadable work sidecar ({exc}); delete it and rerun") \
            from None
    if items.pop("versions", None) != _versions():
        raise InputFileError(f"{path}: written by other package versions than installed now; "
                             "rerun with --forcerun find_sources")
    return items


def read_wcs(path: str | Path):
    """The gwcs of a sidecar (:func:`write_wcs`)."""
    return read_sidecar(path)["wcs"]


def write_wcs(path: str | Path, wcs, **extra) -> None:
    """Write a gwcs and small extra items (``status``, ``corrected``) to a sidecar."""
    write_sidecar(path, wcs=wcs, **extra)


def read_wcs_status(path: str | Path) -> dict:
    """The small items stored beside a corrected gwcs (``status``, ``corrected``)."""
    return {k: v for k, v in read_sidecar(path).items() if k in ("status", "corrected")}


def apply_wcs(model: datamodels.ImageModel, wcs) -> None:
    """Replace the exposure's gwcs by a corrected one and update its S_REGION."""
    from .wcs import footprint, s_region  # wcs imports heavy modules only when needed

    model.meta.wcs = wcs
    model.meta.wcsinfo.s_region = s_region(footprint(wcs, model.data.shape))


def apply_sky(model: datamodels.ImageModel, sky: SkyRecord) -> None:
    """Record a skymatch result in ``meta.background``; subtract it if the record says so."""
    if sky.level is None:
        model.meta.cal_step.skymatch = sky.status
        return
    if sky.subtracted:
        model.data -= np.float32(sky.level)
    model.meta.background.level = float(sky.level)
    model.meta.background.subtracted = bool(sky.subtracted)
    model.meta.background.method = sky.method
    model.meta.cal_step.skymatch = sky.status


def sky_level_to_remove(model: datamodels.ImageModel) -> float:
    """The sky level later stages remove on the fly, as the reference does.

    Non-zero only when a level is recorded and was not already subtracted from the data.
    """
    bkg = model.meta.background
    if bkg.level is not None and bkg.subtracted is False:
        return float(bkg.level)
    return 0.0


def load_exposure(path: str | Path, wcs: str | Path | None = None,
                  sky: str | Path | None = None) -> datamodels.ImageModel:
    """Open an exposure and apply the stage sidecars (corrected gwcs, sky record) on read."""
    model = open_exposure(path)
    if wcs is not None:
        items = read_sidecar(wcs)
        apply_wcs(model, items["wcs"])
        model.meta.cal_step.tweakreg = items.get("status", "COMPLETE")
    if sky is not None:
        apply_sky(model, SkyRecord.read(sky))
    return model


def save_model(model, path: str | Path) -> Path:
    """Save a datamodel to ``path`` (FITS or ASDF by extension), atomically.

    ``meta.filename`` is set to the final name, not the temporary one.
    """
    path = Path(path)
    model.meta.filename = path.name
    with atomic_path(path) as tmp:
        # A Path (not str) keeps stdatamodels from renaming meta.filename to the temporary name.
        if path.suffix == ".fits":
            model.to_fits(tmp, overwrite=True)
        else:
            model.to_asdf(tmp)
    return path

