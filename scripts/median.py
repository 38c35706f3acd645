"""Rule median: the per-pixel median of all single images, in row blocks."""

from astropy.io import fits

from image3.datamodel import atomic_path
from image3.grid import load_grid
from image3.outlier import median_image
from image3.runjob import job

with job(snakemake) as log:
    grid = load_grid(snakemake.input.grid)
    median = median_image(snakemake.input.singles, grid.shape)
    with atomic_path(snakemake.output[0]) as tmp:
        fits.PrimaryHDU(median).writeto(tmp)
    log.info("median of %d singles on a %s grid", len(snakemake.input.singles), grid.shape)
