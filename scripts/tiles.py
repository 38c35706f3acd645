"""Rule tiles: the sky tiles of the output grid (image3/tiles.py)."""

from image3.runtime.jobserver import delegate

delegate(snakemake)  # on a local run, the job server runs the rest (image3/runtime/jobserver.py)

from image3.runtime.runjob import job
from image3.tiles import write_tiles

with job(snakemake) as log:
    log.info("%s", write_tiles(snakemake.output[0], snakemake.input[0], snakemake.params.size,
                               snakemake.params.margin))
