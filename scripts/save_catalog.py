"""Rule save_catalog (tweakreg.save_catalogs): one member's found source list under the
reference's name and columns."""

from image3.runtime.jobserver import delegate

delegate(snakemake)  # on a local run, the job server runs the rest (image3/runtime/jobserver.py)

from image3.runtime.runjob import job
from image3.tweakreg import write_saved_catalog

with job(snakemake) as log:
    write_saved_catalog(snakemake.input.sources, snakemake.output[0], snakemake.params.member)
    log.info("wrote source catalogue %s", snakemake.output[0])
