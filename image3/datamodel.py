"""Reading exposures and writing products in the JWST datamodel format.

Exposures are read as users have them: stdatamodels ``ImageModel`` (SCI, ERR, DQ, VAR_POISSON,
VAR_RNOISE, VAR_FLAT, AREA if present, meta, gwcs in ``meta.wcs``). Stage results are small
sidecar files (a corrected gwcs, a sky record) applied on read, so no stage writes a 100 MB
copy of an exposure. Jobs that compute read an :class:`Exposure` (:func:`read_exposure`: the
arrays they need and :class:`ExposureMeta`, with the identity of the file read); jobs that write
a product carrying an exposure's metadata open its whole datamodel
(:func:`read_exposure_model`), with the same sidecars applied. Products are written atomically: to a temporary name
in the destination folder, then renamed, so a crash never leaves a truncated file that looks good.
"""

from __future__ import annotations

import contextlib
import json
import os
import warnings
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from astropy.io import fits

from .asn import IMAGING_EXPTYPES, SURFACE_BRIGHTNESS_UNIT
from .dqflags import DO_NOT_USE
from .errors import InputFileError, first_line
from .sidecar import read_sidecar, read_work_json, write_sidecar

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
        record = read_work_json(path)
        try:
            return cls(**record)
        except TypeError:
            raise InputFileError(f"{path}: not a sky record of image3; delete it and rerun") \
                from None


def atomic_write_text(path: str | Path, text: str) -> None:
    """Write a text file under a temporary name and rename it into place; on failure (a full
    disk) nothing is left, neither at ``path`` nor the temporary file."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        tmp.write_text(text)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


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
        reason = first_line(exc)
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


#: FITS primary-header keywords recording the catalogue of an absolute alignment: provenance
#: item -> (keyword, comment). Not in the datamodel schema: kept in ``extra_fits``.
REFCAT_KEYWORDS = {
    "abs_refcat_name": ("ABSREFCT", "absolute alignment: reference catalogue file"),
    "abs_refcat_sha256": ("ABSRFSHA", "its SHA-256, first 16 hex digits"),
    "abs_refcat_epoch": ("ABSRFEPO", "[yr] Julian epoch its positions were moved to"),
}


def record_reference_catalog(model: datamodels.ImageModel, provenance: dict) -> None:
    """Write the absolute alignment's catalogue (``provenance``: the items of tweakreg's fit
    report meta) to the model's primary header as :data:`REFCAT_KEYWORDS`, replacing earlier
    values."""
    header = model.instance.setdefault("extra_fits", {}).setdefault("PRIMARY", {}) \
        .setdefault("header", [])
    keywords = {keyword for keyword, _ in REFCAT_KEYWORDS.values()}
    header[:] = [card for card in header if card[0] not in keywords]
    header += [[keyword, provenance[item], comment]
               for item, (keyword, comment) in REFCAT_KEYWORDS.items() if item in provenance]


def reference_catalog_of(model: datamodels.ImageModel) -> dict:
    """The provenance :func:`record_reference_catalog` wrote to ``model`` (empty if none)."""
    cards = model.instance.get("extra_fits", {}).get("PRIMARY", {}).get("header", [])
    item_of = {keyword: item for item, (keyword, _) in REFCAT_KEYWORDS.items()}
    return {item_of[card[0]]: card[1] for card in cards if card[0] in item_of}


def apply_wcs(model: datamodels.ImageModel, wcs) -> None:
    """Replace the exposure's gwcs by a corrected one and update its S_REGION."""
    from .wcs import footprint, s_region  # wcs imports heavy modules only when needed

    model.meta.wcs = wcs
    model.meta.wcsinfo.s_region = s_region(footprint(wcs, model.data.shape))


def apply_sky(model: datamodels.ImageModel, sky: SkyRecord) -> None:
    """Record a skymatch result in a datamodel's ``meta.background``; subtract it if the
    record says so."""
    if sky.level is None:
        model.meta.cal_step.skymatch = sky.status
        return
    if sky.subtracted:
        model.data -= np.float32(sky.level)
    model.meta.background.level = float(sky.level)
    model.meta.background.subtracted = bool(sky.subtracted)
    model.meta.background.method = sky.method
    model.meta.cal_step.skymatch = sky.status


def read_exposure_model(path: str | Path, wcs: str | Path | None = None,
                        sky: str | Path | None = None) -> datamodels.ImageModel:
    """The whole datamodel of an exposure with its stage sidecars (corrected gwcs, sky record)
    applied, for a job that writes a product carrying the exposure's metadata (the ``_crf``,
    the ``_i2d``'s base). Jobs that compute read :func:`read_exposure`."""
    model = open_exposure(path)
    if wcs is not None:
        items = read_sidecar(wcs)
        apply_wcs(model, items["wcs"])
        model.meta.cal_step.tweakreg = items.get("status", "COMPLETE")
        if items.get("refcat"):
            record_reference_catalog(model, items["refcat"])
    if sky is not None:
        apply_sky(model, SkyRecord.read(sky))
    return model


@dataclass(frozen=True)
class InputIdentity:
    """Which file something was read from: its path, size (bytes) and modification and
    status-change times (ns since the epoch), so a sidecar made from it can be checked
    against the file it is applied to."""

    path: str
    size: int
    mtime_ns: int
    ctime_ns: int

    @classmethod
    def of(cls, path: str | Path) -> InputIdentity:
        stat = os.stat(path)
        return cls(str(Path(path).resolve()), stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns)

    def check(self, path: str | Path, sidecar: str | Path) -> None:
        """Raise :class:`InputFileError` unless ``path`` is still the file ``sidecar`` was
        made from (same size and modification time: a copy or move that keeps them passes)."""
        now = InputIdentity.of(path)
        if (now.size, now.mtime_ns) != (self.size, self.mtime_ns):
            raise InputFileError(f"{sidecar}: made from another version of {path} (size or "
                                 "modification time differ): remove the work folder and rerun")


#: The exposure times :class:`ExposureMeta` keeps: ``meta.exposure`` attribute names (s, MJD).
EXPOSURE_TIMES = ("measurement_time", "effective_exposure_time", "exposure_time", "duration",
                  "start_time", "end_time")
#: The ``meta.instrument`` items it keeps.
INSTRUMENT_ITEMS = ("detector", "filter", "pupil")
#: The ``meta.cal_step`` items it keeps: image3's steps run before the final resample.
STEP_ITEMS = ("tweakreg", "skymatch", "outlier_detection")


@dataclass(frozen=True)
class ExposureMeta:
    """What the stages read of an exposure besides its arrays: its gwcs, exposure times
    (:data:`EXPOSURE_TIMES`), instrument (:data:`INSTRUMENT_ITEMS`), sky record
    (``meta.background``; None when the file holds no level), step statuses
    (:data:`STEP_ITEMS`) and the identity of the file read."""

    wcs: object
    times: dict
    instrument: dict
    sky: SkyRecord | None
    steps: dict
    identity: InputIdentity

    @classmethod
    def of(cls, model: datamodels.ImageModel, path: str | Path) -> ExposureMeta:
        """The metadata of an opened datamodel read from ``path``."""
        meta, bkg = model.meta, model.meta.background
        sky = None if bkg.level is None else SkyRecord(
            float(bkg.level), bkg.method, bool(bkg.subtracted), meta.cal_step.skymatch or "COMPLETE")
        return cls(meta.wcs, {k: getattr(meta.exposure, k) for k in EXPOSURE_TIMES},
                   {k: getattr(meta.instrument, k) for k in INSTRUMENT_ITEMS}, sky,
                   {k: getattr(meta.cal_step, k) for k in STEP_ITEMS}, InputIdentity.of(path))

    def with_sidecars(self, wcs: str | Path | None, sky: str | Path | None) -> ExposureMeta:
        """This metadata with a corrected gwcs sidecar and a sky record applied."""
        meta = self
        if wcs is not None:
            items = read_sidecar(wcs)
            meta = replace(meta, wcs=items["wcs"],
                           steps=meta.steps | {"tweakreg": items.get("status", "COMPLETE")})
        if sky is not None:
            record = SkyRecord.read(sky)
            meta = replace(meta, steps=meta.steps | {"skymatch": record.status},
                           sky=record if record.level is not None else meta.sky)
        return meta


#: The arrays of an exposure the stages read: attribute name -> FITS extension.
PIXEL_ARRAYS = {"data": "SCI", "dq": "DQ", "err": "ERR", "var_poisson": "VAR_POISSON",
                "var_rnoise": "VAR_RNOISE", "var_flat": "VAR_FLAT"}


@dataclass
class Exposure:
    """An exposure as the stages compute with it: ``data`` (SCI, MJy/sr), the other arrays of
    :data:`PIXEL_ARRAYS` that were asked for and exist (else None), and :class:`ExposureMeta`.
    A sky level the record says is subtracted has been removed from ``data``."""

    data: np.ndarray
    dq: np.ndarray | None
    err: np.ndarray | None
    var_poisson: np.ndarray | None
    var_rnoise: np.ndarray | None
    var_flat: np.ndarray | None
    meta: ExposureMeta

    @classmethod
    def of(cls, model: datamodels.ImageModel, meta: ExposureMeta,
           arrays: tuple[str, ...] = tuple(PIXEL_ARRAYS)) -> Exposure:
        """The ``arrays`` of an opened datamodel (not copied) with ``meta``."""
        wanted = {"data", *arrays}
        return cls(meta=meta, **{name: getattr(model, name) if name in wanted else None
                                 for name in PIXEL_ARRAYS})


def read_exposure(path: str | Path, geometry: str | Path | None = None,
                  wcs: str | Path | None = None, sky: str | Path | None = None,
                  arrays: tuple[str, ...] = tuple(PIXEL_ARRAYS)) -> Exposure:
    """An exposure with its stage sidecars applied: the corrected gwcs of ``wcs`` and the sky
    record of ``sky`` (its level subtracted from ``data`` if the record says so).

    Only ``arrays`` (names of :data:`PIXEL_ARRAYS`; ``data`` always) are kept. With the
    member's ``geometry`` sidecar (find_sources wrote it, with the :class:`ExposureMeta` of
    the ``_cal``, checked here to be the same file) the arrays are read with astropy alone: a
    datamodel's first open loads every asdf extension (~0.7 s per process) and reads every
    array. Without it the datamodel is opened and checked (:func:`check_exposure`).
    """
    if geometry is not None:
        meta = read_sidecar(geometry)["meta"]
        meta.identity.check(path, geometry)
        exposure = Exposure(meta=meta, **_read_arrays(path, {"data", *arrays}))
    else:
        with open_exposure(path) as model:
            check_exposure(model, path)
            exposure = Exposure.of(model, ExposureMeta.of(model, path), arrays)
    exposure.meta = exposure.meta.with_sidecars(wcs, sky)
    if sky is not None and exposure.meta.sky is not None and exposure.meta.sky.subtracted:
        exposure.data = exposure.data - np.float32(exposure.meta.sky.level)
    return exposure


def _read_arrays(path: str | Path, wanted: set[str]) -> dict:
    """The ``wanted`` arrays of :data:`PIXEL_ARRAYS` (None for the others and absent ones), in
    native byte order, read with astropy."""
    try:
        with fits.open(path, memmap=False, lazy_load_hdus=True) as hdul:
            names = {hdu.name for hdu in hdul}
            arrays = {attr: (np.asarray(hdul[ext].data).astype(hdul[ext].data.dtype.newbyteorder("="))
                             if ext in names and attr in wanted else None)
                      for attr, ext in PIXEL_ARRAYS.items()}
    except (OSError, KeyError, ValueError) as exc:
        raise InputFileError(f"{path}: not a readable JWST image ({exc})") from None
    if arrays["data"] is None:
        raise InputFileError(f"{path}: no SCI array")
    return arrays


@dataclass(frozen=True)
class MemberFiles:
    """Where one association member's exposure and stage sidecars are: its ``cal`` (a
    ``_cal``, or the ``_crf`` after outlier detection) and the geometry (find_sources),
    corrected gwcs (tweakreg) and sky record (skymatch) sidecars, None when that stage does
    not run (or, for the geometry, when ``cal`` is a ``_crf``)."""

    name: str
    group_id: str
    cal: str | Path
    geometry: str | Path | None = None
    wcs: str | Path | None = None
    sky: str | Path | None = None

    def read(self, arrays: tuple[str, ...] = tuple(PIXEL_ARRAYS)) -> Exposure:
        """:func:`read_exposure` of this member."""
        return read_exposure(self.cal, self.geometry, self.wcs, self.sky, arrays)

    def read_model(self) -> datamodels.ImageModel:
        """:func:`read_exposure_model` of this member."""
        return read_exposure_model(self.cal, self.wcs, self.sky)


def sky_level_to_remove(exposure: Exposure) -> float:
    """The sky level later stages remove on the fly, as the reference does.

    Non-zero only when a level is recorded and was not already subtracted from the data.
    """
    sky = exposure.meta.sky
    return float(sky.level) if sky is not None and not sky.subtracted else 0.0


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

