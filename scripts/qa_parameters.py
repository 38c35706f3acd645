"""Rule qa_parameters: every step parameter of the run and where its value came from (HTML
table, shown in the report)."""

from image3.runtime.jobserver import delegate

delegate(snakemake)  # on a local run, the job server runs the rest (image3/runtime/jobserver.py)

from image3 import qa
from image3.runtime.runjob import job

with job(snakemake) as log:
    log.info("%s", qa.write_parameter_table(snakemake.params.rows, snakemake.output[0]))
