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
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import TYPE_CHECKING

import numpy as np
from astropy.io import fits

from .asn import IMAGING_EXPTYPES, SURFACE_BRIGHTNESS_UNIT
from .dqflags import DO_NOT_USE
from .errors import InputFileError
from .sidecar import read_sidecar, write_sidecar

if TYPE_CHECKING:  # imported where a datamodel is opened: ~1 s per process that needs none
    from stdatamodels.jwst import datamodels


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
    from stdatamodels.jwst import datamodels

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


def new_image(**arrays) -> datamodels.ImageModel:
    """A new ``ImageModel`` (``arrays``: its data, err, ... as numpy arrays), for products."""
    from stdatamodels.jwst import datamodels

    return datamodels.ImageModel(**arrays)


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
        good &= (model.dq & DO_NOT_USE) == 0
    if not good.any():
        raise InputFileError(f"{path}: no usable science pixel (SCI all NaN/zero or DQ all DO_NOT_USE)")


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


#: The arrays of an exposure that drizzling reads: attribute name -> FITS extension.
PIXEL_ARRAYS = {"data": "SCI", "dq": "DQ", "err": "ERR", "var_poisson": "VAR_POISSON",
                "var_rnoise": "VAR_RNOISE", "var_flat": "VAR_FLAT"}


def pixel_meta(model: datamodels.ImageModel) -> dict:
    """The metadata :func:`read_pixels` gives back, taken from an opened exposure."""
    exp, bkg = model.meta.exposure, model.meta.background
    return {"exposure": {k: getattr(exp, k) for k in
                         ("measurement_time", "effective_exposure_time", "exposure_time")},
            "background": {k: getattr(bkg, k) for k in ("level", "subtracted", "method")}}


@dataclass
class ExposurePixels:
    """An exposure's arrays and the metadata the drizzle and sky-statistics jobs use, read
    without stdatamodels: the arrays with astropy (a datamodel's first open loads every asdf
    extension, ~0.7 s per process, and reads every array), the gwcs and metadata from the
    member's geometry sidecar, which find_sources wrote from the datamodel itself.

    Attributes follow ``ImageModel``'s (``data``, ``dq``, ``err``, ``var_*``, ``meta.wcs``,
    ``meta.exposure``, ``meta.background``, ``meta.cal_step``), so the functions that read
    those from a datamodel (``prepare_arrays``, ``exposure_time``, :func:`sky_level_to_remove`,
    :func:`apply_sky`, ``drizzle_single``, ``member_sky_stats``' inputs) take this too.
    """

    data: np.ndarray
    dq: np.ndarray | None
    err: np.ndarray | None
    var_poisson: np.ndarray | None
    var_rnoise: np.ndarray | None
    var_flat: np.ndarray | None
    meta: SimpleNamespace

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def read_pixels(path: str | Path, geometry: str | Path, wcs: str | Path | None = None,
                sky: str | Path | None = None,
                arrays: tuple[str, ...] = tuple(PIXEL_ARRAYS)) -> ExposurePixels:
    """:class:`ExposurePixels` of a member, with the corrected gwcs and sky record applied as
    :func:`load_exposure` does; only ``arrays`` (names of :data:`PIXEL_ARRAYS`, ``data``
    always) are read, the others are None."""
    items = read_sidecar(geometry)
    meta = SimpleNamespace(
        wcs=items["wcs"], exposure=SimpleNamespace(**items["meta"]["exposure"]),
        background=SimpleNamespace(**items["meta"]["background"]),
        cal_step=SimpleNamespace(tweakreg=None, skymatch=None))
    try:
        with fits.open(path, memmap=False, lazy_load_hdus=True) as hdul:
            names = {hdu.name for hdu in hdul}
            wanted = {"data", *arrays}
            arrays = {attr: (np.asarray(hdul[ext].data).astype(hdul[ext].data.dtype.newbyteorder("="))
                             if ext in names and attr in wanted else None)
                      for attr, ext in PIXEL_ARRAYS.items()}
    except (OSError, KeyError, ValueError) as exc:
        raise InputFileError(f"{path}: not a readable JWST image ({exc})") from None
    if arrays["data"] is None:
        raise InputFileError(f"{path}: no SCI array")
    pixels = ExposurePixels(meta=meta, **arrays)
    if wcs is not None:
        corrected = read_sidecar(wcs)
        meta.wcs = corrected["wcs"]
        meta.cal_step.tweakreg = corrected.get("status", "COMPLETE")
    if sky is not None:
        apply_sky(pixels, SkyRecord.read(sky))
    return pixels


def read_member(path: str | Path, geometry: str | Path | None = None,
                wcs: str | Path | None = None, sky: str | Path | None = None,
                arrays: tuple[str, ...] = tuple(PIXEL_ARRAYS)):
    """A member with its sidecars applied: :func:`read_pixels` (only ``arrays``) when its
    geometry sidecar exists (find_sources wrote it), else :func:`load_exposure`."""
    if geometry is not None:
        return read_pixels(path, geometry, wcs=wcs, sky=sky, arrays=arrays)
    return load_exposure(path, wcs=wcs, sky=sky)


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

