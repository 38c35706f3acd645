"""Rule layout (when tweakreg does not run): every member's sky footprint and the output
grid(s) (image3/layout.py)."""

from image3.layout import write_layout
from image3.runjob import job

with job(snakemake):
    write_layout(snakemake.params.members, snakemake.output.footprints,
                 {name: path for name, path in snakemake.output.items()
                  if name.startswith("grid")},
                 snakemake.params.grids, snakemake.params.stepsize)
