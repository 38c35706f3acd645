"""Rule save_single (outlier_detection.save_intermediate_results): a group's single drizzle as
the reference's _outlier_i2d file (image3/intermediates.py)."""

from image3.runtime.jobserver import delegate

delegate(snakemake)  # on a local run, the job server runs the rest (image3/runtime/jobserver.py)

from image3.intermediates import save_single
from image3.runtime.runjob import job

with job(snakemake):
    save_single(snakemake.input.single, snakemake.input.grid, snakemake.input.cal,
                snakemake.input.wcs or None, snakemake.output[0])
