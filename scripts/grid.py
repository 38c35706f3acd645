"""Rule grid: the output grid (gwcs + shape) every exposure is drizzled onto."""

from image3.grid import build_grid, save_grid
from image3.runjob import job

with job(snakemake) as log:
    grid = build_grid(snakemake.input.cals, snakemake.input.wcs, snakemake.params.grid)
    save_grid(snakemake.output[0], grid)
    log.info("output grid %d x %d pixels at %.4f arcsec", grid.shape[1], grid.shape[0],
             grid.pixel_scale_arcsec)
