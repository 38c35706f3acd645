"""What the workflow needs to know about the steps' files before any job runs: their names.
Light on purpose: the Snakefile imports it in every Snakemake process (and every cluster job
re-parses it), so it must not pull in the science modules and their dependencies. The steps'
parameters: :mod:`image3.parameters`.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["intermediate_name", "saved_abs_catalog_name", "saved_catalog_name"]


def intermediate_name(root: str, asn_id: str | None, suffix: str) -> str:
    """The reference's names: ``<root>_<asn_id>_<suffix>.fits`` (outlier_i2d, median, blot)."""
    return f"{root}_{asn_id}_{suffix}.fits" if asn_id else f"{root}_{suffix}.fits"


def saved_catalog_name(exposure_file, catalog_format: str) -> str:
    """The reference's ``save_catalogs`` file name: the exposure's name with ``.fits`` →
    ``_cat.<catalog_format>`` (``x_nrca1_cal.fits`` → ``x_nrca1_cal_cat.ecsv``)."""
    return Path(exposure_file).name.replace(".fits", f"_cat.{catalog_format}")


def saved_abs_catalog_name(abs_refcat) -> str:
    """The reference's ``save_abs_catalog`` file name, ``fit_<abs_refcat lower>_ref.ecsv``,
    with a catalogue file's stem (``/data/Field_Gaia.ecsv`` → ``fit_field_gaia_ref.ecsv``)."""
    return f"fit_{Path(abs_refcat).stem.lower()}_ref.ecsv"
