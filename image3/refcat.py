"""Catalogue files read by tweakreg: users' source lists and absolute reference catalogues.

Source lists (the reference's ``use_custom_catalogs``) are any table astropy reads, with pixel
positions in columns ``x``/``y``, ``xcentroid``/``ycentroid`` or ``x_centroid``/``y_centroid``
(0-based pixels of the exposure). Which exposure gets which list comes from a ``catfile`` (two
whitespace-separated columns: exposure file name, catalogue path relative to the catfile; one
column = no custom catalogue for that exposure) or else from the association members'
``tweakreg_catalog`` keys, with the reference's precedence.

Absolute reference catalogues (``abs_refcat``) are local files only: ecsv, csv or fits tables
with RA and Dec columns in degrees (names case-insensitive), or a previous ``_cat.ecsv`` whose
``sky_centroid`` column holds the positions. The reference's network catalogues (Gaia through
the STScI service) are refused with one line: this workflow never uses the network.

A Gaia-format file (as the Gaia archive writes it) may also carry, names case-insensitive:

- ``pmra``, ``pmdec`` [mas/yr]: proper motion, ``pmra`` including cos δ (μα* = μα cos δ);
- ``ref_epoch`` [Julian year, TCB; 2016.0 for Gaia DR3], a column or a table meta key: the
  epoch of ``ra``/``dec``. Proper motions without it are refused (one line);
- a G magnitude, ``phot_g_mean_mag`` (Gaia archive) or ``mag`` (the reference's saved
  ``fit_gaiadr3_ref.ecsv``), for the limits ``abs_gmag_bright``/``abs_gmag_faint``;
- ``source_id`` or ``objID``, kept as ``objID`` in the saved catalogue.

Units written in the file (ecsv, fits) are converted; without one the units above are assumed.
Masked or NaN proper motions and magnitudes are missing values.

:func:`reference_catalog` makes the catalogue the absolute fit uses: rows outside the G limits
(or without G, when a limit is set and the file has a G column) dropped, then positions with a
proper motion moved to the association's epoch, the mean of its exposures' mid-times
(:func:`propagate`). tweakwcs fits all exposures as one rigid body to one table, so there is
one epoch; the exposures of an association are minutes to days apart, and the log states the
largest position difference that spread makes (tests/test_gaia_refcat.py: 0.6 µas for 20 mas/yr
stars and exposures spanning 32 minutes; 20 mas/yr over ±1 day would be 0.055 mas, far below a
NIRCam centroid's 1-3 mas). The file's name and SHA-256 (:func:`file_sha256`) go with the table
(``meta``) into the fit report.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from .errors import ConfigError, InputFileError, first_line

if TYPE_CHECKING:  # astropy.table is imported where a table is read
    from astropy.table import Table

# astropy.table and .coordinates are imported by the functions that read tables: the Snakefile
# imports this module for its parse-time checks (custom catalogues, abs_refcat).

log = logging.getLogger(__name__)

__all__ = [
    "NETWORK_CATALOGS",
    "check_abs_refcat",
    "custom_catalogs",
    "parse_catfile",
    "at_epoch",
    "file_sha256",
    "julian_year",
    "propagate",
    "read_reference_catalog",
    "read_source_list",
    "reference_catalog",
    "within_magnitudes",
]

#: Names the reference resolves to a catalogue service (stcal GSSS + S3 names).
NETWORK_CATALOGS = ("GAIAREFCAT", "GAIADR3", "GAIADR2", "GAIADR1", "GAIADR3_S3")

_POSITION_NAMES = {axis: (axis, f"{axis}centroid", f"{axis}_centroid") for axis in ("x", "y")}


def _read_table(path: Path, what: str) -> Table:
    from astropy.table import Table

    if not path.is_file():
        raise InputFileError(f"{path}: {what} not found")
    try:
        return Table.read(path)
    except Exception as exc:  # astropy raises many types for unreadable tables
        reason = first_line(exc)
        raise InputFileError(f"{path}: cannot read {what} ({reason})") from None


def read_source_list(path: str | Path) -> Table:
    """A user's source list as a table ``id, xcentroid, ycentroid, flux`` (+ ``weight`` if given).

    ``id`` is 1..N when absent, ``flux`` NaN when absent. Raises :class:`InputFileError` when
    the file cannot be read or has no recognisable x/y columns.
    """
    from astropy.table import Table

    path = Path(path)
    table = _read_table(path, "custom source catalogue")
    columns = {}
    for axis, names in _POSITION_NAMES.items():
        found = [n for n in names if n in table.colnames]
        if not found:
            raise InputFileError(
                f"{path}: custom source catalogue needs a column {' or '.join(map(repr, names))}")
        columns[f"{axis}centroid"] = np.asarray(table[found[0]], dtype=float)
    n = len(table)
    out = Table()
    has = set(table.colnames)
    out["id"] = np.asarray(table["id"], dtype=np.int64) if "id" in has else np.arange(1, n + 1)
    out["xcentroid"] = columns["xcentroid"]
    out["ycentroid"] = columns["ycentroid"]
    out["flux"] = np.asarray(table["flux"], dtype=float) if "flux" in has else np.full(n, np.nan)
    if "weight" in has:
        out["weight"] = np.asarray(table["weight"], dtype=float)
    return out


def parse_catfile(catfile: str | Path) -> dict[str, Path | None]:
    """Exposure file name -> custom catalogue path (None: find sources) from a ``catfile``.

    Catalogue paths are relative to the catfile's folder; blank lines and ``#`` lines are
    skipped. More than two columns on a line is a :class:`ConfigError`.
    """
    catfile = Path(catfile)
    if not catfile.is_file():
        raise ConfigError(f"tweakreg.catfile: {catfile}: file not found")
    entries: dict[str, Path | None] = {}
    for number, line in enumerate(catfile.read_text().splitlines(), start=1):
        words = line.split()
        if not words or words[0].startswith("#"):
            continue
        if len(words) > 2:
            raise ConfigError(f"tweakreg.catfile: {catfile}, line {number}: more than two columns")
        entries[words[0]] = (catfile.parent / words[1]) if len(words) == 2 else None
    return entries


def custom_catalogs(members: Iterable[tuple[str, Path, Path | None]],
                    catfile: str = "") -> dict[str, Path | None]:
    """Member name -> custom catalogue path (or None) under ``use_custom_catalogs``.

    ``members`` are (name, exposure file path, ASN ``tweakreg_catalog`` or None). As the
    reference: a non-empty ``catfile`` decides alone (keys are exposure file names) and one
    naming no catalogue at all turns custom catalogues off with a warning; without a catfile the
    association's ``tweakreg_catalog`` keys are used. A named catalogue that does not exist is
    an :class:`InputFileError`.
    """
    members = list(members)
    if catfile.strip():
        entries = parse_catfile(catfile)
        if not any(entries.values()):
            log.warning("use_custom_catalogs is set but %s names no catalogue: sources will be "
                        "found in every exposure", catfile)
        catalogs = {name: entries.get(Path(path).name) for name, path, _ in members}
    else:
        catalogs = {name: asn_catalog for name, _, asn_catalog in members}
    for name, path in catalogs.items():
        if path is not None and not Path(path).is_file():
            raise InputFileError(f"{path}: custom source catalogue of {name} not found")
    return catalogs


def check_abs_refcat(abs_refcat: str) -> Path | None:
    """The absolute reference catalogue file, or None when absolute alignment is off.

    Raises :class:`ConfigError` (one line) for a network catalogue name or a missing file.
    """
    name = (abs_refcat or "").strip()
    if not name or name.lower() == "none":
        return None
    if name.upper() in NETWORK_CATALOGS:
        raise ConfigError(
            f"tweakreg.abs_refcat = {name!r}: network catalogues are not available offline; "
            "pass a reference catalogue file (ecsv/csv/fits with RA/Dec columns, such as the "
            "field's Gaia table with pmra, pmdec, ref_epoch, or a _cat.ecsv)")
    path = Path(name)
    if not path.is_file():
        raise ConfigError(f"tweakreg.abs_refcat: {path}: file not found")
    return path


def read_reference_catalog(path: str | Path) -> Table:
    """An absolute reference catalogue as a table: float ``RA``, ``DEC`` [deg] at the
    catalogue's epoch and, when the file has them (see the module docstring), ``pmra``,
    ``pmdec`` [mas/yr] with ``ref_epoch`` [Julian year], ``mag`` (G) and ``objID``.

    RA/Dec names are case-insensitive; a ``sky_centroid`` (SkyCoord) column is used when there
    is no RA/Dec, as the reference does so a jwst ``_cat.ecsv`` works directly. Rows with a
    non-finite position are dropped. ``meta``: ``name`` (the file name; tweakwcs logs it) and
    ``sha256`` (:func:`file_sha256`). Raises :class:`InputFileError` (one line) for a file
    without positions, with several columns of one name, with units that do not convert, or
    with proper motions but no epoch.
    """
    from astropy.coordinates import SkyCoord
    from astropy.table import Table

    path = Path(path)
    table = _read_table(path, "reference catalogue")
    ra_name, dec_name = (_column_name(table, path, name) for name in ("ra", "dec"))
    sky_name = _column_name(table, path, "sky_centroid")
    if ra_name and dec_name:
        ra = _values(table, path, ra_name, "deg")
        dec = _values(table, path, dec_name, "deg")
    elif sky_name and isinstance(table[sky_name], SkyCoord):
        sky = table[sky_name].icrs
        ra, dec = sky.ra.deg, sky.dec.deg
    else:
        raise InputFileError(f"{path}: reference catalogue has neither RA/Dec columns nor a "
                             "sky_centroid column")
    out = Table({"RA": ra, "DEC": dec})
    pm_names = [_column_name(table, path, name) for name in ("pmra", "pmdec")]
    if any(pm_names):
        if not all(pm_names):
            raise InputFileError(f"{path}: reference catalogue has only one of pmra, pmdec")
        out["pmra"] = _values(table, path, pm_names[0], "mas/yr")
        out["pmdec"] = _values(table, path, pm_names[1], "mas/yr")
        out["ref_epoch"] = _epoch(table, path)
    mag_name = (_column_name(table, path, "phot_g_mean_mag")
                or _column_name(table, path, "mag"))
    if mag_name:
        out["mag"] = _values(table, path, mag_name, "mag")
    id_name = _column_name(table, path, "source_id") or _column_name(table, path, "objID")
    if id_name:
        out["objID"] = table[id_name]
    out = out[np.isfinite(ra) & np.isfinite(dec)]
    out.meta.update(name=path.name, sha256=file_sha256(path))
    return out


def _column_name(table: Table, path: Path, name: str) -> str | None:
    """The column called ``name`` whatever its case, or None; two such columns are an error."""
    found = [c for c in table.colnames if c.lower() == name.lower()]
    if len(found) > 1:
        raise InputFileError(f"{path}: reference catalogue has several columns named "
                             f"{name!r} (names are case-insensitive); keep one")
    return found[0] if found else None


def _values(table: Table, path: Path, name: str, unit: str) -> np.ndarray:
    """A column as floats in ``unit`` (converted from the file's unit if it has one; assumed
    otherwise), masked entries NaN."""
    column = table[name]
    values = np.ma.filled(np.ma.asarray(column).astype(float), np.nan)
    if column.unit is None or unit == "mag":  # magnitudes: mag, or Gaia's unitless 'mag'
        return values
    try:
        return values * column.unit.to(unit)
    except Exception:  # astropy: UnitConversionError, or an unrecognised unit
        raise InputFileError(f"{path}: reference catalogue column {name!r} has unit "
                             f"{column.unit}, not convertible to {unit}") from None


def _epoch(table: Table, path: Path) -> np.ndarray:
    """The ``ref_epoch`` [Julian year] of every row: its column, else the table meta's."""
    name = _column_name(table, path, "ref_epoch")
    if name:
        return _values(table, path, name, "yr")
    meta = {str(k).lower(): v for k, v in table.meta.items()}
    try:
        return np.full(len(table), float(str(meta["ref_epoch"]).lstrip("Jj")))
    except KeyError:
        raise InputFileError(f"{path}: reference catalogue has proper motions (pmra, pmdec) but "
                             "no ref_epoch column or meta key (Julian year of the positions; "
                             "2016.0 for Gaia DR3)") from None
    except ValueError:
        raise InputFileError(f"{path}: reference catalogue meta ref_epoch = "
                             f"{meta['ref_epoch']!r} is not a Julian year") from None


def file_sha256(path: str | Path, digits: int = 16) -> str:
    """The first ``digits`` hex digits of a file's SHA-256: which catalogue a fit used."""
    import hashlib

    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()[:digits]


def julian_year(mjd) -> np.ndarray:
    """Julian year (J2000.0 = MJD 51544.5, years of 365.25 days) of a modified Julian date.

    JWST times (EXPSTART/EXPEND) are UTC and Gaia's epochs TCB; the ~70 s between the scales
    move a star of 1000 mas/yr by 2 µas, so the scale is ignored."""
    return 2000.0 + (np.asarray(mjd, dtype=float) - 51544.5) / 365.25


def propagate(ra, dec, pmra, pmdec, years) -> tuple[np.ndarray, np.ndarray]:
    """(RA, Dec) [deg] after ``years`` of proper motion ``pmra`` (μα* = μα cos δ), ``pmdec``
    [mas/yr]; NaN motions leave a position unchanged.

    Linear motion on the sky: the unit vector u moves by (p μα* + q μδ) Δt, p and q the
    unit vectors east and north at the star, and is renormalised. That is what astropy's
    ``SkyCoord.apply_space_motion`` (ERFA ``pmsafe``) computes for a star without radial
    velocity (tests: within 1 µas over 20 years). The closed form is used rather than
    ``apply_space_motion`` because it needs no distances (most Gaia rows have no radial
    velocity, and ERFA overrides small or missing parallaxes with a warning), works on plain
    arrays and is exact at the poles and across RA = 0/360. Ignoring radial velocities (the
    perspective acceleration) costs 0.1 µas over 10 years for a 20 mas/yr star at 1 kpc
    moving at 50 km/s; only the nearest fast stars feel it.
    """
    ra, dec = np.deg2rad(np.asarray(ra, dtype=float)), np.deg2rad(np.asarray(dec, dtype=float))
    scale = np.deg2rad(1.0 / 3.6e6) * np.asarray(years, dtype=float)  # mas -> rad, × years
    east = np.nan_to_num(np.asarray(pmra, dtype=float)) * scale
    north = np.nan_to_num(np.asarray(pmdec, dtype=float)) * scale
    sin_a, cos_a, sin_d, cos_d = np.sin(ra), np.cos(ra), np.sin(dec), np.cos(dec)
    x = cos_d * cos_a - east * sin_a - north * sin_d * cos_a
    y = cos_d * sin_a + east * cos_a - north * sin_d * sin_a
    z = sin_d + north * cos_d
    return (np.rad2deg(np.arctan2(y, x)) % 360.0,
            np.rad2deg(np.arctan2(z, np.hypot(x, y))))


def at_epoch(catalog: Table, epoch: float) -> Table:
    """``catalog`` (:func:`read_reference_catalog`'s) with every row that has a proper motion
    and an epoch moved to ``epoch`` [Julian year]; others stay where the file puts them.
    Adds ``epoch`` [Julian year], the epoch each row's position refers to."""
    out = catalog.copy()
    if "pmra" not in catalog.colnames:
        out["epoch"] = np.full(len(out), np.nan)
        return out
    moving = _moving(catalog)
    years = np.where(moving, epoch - np.asarray(catalog["ref_epoch"]), 0.0)
    out["RA"], out["DEC"] = propagate(catalog["RA"], catalog["DEC"],
                                      np.where(moving, catalog["pmra"], 0.0),
                                      np.where(moving, catalog["pmdec"], 0.0), years)
    out["epoch"] = np.where(moving, epoch, catalog["ref_epoch"])
    return out


def _moving(catalog: Table) -> np.ndarray:
    """Rows with a proper motion and an epoch (all False without pm columns)."""
    if "pmra" not in catalog.colnames:
        return np.zeros(len(catalog), dtype=bool)
    return (np.isfinite(catalog["pmra"]) & np.isfinite(catalog["pmdec"])
            & np.isfinite(catalog["ref_epoch"]))


def within_magnitudes(catalog: Table, bright: float | None, faint: float | None) -> np.ndarray:
    """Which rows have a G magnitude (``mag``) within [``bright``, ``faint``] (None: no limit
    on that side). With a limit set, a row without G is outside; a catalogue with no G
    column at all is kept whole (there is nothing to cut on)."""
    if (bright is None and faint is None) or "mag" not in catalog.colnames:
        return np.ones(len(catalog), dtype=bool)
    mag = np.asarray(catalog["mag"], dtype=float)
    keep = np.isfinite(mag)
    if bright is not None:
        keep &= mag >= bright
    if faint is not None:
        keep &= mag <= faint
    return keep


def reference_catalog(path: str | Path, exposure_mjd, bright: float | None,
                      faint: float | None) -> Table:
    """The reference catalogue the absolute fit uses: the file's rows within the G limits
    (:func:`within_magnitudes`), moved to the mean of ``exposure_mjd`` (the exposures'
    mid-times, MJD; :func:`at_epoch`). One log line says what was dropped and moved, and how
    far a star moves between the mean epoch and the farthest exposure's. ``meta`` adds
    ``epoch`` [Julian year] and the row counts to :func:`read_reference_catalog`'s.
    """
    catalog = read_reference_catalog(path)
    n_read = len(catalog)
    catalog = catalog[within_magnitudes(catalog, bright, faint)]
    epochs = julian_year(exposure_mjd)
    epochs = epochs[np.isfinite(epochs)]
    epoch = float(np.mean(epochs)) if epochs.size else float("nan")
    notes = [f"{n_read} rows", *_limits_note(catalog, n_read, bright, faint),
             _motions_note(catalog, epochs, epoch, path)]
    catalog = at_epoch(catalog, epoch)
    catalog.meta.update(epoch=epoch, n_read=n_read, n_used=len(catalog))
    log.info("reference catalogue %s (sha256 %s): %s; %d used", catalog.meta["name"],
             catalog.meta["sha256"], "; ".join(notes), len(catalog))
    return catalog


def _limits_note(kept: Table, n_read: int, bright, faint) -> list[str]:
    """What the G limits did, for the log ([] without limits)."""
    if bright is None and faint is None:
        return []
    limits = "G {}-{}".format("-inf" if bright is None else f"{bright:g}",
                              "inf" if faint is None else f"{faint:g}")
    if "mag" not in kept.colnames:
        return [f"no G column (phot_g_mean_mag or mag): limits {limits} not applied"]
    return [f"{n_read - len(kept)} outside {limits} or without G dropped"]


def _motions_note(catalog: Table, epochs: np.ndarray, epoch: float, path) -> str:
    """What moving the rows to ``epoch`` (the mean of ``epochs``) does, for the log; the
    largest error of one epoch for all: the fastest star over the farthest exposure's time."""
    moving = _moving(catalog)
    if not moving.any():
        return "no proper motions: positions as in the file"
    if not np.isfinite(epoch):
        raise InputFileError(f"{path}: reference catalogue has proper motions but the "
                             "exposures have no EXPSTART/EXPEND to move them to")
    fastest = float(np.max(np.hypot(catalog["pmra"][moving], catalog["pmdec"][moving])))
    spread_mas = fastest * float(np.max(np.abs(epochs - epoch)))
    return (f"{np.count_nonzero(moving)} moved by their proper motions to J{epoch:.4f}, the "
            f"exposures' mean mid-time (the fastest star moves {spread_mas:.2g} mas between "
            "it and the farthest exposure's)")
