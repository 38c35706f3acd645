"""Rule tweakreg: align all members; write each member's gwcs sidecar, the matched-star
residuals (for the QA plot), the absolute fit's reference catalogue and the fit report."""

from image3.runtime.jobserver import delegate

delegate(snakemake)  # on a local run, the job server runs the rest (image3/runtime/jobserver.py)

from image3.parameters import AlignmentFit, ReferenceStars
from image3.runtime.runjob import job
from image3.tweakreg import align_members

with job(snakemake) as log:
    log.info("%s", align_members(
        snakemake.params.members, AlignmentFit.from_config(snakemake.params.fit),
        "".join(snakemake.input.abs_refcat),  # its one file, or none
        ReferenceStars.from_config(snakemake.params.stars),
        snakemake.output.wcs, snakemake.output.residuals, snakemake.output.refcat,
        snakemake.output.report, snakemake.params.keep_in, snakemake.params.refit))
