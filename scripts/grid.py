"""Rule grid: one output grid from every member's footprint (image3/grid.py)."""

from image3.runtime.jobserver import delegate

delegate(snakemake)  # on a local run, the job server runs the rest (image3/runtime/jobserver.py)

from image3.datamodel import MemberFiles
from image3.grid import write_output_grid
from image3.parameters import OutputGrid
from image3.runtime.runjob import job

with job(snakemake):
    write_output_grid(snakemake.output.grid, [MemberFiles(**row) for row in snakemake.params.members],
                      OutputGrid.from_config(snakemake.params.grid), snakemake.output.shape,
                      snakemake.params.keep_in, snakemake.params.reserve, snakemake.params.refit)
