"""Rule single: one exposure group drizzled onto its cutout of the outlier-detection grid, each
member with its sky level removed."""

from image3.runtime.jobserver import delegate

delegate(snakemake)  # on a local run, the job server runs the rest (image3/runtime/jobserver.py)

from image3.datamodel import MemberFiles
from image3.outlier import write_group_single
from image3.parameters import SingleDrizzle
from image3.runtime.runjob import job

with job(snakemake) as log:
    log.info("%s", write_group_single(
        snakemake.output.single, [MemberFiles(**row) for row in snakemake.params.members],
        snakemake.input.grid, SingleDrizzle.from_config(snakemake.params.drizzle),
        snakemake.wildcards.group))
