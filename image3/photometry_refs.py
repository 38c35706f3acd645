"""Photometric reference data of the source catalogue: APCORR and ABVEGAOFFSET.

APCORR files (FITS, extension ``APCORR``; stdatamodels ``NrcImgApcorrModel``,
``NisImgApcorrModel``, ``MirImgApcorrModel``, ``FgsImgApcorrModel``) give, per
bandpass and encircled-energy fraction, the aperture radius (native detector
pixels), the aperture correction (total flux / background-subtracted
aperture flux) and the sky annulus radii (native pixels). Rows are selected
by (filter, pupil) for NIRCam and NIRISS, (filter, subarray) for MIRI; FGS
files have one set of rows.

ABVEGAOFFSET files (ASDF, ``ABVegaOffsetModel``) give ``abvega_offset`` =
m_AB − m_Vega per (filter, pupil) for NIRCam/NIRISS, filter for MIRI and
detector for FGS.

Without an APCORR file, :func:`approximate_apcorr_table` builds one from a
diffraction-limited model of the JWST PSF (see there); without an
ABVEGAOFFSET file the offset is 0, as in the reference. Both cases log a
warning.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from functools import lru_cache
from importlib.resources import files
from pathlib import Path

import numpy as np
from astropy.table import QTable, Table
from scipy.special import j1
from stdatamodels.jwst import datamodels

from .errors import ConfigError, InputFileError, StepError

log = logging.getLogger(__name__)

__all__ = [
    "abvega_offset",
    "aperture_params",
    "approximate_apcorr_table",
    "read_abvega_offset",
    "read_apcorr",
]

_APCORR_MODELS = {
    "NIRCAM": datamodels.NrcImgApcorrModel,
    "NIRISS": datamodels.NisImgApcorrModel,
    "MIRI": datamodels.MirImgApcorrModel,
    "FGS": datamodels.FgsImgApcorrModel,
}
_FILTERS_FILE = "jwst_imaging_filters.ecsv"


def read_apcorr(path: str | Path, instrument: str) -> Table:
    """Read the ``apcorr_table`` of an APCORR reference file.

    Parameters
    ----------
    path : str or Path
        FITS APCORR reference file.
    instrument : str
        ``NIRCAM``, ``NIRISS``, ``MIRI`` or ``FGS``; picks the datamodel.

    Returns
    -------
    astropy.table.Table
        Columns as in the file (string values stripped); ``meta['filename']``
        names the file for later error messages.
    """
    model_class = _APCORR_MODELS.get(str(instrument).upper())
    if model_class is None:
        raise InputFileError(f"{path}: no imaging APCORR format for instrument {instrument!r}")
    try:
        with model_class(str(path)) as model:
            table = Table(np.asarray(model.apcorr_table))
    except Exception as error:  # any failure to read means an unusable file
        raise InputFileError(f"{path}: cannot read an APCORR table: {error}") from error
    return _tidy(table, path)


def read_abvega_offset(path: str | Path) -> Table:
    """Read the ``abvega_offset`` table of an ABVEGAOFFSET reference file (ASDF).

    Returns
    -------
    astropy.table.Table
        Columns ``filter``/``pupil`` or ``detector`` and ``abvega_offset``
        (mag, m_AB − m_Vega); ``meta['filename']`` names the file.
    """
    try:
        with datamodels.ABVegaOffsetModel(str(path)) as model:
            table = Table(model.abvega_offset)
    except Exception as error:  # any failure to read means an unusable file
        raise InputFileError(f"{path}: cannot read an ABVEGAOFFSET table: {error}") from error
    return _tidy(table, path)


def aperture_params(
    apcorr_table: Table | None,
    *,
    instrument: str,
    filter: str | None,
    pupil: str | None,
    subarray: str | None = "FULL",
    aperture_ee: Sequence[int] = (30, 50, 70),
    pixel_scale_ratio: float | None = 1.0,
) -> dict:
    """Aperture radii, corrections and sky annulus for the three EE apertures.

    Parameters
    ----------
    apcorr_table : astropy.table.Table or None
        From :func:`read_apcorr`; None uses :func:`approximate_apcorr_table`
        (and warns that total fluxes are approximate).
    instrument, filter, pupil, subarray : str
        Exposure metadata selecting the rows (see module docstring).
    aperture_ee : 3 ints
        Encircled-energy percentages, strictly increasing, in 1..99; each
        must match a row's ``eefraction`` × 100.
    pixel_scale_ratio : float or None
        Output / native pixel scale of the image; radii in the table are in
        native pixels and are divided by it. None is taken as 1 (warning).

    Returns
    -------
    dict
        ``aperture_ee`` (int array), ``aperture_radii`` (pixels of the image),
        ``aperture_corrections``, ``bkg_aperture_inner_radius``,
        ``bkg_aperture_outer_radius`` (pixels of the image) — the reference's
        ``aperture_params``, written into the catalogue meta — and ``approximate``
        (True when the radii come from the model, not an APCORR table).
    """
    aperture_ee = _validated_ee(aperture_ee)
    approximate = apcorr_table is None
    if approximate:
        apcorr_table = approximate_apcorr_table(instrument, filter, pupil, subarray)
        log.warning(
            "no APCORR reference file given: aperture radii and corrections come from a "
            "diffraction-limited model of the %s PSF, so the catalog's total fluxes "
            "(aper_total_*) are approximate",
            instrument,
        )
    if pixel_scale_ratio is None:
        log.warning("pixel_scale_ratio unknown: assuming the native pixel scale (ratio 1)")
        pixel_scale_ratio = 1.0

    selector = _apcorr_selector(instrument, filter, pupil, subarray)
    rows = _select(apcorr_table, selector, "APCORR")
    source = apcorr_table.meta.get("filename", "APCORR table")
    percent = np.round(np.asarray(rows["eefraction"], dtype=float) * 100).astype(int)
    chosen = []
    for ee in aperture_ee:
        match = np.flatnonzero(percent == ee)
        if match.size != 1:
            found = "no row" if match.size == 0 else "several rows"
            raise InputFileError(
                f"{source}: {found} for encircled energy {ee}% with {_describe(selector)}"
            )
        chosen.append(rows[match[0]])

    annuli = {(float(row["skyin"]), float(row["skyout"])) for row in chosen}
    if len(annuli) != 1:
        raise InputFileError(
            f"{source}: the rows for {_describe(selector)} have different sky annuli "
            f"{sorted(annuli)}"
        )
    skyin, skyout = annuli.pop()
    return {
        "aperture_ee": aperture_ee,
        "aperture_radii": np.array([float(row["radius"]) for row in chosen]) / pixel_scale_ratio,
        "aperture_corrections": np.array([float(row["apcorr"]) for row in chosen]),
        "bkg_aperture_inner_radius": skyin / pixel_scale_ratio,
        "bkg_aperture_outer_radius": skyout / pixel_scale_ratio,
        "approximate": approximate,
    }


def abvega_offset(
    table: Table | None,
    *,
    instrument: str,
    filter: str | None,
    pupil: str | None,
    detector: str | None,
) -> float:
    """m_AB − m_Vega (mag) for the exposure's bandpass.

    ``table`` from :func:`read_abvega_offset`, or None: then 0.0, with a
    warning that Vega magnitudes equal AB magnitudes and are not correct.
    """
    if table is None:
        log.warning(
            "no ABVEGAOFFSET reference file given: the catalog's Vega magnitudes equal "
            "its AB magnitudes and are not correct"
        )
        return 0.0
    instrument = str(instrument).upper()
    if instrument in ("NIRCAM", "NIRISS"):
        selector = {"filter": filter, "pupil": pupil}
    elif instrument == "MIRI":
        selector = {"filter": filter}
    elif instrument == "FGS":
        selector = {"detector": detector}
    else:
        raise InputFileError(f"instrument {instrument!r} has no imaging AB-Vega offsets")
    rows = _select(table, selector, "ABVEGAOFFSET")
    if len(rows) != 1:
        source = table.meta.get("filename", "ABVEGAOFFSET table")
        raise InputFileError(f"{source}: several rows for {_describe(selector)}")
    return float(rows["abvega_offset"][0])


def approximate_apcorr_table(
    instrument: str, filter: str | None, pupil: str | None, subarray: str | None = "FULL"
) -> Table:
    """An APCORR-format table from a diffraction-limited JWST PSF model.

    Model: the 18-segment hexagonal primary (1.32 m flat to flat, 7 mm gaps)
    with three 0.1 m secondary-mirror struts, no wavefront error,
    polychromatic over a top hat of the bandpass (:data:`_FILTERS_FILE`),
    integrated over one native detector pixel. The encircled energy EE(r) is
    computed exactly from the optical transfer function (pupil
    autocorrelation), so the whole PSF, far wings included, is normalised.

    Rows for EE = 10 … 90 %: ``radius`` where the model reaches that EE
    (native pixels); one sky annulus ``skyin`` = max(5, 1.5 r80),
    ``skyout`` = skyin + max(5, r80) (native pixels, rounded up to 0.5);
    ``apcorr`` = 1 / (EE(r) − A(r) · PSF flux per unit area in the annulus),
    i.e. it also restores the PSF light that the local-background
    subtraction removes.

    Known biases: real JWST PSFs have wavefront errors (Strehl ≈ 0.8 at
    1 µm), detector charge diffusion/IPC and, for MIRI, the cruciform
    artefact, all of which widen the PSF; radii are therefore too small and
    corrections slightly off, most at short wavelengths (a few percent in
    total flux).

    Raises
    ------
    StepError
        If the bandpass is not in the shipped filter list.
    """
    instrument = str(instrument).upper()
    filters = _filter_table()
    element = _bandpass_element(instrument, filter, pupil, filters)
    row = filters[(filters["instrument"] == instrument) & (filters["element"] == element)]
    if len(row) != 1:
        raise StepError(
            f"no approximate aperture corrections for {instrument} {filter}/{pupil}; "
            "give an APCORR reference file"
        )
    pivot = row["pivot_um"][0].to_value("m")
    width = row["bandwidth_um"][0].to_value("m")
    pixel_rad = row["pixel_scale_arcsec"][0].to_value("rad")

    ee_fraction, radii, apcorr, skyin, skyout = _model_apertures(pivot, width, pixel_rad)
    table = Table(
        {
            "eefraction": ee_fraction,
            "radius": radii,
            "apcorr": apcorr,
            "skyin": np.full(ee_fraction.size, skyin),
            "skyout": np.full(ee_fraction.size, skyout),
        }
    )
    selector = _apcorr_selector(instrument, filter, pupil, subarray)
    for position, (name, value) in enumerate(selector.items()):
        table.add_column(str(value), name=name, index=position)
    table.meta["filename"] = f"approximate {instrument} {element} model"
    return table


# ---- diffraction model -------------------------------------------------------------------

_SEGMENT_FLAT_M = 1.32
_SEGMENT_GAP_M = 0.007
_STRUT_WIDTH_M = 0.1
_STRUT_ANGLES_DEG = (90.0, 210.0, 330.0)
_PUPIL_SAMPLES = 256  # across the pupil; EE error ≈ 0.5/N (checked against the Airy EE)
_SUPERSAMPLE = 4  # anti-aliasing of segment edges and gaps
_N_WAVELENGTHS = 7
_EE_FRACTIONS = np.round(np.arange(0.1, 0.91, 0.1), 2)


@lru_cache(maxsize=64)
def _model_apertures(pivot_m, width_m, pixel_rad):
    """(eefraction, radius, apcorr, skyin, skyout) of the model PSF, radii in native pixels."""
    pupil, sample_m = _jwst_pupil()
    wavelengths = pivot_m + width_m * np.linspace(-0.5, 0.5, _N_WAVELENGTHS)
    lambda_over_d_px = wavelengths.max() / (pupil.shape[0] * sample_m) / pixel_rad
    radii_px = np.geomspace(0.01, 30.0 * lambda_over_d_px + 30.0, 500)
    ee = np.mean(
        [_encircled_energy(pupil, sample_m, w, pixel_rad, radii_px * pixel_rad) for w in wavelengths],
        axis=0,
    )
    ee = np.maximum.accumulate(ee)

    radius = np.interp(_EE_FRACTIONS, ee, radii_px)
    r80 = np.interp(0.8, ee, radii_px)
    skyin = max(5.0, np.ceil(3.0 * r80) / 2.0)
    skyout = skyin + max(5.0, np.ceil(2.0 * r80) / 2.0)
    ee_in, ee_out = np.interp([skyin, skyout], radii_px, ee)
    annulus_flux_per_px2 = (ee_out - ee_in) / (skyout**2 - skyin**2)
    apcorr = 1.0 / (_EE_FRACTIONS - radius**2 * annulus_flux_per_px2)
    return _EE_FRACTIONS, radius, apcorr, skyin, skyout


@lru_cache(maxsize=1)
def _jwst_pupil():
    """Transmission (0..1) of the JWST entrance pupil on a square grid, and the grid step (m)."""
    pitch = _SEGMENT_FLAT_M + _SEGMENT_GAP_M
    # flat-topped hexagons; lattice vectors across flats at 30° and 90°
    a1 = pitch * np.array([np.cos(np.radians(30)), np.sin(np.radians(30))])
    a2 = pitch * np.array([0.0, 1.0])
    centres = [
        i * a1 + j * a2
        for i in range(-2, 3)
        for j in range(-2, 3)
        if max(abs(i), abs(j), abs(i + j)) in (1, 2)
    ]
    extent = 2.0 * max(np.hypot(*c) for c in centres) + 2.0 * _SEGMENT_FLAT_M / np.sqrt(3)
    n_fine = _PUPIL_SAMPLES * _SUPERSAMPLE
    axis = (np.arange(n_fine) + 0.5) / n_fine * extent - extent / 2
    x, y = np.meshgrid(axis, axis)

    normals = [(np.cos(np.radians(a)), np.sin(np.radians(a))) for a in (30.0, 90.0, 150.0)]
    inside = np.zeros(x.shape, dtype=bool)
    for cx, cy in centres:
        dx, dy = x - cx, y - cy
        inside |= np.all(
            [np.abs(nx * dx + ny * dy) <= _SEGMENT_FLAT_M / 2 for nx, ny in normals], axis=0
        )
    for angle in np.radians(_STRUT_ANGLES_DEG):
        along = x * np.cos(angle) + y * np.sin(angle)
        across = -x * np.sin(angle) + y * np.cos(angle)
        inside &= ~((along > 0) & (np.abs(across) <= _STRUT_WIDTH_M / 2))

    blocks = (_PUPIL_SAMPLES, _SUPERSAMPLE, _PUPIL_SAMPLES, _SUPERSAMPLE)
    pupil = inside.reshape(blocks).mean(axis=(1, 3))
    return pupil, extent / _PUPIL_SAMPLES


def _encircled_energy(pupil, sample_m, wavelength_m, pixel_rad, radii_rad, n_bins=2048):
    """Encircled energy of the pixel-integrated PSF of ``pupil`` at the given radii.

    EE(r) = Σ_f OTF(f) · sinc(p f_x) sinc(p f_y) · r J1(2π r |f|) / |f| · Δf²
    (Parseval with the Fourier transform of a disk of radius r), where the
    OTF is the normalised pupil autocorrelation and p the pixel size. The
    radial kernel is evaluated on ``n_bins`` bins of |f|. ``pixel_rad`` 0
    means no pixel integration.
    """
    n = pupil.shape[0]
    padded = np.zeros((2 * n, 2 * n))
    padded[:n, :n] = pupil
    autocorrelation = np.fft.irfft2(np.abs(np.fft.rfft2(padded)) ** 2, s=padded.shape)
    otf = np.fft.fftshift(autocorrelation / autocorrelation[0, 0])

    freq = np.arange(-n, n) * sample_m / wavelength_m  # cycles per radian
    fx, fy = np.meshgrid(freq, freq)
    weight = otf * np.sinc(pixel_rad * fx) * np.sinc(pixel_rad * fy) * (freq[1] - freq[0]) ** 2
    rho = np.hypot(fx, fy)
    support = otf > 1e-9
    edges = np.linspace(0.0, rho[support].max() * (1 + 1e-9), n_bins + 1)
    binned = np.bincount(
        np.digitize(rho[support], edges) - 1, weights=weight[support], minlength=n_bins
    )
    centres = 0.5 * (edges[1:] + edges[:-1])
    radii = np.asarray(radii_rad)[:, None]
    kernel = radii * j1(2 * np.pi * radii * centres) / centres
    return kernel @ binned


# ---- selection helpers -------------------------------------------------------------------


@lru_cache(maxsize=1)
def _filter_table():
    return QTable.read(files("image3") / "data" / _FILTERS_FILE, format="ascii.ecsv")


def _bandpass_element(instrument, filter, pupil, filters):
    """The wheel element that defines the bandpass: a filter in the pupil wheel wins over CLEAR."""
    if instrument == "FGS":
        return "N/A"
    known = set(filters["element"][filters["instrument"] == instrument])
    for element in (pupil, filter):
        if element is not None and str(element).upper() in known:
            return str(element).upper()
    return str(filter).upper()


def _apcorr_selector(instrument, filter, pupil, subarray):
    instrument = str(instrument).upper()
    if instrument in ("NIRCAM", "NIRISS"):
        return {"filter": filter, "pupil": pupil}
    if instrument == "MIRI":
        return {"filter": filter, "subarray": subarray}
    if instrument == "FGS":
        return {}
    raise InputFileError(f"instrument {instrument!r} has no imaging aperture corrections")


def _select(table, selector, kind):
    """Rows of ``table`` whose columns equal ``selector`` (case-insensitive); error if none."""
    source = table.meta.get("filename", f"{kind} table")
    keep = np.ones(len(table), dtype=bool)
    for column, value in selector.items():
        if column not in table.colnames:
            raise InputFileError(f"{source}: no column {column!r} to select {_describe(selector)}")
        keep &= np.char.upper(np.asarray(table[column], dtype=str)) == str(value).upper()
    if not keep.any():
        raise InputFileError(f"{source}: no row for {_describe(selector)}")
    return table[keep]


def _describe(selector):
    return " ".join(f"{key}={value}" for key, value in selector.items()) or "this instrument"


def _validated_ee(aperture_ee):
    ee = np.asarray(aperture_ee)
    if ee.shape != (3,) or np.any(ee != np.round(ee)):
        raise ConfigError(f"aperture_ee must be 3 integers, not {aperture_ee!r}")
    ee = ee.astype(int)
    if np.any(np.diff(ee) <= 0) or ee.min() < 1 or ee.max() > 99:
        raise ConfigError(f"aperture_ee {tuple(ee)} must increase strictly within 1..99")
    return ee


def _tidy(table, path):
    for name in table.colnames:
        if table[name].dtype.kind in "SU":
            table[name] = np.char.strip(np.asarray(table[name], dtype=str))
    table.meta["filename"] = Path(path).name
    return table
