"""Rule resample: the _i2d mosaic, from the members' contributions (drizzled by the flag jobs)
or, without outlier detection, drizzling every exposure here."""

from image3.runtime.jobserver import delegate

delegate(snakemake)  # on a local run, the job server runs the rest (image3/runtime/jobserver.py)

from pathlib import Path

from image3.datamodel import save_model
from image3.grid import load_grid
from image3.mosaic import ExposureFiles, mosaic_of_contributions, resample_members
from image3.parameters import FinalDrizzle
from image3.runtime.runjob import job

with job(snakemake) as log:
    files = [ExposureFiles(path=Path(row["cal"]), group_id=row["group_id"],
                           wcs=Path(row["wcs"]) if row["wcs"] else None,
                           sky=Path(row["sky"]) if row["sky"] else None)
             for row in snakemake.params.members]
    grid = load_grid(snakemake.input.grid)
    drizzle = FinalDrizzle.from_config(snakemake.params.drizzle)
    if snakemake.input.get("contributions"):
        product = mosaic_of_contributions(files[0], snakemake.input.contributions, grid, drizzle)
    else:
        product = resample_members(files, grid, drizzle)
    save_model(product, snakemake.output[0])
    log.info("wrote %s (%d x %d)", snakemake.output[0], *product.data.shape[::-1])
