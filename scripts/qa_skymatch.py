"""Rule qa_skymatch: each member's sky before and after skymatch."""

from image3.runtime.jobserver import delegate

delegate(snakemake)  # on a local run, the job server runs the rest (image3/runtime/jobserver.py)

from image3 import qa
from image3.runtime.runjob import job

with job(snakemake) as log:
    log.info("%s", qa.write_skymatch_figure(snakemake.input.stats, snakemake.input.sky,
                                            snakemake.params.members, snakemake.output[0]))
