"""The ``_i2d``'s ``HDRTAB``: one row per input exposure holding its header keywords (the
reference's metadata-blender table, ``blendheaders``).

Columns are the keywords the JWST datamodel schema marks ``blend_table`` (441 for an
``ImageModel``: FILENAME, EXPSTART, FILTER, the S_* step statuses, BKGLEVEL, ...; 366 of the
primary header, 75 of the SCI header), named as in FITS and in schema order; a keyword no
input has is left out. Values are read from the FITS headers alone (astropy, no data array),
then the image3 results the resample applies from sidecars rather than the file (step
statuses, sky level) replace the file's. A missing value is NaN in a numeric column and ""
in a text column; a logical column is int8 1/0 (FITS logical), as the reference's, and
becomes text (T, F, "") when an input lacks the keyword.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from astropy.io import fits

from .errors import InputFileError

__all__ = ["add_header_table", "header_row", "header_table", "table_keywords"]


@functools.cache
def table_keywords() -> dict[str, tuple[str, str]]:
    """Datamodel attribute (``meta.instrument.filter``) -> (FITS keyword, extension name) of
    every ``ImageModel`` attribute with ``blend_table``, in schema order."""
    from stdatamodels import schema as dm_schema
    from stdatamodels.jwst import datamodels

    found: dict[str, tuple[str, str]] = {}

    def visit(subschema, path, _combiner, _ctx, _recurse):
        if len(path) <= 1 or path[0] != "meta" or "items" in path:
            return
        if subschema.get("properties") or subschema.get("type") == "array":
            return
        for combiner in ("anyOf", "oneOf"):
            if combiner in path:
                path = path[:path.index(combiner)]
        if subschema.get("blend_table"):
            found[".".join(path)] = (subschema.get("fits_keyword", ".".join(path)),
                                     subschema.get("fits_hdu", "PRIMARY"))

    dm_schema.walk_schema(datamodels.ImageModel().schema, visit, None)
    return found


def header_row(path: str | Path, overrides: Mapping[str, object]) -> dict[str, object]:
    """FITS keyword -> value of :func:`table_keywords` in the primary and SCI headers of the
    exposure at ``path`` (keywords it lacks left out); ``overrides`` (datamodel attribute ->
    value, None: unknown) replace the file's values."""
    try:
        with fits.open(path, lazy_load_hdus=True) as hdul:
            headers = {"PRIMARY": hdul[0].header, "SCI": hdul["SCI"].header}
    except (OSError, KeyError, IndexError) as err:
        raise InputFileError(f"{path}: no primary and SCI headers ({err})") from None
    keywords = table_keywords()
    row = {}
    for keyword, hdu in keywords.values():
        value = headers[hdu].get(keyword)
        if value is not None and not isinstance(value, fits.card.Undefined):
            row[keyword] = value
    for attr, value in overrides.items():
        if value is not None:
            row[keywords[attr][0]] = value
    return row


def header_table(rows: Sequence[Mapping[str, object]]) -> np.ndarray:
    """The structured array of ``rows`` (keyword -> value), one record per row, columns in
    :func:`table_keywords` order; a column's type is that of its values: logical (int8) or
    integer (int64) when every row has one, numbers (float64, NaN where missing), else text
    (bytes, as wide as its longest value, "" where missing; logicals as T and F)."""
    columns, names = [], []
    for keyword, _hdu in table_keywords().values():
        values = [row.get(keyword) for row in rows]
        present = [v for v in values if v is not None]
        if not present:
            continue
        names.append(keyword)
        columns.append(_column(values, present))
    return np.rec.fromarrays(columns, names=names) if names else np.rec.array([])


def _column(values: list, present: list) -> np.ndarray:
    complete = len(present) == len(values)
    logical = all(isinstance(v, bool) for v in present)
    if logical and complete:
        return np.array(values, dtype=np.int8)
    numbers = not any(isinstance(v, bool) for v in present) \
        and all(isinstance(v, (int, float)) for v in present)
    if numbers and complete and all(isinstance(v, int) for v in present):
        return np.array(values, dtype=np.int64)
    if numbers:
        return np.array([np.nan if v is None else float(v) for v in values])
    text = ["" if v is None else _text(v) for v in values]
    return np.array([t.encode("ascii", "replace") for t in text],
                    dtype=f"S{max(1, max(len(t) for t in text))}")


def _text(value) -> str:
    """A header value as FITS writes it in a text column (logical: T or F)."""
    return ("T" if value else "F") if isinstance(value, bool) else str(value)


def add_header_table(model, table: np.ndarray) -> None:
    """Give a datamodel ``table`` as its ``hdrtab`` attribute, saved as the ``HDRTAB`` binary
    table extension (the ``ImageModel`` schema has no such entry: it is added to this model's,
    as the reference does), so that ``ImageModel(path).hdrtab`` reads it back."""
    from stdatamodels import fits_support

    schema = {
        "title": "Header keywords of each input exposure",
        "fits_hdu": "HDRTAB",
        "datatype": [{"name": name, "datatype": _datatype(table.dtype[name])}
                     for name in table.dtype.names],
    }
    model.add_schema_entry("hdrtab", schema)
    model.hdrtab = fits_support.from_fits_hdu(fits.BinTableHDU.from_columns(table), schema)


def _datatype(dtype: np.dtype):
    """A column's datatype as datamodel schemas write it."""
    return ["ascii", dtype.itemsize] if dtype.kind == "S" else dtype.name
