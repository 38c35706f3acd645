"""Rule qa_tweakreg: matched-star residual vectors and each group's shift and rotation."""

from image3.runtime.jobserver import delegate

delegate(snakemake)  # on a local run, the job server runs the rest (image3/runtime/jobserver.py)

from image3 import qa
from image3.runtime.runjob import job

with job(snakemake) as log:
    log.info("%s", qa.write_tweakreg_figure(snakemake.input.report, snakemake.input.residuals,
                                            snakemake.output[0]))
