"""Rule qa_mosaic_tiles: the mosaic of the sky tiles (block-averaged for display), each tile
outlined, with every member's footprint."""

from image3.runtime.jobserver import delegate

delegate(snakemake)  # on a local run, the job server runs the rest (image3/runtime/jobserver.py)

from image3 import qa
from image3.runtime.runjob import job

with job(snakemake) as log:
    log.info("%s", qa.write_tiled_mosaic_figure(snakemake.input.i2ds, snakemake.input.tiles,
                                                snakemake.input.footprints, snakemake.output[0]))
