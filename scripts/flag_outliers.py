"""Rule flag_outliers: blot the median onto one exposure, flag outliers, write its _crf."""

from astropy.io import fits

from image3.datamodel import load_exposure, read_wcs_status, save_model
from image3.grid import load_grid
from image3.outlier import flag_exposure
from image3.runjob import job
from image3.sip import apply_sip

with job(snakemake) as log:
    model = load_exposure(snakemake.input.cal, wcs=snakemake.input.wcs or None,
                          sky=snakemake.input.sky or None)
    if snakemake.input.wcs and read_wcs_status(snakemake.input.wcs).get("corrected"):
        apply_sip(model, snakemake.params.tweakreg)
    median = fits.getdata(snakemake.input.median)
    count = flag_exposure(model, median, load_grid(snakemake.input.grid), snakemake.params.outlier)
    save_model(model, snakemake.output[0])
    log.info("%s: %d outlier pixels flagged (%.4f%%)", snakemake.wildcards.member, count,
             100.0 * count / model.data.size)
