"""Rule median: all single images combined pixel by pixel, a block of rows at a time."""

from image3.runtime.jobserver import delegate

delegate(snakemake)  # on a local run, the job server runs the rest (image3/runtime/jobserver.py)

from image3.median import median_of_singles, write_median
from image3.parameters import SkySolve
from image3.runtime.runjob import job

with job(snakemake) as log:
    singles = list(snakemake.input.singles)
    median, count = median_of_singles(singles, snakemake.params.method, threads=snakemake.threads)
    write_median(snakemake.output.median, median, count, snakemake.params.method, len(singles))
    covered = count > 0
    log.info("median of %d singles on a %d x %d grid; %.1f%% of the covered pixels have "
             "fewer than 3 singles", len(singles), median.shape[1], median.shape[0],
             100.0 * float((count[covered] < 3).mean()) if covered.any() else 0.0)
