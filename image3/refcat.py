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
    "read_reference_catalog",
    "read_source_list",
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
            "pass a reference catalogue file (ecsv/csv/fits with RA/Dec columns, or a _cat.ecsv)")
    path = Path(name)
    if not path.is_file():
        raise ConfigError(f"tweakreg.abs_refcat: {path}: file not found")
    return path


def read_reference_catalog(path: str | Path) -> Table:
    """An absolute reference catalogue as a table with float ``RA``, ``DEC`` columns [deg].

    RA/Dec names are case-insensitive; a ``sky_centroid`` (SkyCoord) column is used when there
    is no RA/Dec, as the reference does so a jwst ``_cat.ecsv`` works directly. Rows with a
    non-finite position are dropped. ``meta['name']`` is the file name (tweakwcs logs it).
    """
    from astropy.coordinates import SkyCoord
    from astropy.table import Table

    path = Path(path)
    table = _read_table(path, "reference catalogue")
    by_upper: dict[str, list[str]] = {}
    for name in table.colnames:
        by_upper.setdefault(name.upper(), []).append(name)
    ra_names, dec_names = by_upper.get("RA", []), by_upper.get("DEC", [])
    sky_names = by_upper.get("SKY_CENTROID", [])
    if len(ra_names) > 1 or len(dec_names) > 1 or len(sky_names) > 1:
        raise InputFileError(f"{path}: reference catalogue has several RA/Dec or sky_centroid "
                             "columns (names are case-insensitive); keep one")
    if ra_names and dec_names:
        ra = np.asarray(table[ra_names[0]], dtype=float)
        dec = np.asarray(table[dec_names[0]], dtype=float)
    elif sky_names and isinstance(table[sky_names[0]], SkyCoord):
        sky = table[sky_names[0]].icrs
        ra, dec = sky.ra.deg, sky.dec.deg
    else:
        raise InputFileError(f"{path}: reference catalogue has neither RA/Dec columns nor a "
                             "sky_centroid column")
    good = np.isfinite(ra) & np.isfinite(dec)
    out = Table({"RA": ra[good], "DEC": dec[good]})
    out.meta["name"] = path.name
    return out

