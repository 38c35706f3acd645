"""Rule median: all single images combined pixel by pixel on the grid or on one sky tile, a block
of rows at a time."""

from image3.runtime.jobserver import delegate

delegate(snakemake)  # on a local run, the job server runs the rest (image3/runtime/jobserver.py)

from image3.median import write_median_of_singles
from image3.runtime.runjob import job

with job(snakemake) as log:
    log.info("%s", write_median_of_singles(snakemake.output.median, list(snakemake.input.singles),
                                           snakemake.params.method,
                                           snakemake.params.region))
