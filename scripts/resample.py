"""Rule resample: drizzle every exposure into the _i2d mosaic."""

from pathlib import Path

from image3.datamodel import save_model
from image3.grid import load_grid
from image3.mosaic import ExposureFiles, resample_members
from image3.runjob import job

with job(snakemake) as log:
    files = [ExposureFiles(path=Path(row["cal"]), group_id=row["group_id"],
                           wcs=Path(row["wcs"]) if row["wcs"] else None,
                           sky=Path(row["sky"]) if row["sky"] else None)
             for row in snakemake.params.members]
    product = resample_members(files, load_grid(snakemake.input.grid), snakemake.params.drizzle)
    save_model(product, snakemake.output[0])
    log.info("wrote %s (%d x %d)", snakemake.output[0], *product.data.shape[::-1])
