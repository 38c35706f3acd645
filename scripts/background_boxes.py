"""Rule background_boxes: the background statistics of the boxes that start in one sky tile."""

from image3.runtime.jobserver import delegate

delegate(snakemake)  # on a local run, the job server runs the rest (image3/runtime/jobserver.py)

from image3.parameters import CatalogParameters
from image3.runtime.resources import grid_shape
from image3.runtime.runjob import job
from image3.tile_background import write_box_statistics

with job(snakemake) as log:
    log.info("%s", write_box_statistics(
        snakemake.params.tile, list(zip(snakemake.params.sources, snakemake.input.i2d)),
        grid_shape(snakemake.input.grid_shape),
        CatalogParameters.from_config(snakemake.params.catalog).finding.bkg_boxsize,
        snakemake.output[0]))
