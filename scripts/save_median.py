"""Rule save_median (outlier_detection.save_intermediate_results): the median as the
reference's _median file (image3/intermediates.py)."""

from image3.runtime.jobserver import delegate

delegate(snakemake)  # on a local run, the job server runs the rest (image3/runtime/jobserver.py)

from image3.intermediates import save_median
from image3.runtime.runjob import job

with job(snakemake):
    save_median(snakemake.input.median, snakemake.input.grid, snakemake.output[0])
