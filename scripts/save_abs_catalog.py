"""Rule save_abs_catalog (tweakreg.save_abs_catalog): the reference catalogue the absolute fit
used, under the reference's name."""

from image3.runtime.jobserver import delegate

delegate(snakemake)  # on a local run, the job server runs the rest (image3/runtime/jobserver.py)

from image3.runtime.runjob import job
from image3.tweakreg import write_saved_abs_catalog

with job(snakemake) as log:
    write_saved_abs_catalog(snakemake.input.refcat, snakemake.output[0])
    log.info("wrote the absolute reference catalogue %s", snakemake.output[0])
