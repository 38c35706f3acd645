"""Rule tiles: the sky tiles of the output grid and the members each meets (image3/tiles.py)."""

from image3.runtime.jobserver import delegate

delegate(snakemake)  # on a local run, the job server runs the rest (image3/runtime/jobserver.py)

from image3.grid import write_grid_tiles
from image3.runtime.runjob import job

with job(snakemake) as log:
    log.info("%s", write_grid_tiles(snakemake.output[0], snakemake.input.grid,
                                    snakemake.input.footprints, snakemake.params.size,
                                    snakemake.params.margin))
