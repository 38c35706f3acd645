"""Rule background_mesh: the tiled mosaic's background mesh from its tiles' box statistics."""

from image3.runtime.jobserver import delegate

delegate(snakemake)  # on a local run, the job server runs the rest (image3/runtime/jobserver.py)

from image3.parameters import CatalogParameters
from image3.runtime.resources import grid_shape
from image3.runtime.runjob import job
from image3.tile_background import write_background_mesh

with job(snakemake) as log:
    log.info("%s", write_background_mesh(
        snakemake.input.boxes, grid_shape(snakemake.input.grid_shape),
        CatalogParameters.from_config(snakemake.params.catalog).finding.bkg_boxsize,
        snakemake.params.tiles, snakemake.output[0], snakemake.params.keep_in,
        snakemake.params.refit))
