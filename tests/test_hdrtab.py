"""The HDRTAB table's columns (image3/hdrtab.py): the datamodel schema's blend_table keywords,
typed by their values."""

import numpy as np

from image3.hdrtab import header_table, table_keywords


def test_table_keywords_are_the_schemas_blend_table_keywords_of_both_headers():
    """441 keywords for stdatamodels 6's ImageModel: 366 of the primary header, 75 of SCI."""
    keywords = table_keywords()
    assert keywords["meta.filename"] == ("FILENAME", "PRIMARY")
    assert keywords["meta.instrument.filter"] == ("FILTER", "PRIMARY")
    assert keywords["meta.photometry.conversion_megajanskys"] == ("PHOTMJSR", "SCI")
    assert keywords["meta.background.level"] == ("BKGLEVEL", "PRIMARY")
    hdus = [hdu for _, hdu in keywords.values()]
    assert set(hdus) == {"PRIMARY", "SCI"} and hdus.count("SCI") >= 50


def test_columns_take_their_values_type_and_mark_missing_values():
    """Schema order; a keyword no row has is left out; integers and logicals that every row has
    stay int64 and int8 (FITS logical); numbers with a gap are float64 with NaN; text with a
    gap is "" there; logicals with a gap become T/F/"" text; a text column is as wide as its
    longest value."""
    rows = [{"FILENAME": "a_cal.fits", "NINTS": 1, "EFFEXPTM": 100, "BKGSUB": True,
             "FILTER": "F200W", "IS_PSF": True},
            {"FILENAME": "bb_cal.fits", "NINTS": 2, "BKGSUB": False, "EFFEXPTM": 2.5}]
    table = header_table(rows)
    assert table.dtype.names == ("FILENAME", "FILTER", "NINTS", "EFFEXPTM", "IS_PSF", "BKGSUB")
    assert table["FILENAME"].tolist() == [b"a_cal.fits", b"bb_cal.fits"]
    assert table.dtype["FILENAME"] == np.dtype("S11")
    assert table["FILTER"].tolist() == [b"F200W", b""]
    assert table.dtype["NINTS"] == np.int64 and table["NINTS"].tolist() == [1, 2]
    assert table.dtype["EFFEXPTM"] == np.float64 and table["EFFEXPTM"].tolist() == [100.0, 2.5]
    assert table.dtype["BKGSUB"] == np.int8 and table["BKGSUB"].tolist() == [1, 0]
    assert table["IS_PSF"].tolist() == [b"T", b""]
    gaps = header_table([{"NINTS": 1}, {"FILENAME": "x"}])
    assert gaps.dtype["NINTS"] == np.float64 and np.isnan(gaps["NINTS"][1])
