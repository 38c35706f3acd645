"""Rule merge_catalog: one _cat.ecsv from the sky tiles' catalogues (image3/tiles.py)."""

from image3.runtime.jobserver import delegate

delegate(snakemake)  # on a local run, the job server runs the rest (image3/runtime/jobserver.py)

from image3.catalog import merge_tile_catalogs
from image3.runtime.runjob import job
from image3.tiles import read_tiles

with job(snakemake) as log:
    log.info("%s", merge_tile_catalogs(snakemake.input.catalogs, read_tiles(snakemake.input.tiles),
                                       snakemake.output[0]))
