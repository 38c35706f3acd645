"""Rule source_catalog: _cat.ecsv and _segm.fits from the _i2d mosaic."""

from image3.runtime.jobserver import delegate

delegate(snakemake)  # on a local run, the job server runs the rest (image3/runtime/jobserver.py)

from image3.catalog import catalog_for_product, open_mosaic, write_catalog_products
from image3.parameters import CatalogParameters
from image3.runtime.runjob import job

with job(snakemake) as log:
    with open_mosaic(snakemake.input.i2d) as i2d:
        catalog, segmentation = catalog_for_product(
            i2d, CatalogParameters.from_config(snakemake.params.catalog), workers=snakemake.threads)
        write_catalog_products(catalog, segmentation, i2d, snakemake.output.catalog,
                               snakemake.output.segm)
    log.info("%d sources in %s", 0 if catalog is None else len(catalog), snakemake.output.catalog)
