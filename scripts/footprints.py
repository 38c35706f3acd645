"""Rule footprints: every member's sky footprint (image3/grid.py)."""

from image3.runtime.jobserver import delegate

delegate(snakemake)  # on a local run, the job server runs the rest (image3/runtime/jobserver.py)

from image3.datamodel import MemberFiles
from image3.grid import write_footprints
from image3.runtime.runjob import job

with job(snakemake):
    write_footprints(snakemake.output[0], [MemberFiles(**row) for row in snakemake.params.members],
                     snakemake.params.stepsize)
