"""What the workflow needs to know about the steps before any job runs: parameter groups and
file names. Light on purpose: the Snakefile imports it in every Snakemake process (and every
cluster job re-parses it), so it must not pull in the science modules and their dependencies.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["FINDING_KEYS", "FIT_KEYS", "SIP_DEFAULTS", "intermediate_name", "saved_catalog_name"]

#: Parameters of source finding (changing one of these re-runs finding, nothing else does).
FINDING_KEYS = (
    "starfinder", "snr_threshold", "kernel_fwhm", "bkg_boxsize", "minsep_fwhm", "sigma_radius",
    "sharplo", "sharphi", "roundlo", "roundhi", "brightest", "peakmax", "npixels",
    "connectivity", "nlevels", "contrast", "multithresh_mode", "localbkg_width",
    "apermask_method", "kron_params", "deblend",
)

#: Parameters of matching and fitting (the join job's; ``max_rms`` is this workflow's own).
FIT_KEYS = (
    "enforce_user_order", "expand_refcat", "minobj", "fitgeometry", "nclip", "sigma",
    "searchrad", "use2dhist", "separation", "tolerance", "xoffset", "yoffset", "max_rms",
    "abs_minobj", "abs_fitgeometry", "abs_nclip", "abs_sigma", "abs_searchrad",
    "abs_use2dhist", "abs_separation", "abs_tolerance",
)

#: SIP approximation parameters of the FITS header WCS written with a corrected gwcs
#: (the reference's tweakreg defaults).
SIP_DEFAULTS = {
    "sip_approx": True,
    "sip_max_pix_error": 0.01,
    "sip_degree": None,
    "sip_max_inv_pix_error": 0.01,
    "sip_inv_degree": None,
    "sip_npoints": 12,
}


def intermediate_name(root: str, asn_id: str | None, suffix: str) -> str:
    """The reference's names: ``<root>_<asn_id>_<suffix>.fits`` (outlier_i2d, median, blot)."""
    return f"{root}_{asn_id}_{suffix}.fits" if asn_id else f"{root}_{suffix}.fits"


def saved_catalog_name(exposure_file, catalog_format: str = "ecsv") -> str:
    """The reference's ``save_catalogs`` file name: the exposure's name with ``.fits`` →
    ``_cat.<catalog_format>`` (``x_nrca1_cal.fits`` → ``x_nrca1_cal_cat.ecsv``)."""
    return Path(exposure_file).name.replace(".fits", f"_cat.{catalog_format}")
