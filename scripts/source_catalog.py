"""Rules source_catalog and source_catalog_tile: _cat.ecsv and _segm.fits from an _i2d (the
mosaic or one sky tile)."""

from image3.runtime.jobserver import delegate

delegate(snakemake)  # on a local run, the job server runs the rest (image3/runtime/jobserver.py)

from image3.catalog import write_source_catalog
from image3.parameters import CatalogParameters
from image3.runtime.runjob import job

with job(snakemake) as log:
    log.info("%s", write_source_catalog(
        snakemake.input.i2d, CatalogParameters.from_config(snakemake.params.catalog),
        snakemake.output.catalog, snakemake.output.segm, workers=snakemake.threads,
        # a sky tile's: the mosaic's background, zoomed over the tile's window
        background_path=snakemake.input.get("background"),
        origin=snakemake.params.get("origin", (0, 0))))
