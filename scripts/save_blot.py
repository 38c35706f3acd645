"""Rule save_blot (outlier_detection.save_intermediate_results): the median blotted onto one
member as the reference's _blot file (image3/intermediates.py)."""

from image3.runtime.jobserver import delegate

delegate(snakemake)  # on a local run, the job server runs the rest (image3/runtime/jobserver.py)

from image3.intermediates import save_blot
from image3.parameters import FlagComparison
from image3.runtime.runjob import job

with job(snakemake):
    save_blot(snakemake.input.crf, snakemake.input.median, snakemake.input.grid,
              FlagComparison.from_config(snakemake.params.compare),
              snakemake.output[0])
