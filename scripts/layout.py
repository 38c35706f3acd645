"""Rule layout (when tweakreg does not run): every member's sky footprint and the output
grid(s) (image3/layout.py)."""

from image3.runtime.jobserver import delegate

delegate(snakemake)  # on a local run, the job server runs the rest (image3/runtime/jobserver.py)

from image3.layout import write_layout
from image3.runtime.runjob import job

with job(snakemake):
    write_layout(footprints_path=snakemake.output.footprints, **snakemake.params.layout)
