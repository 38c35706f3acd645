"""Rule single: one exposure group drizzled onto its cutout of the outlier-detection grid."""

from image3.datamodel import load_exposure
from image3.grid import load_grid
from image3.outlier import single_image, write_single
from image3.runjob import job

with job(snakemake) as log:
    grid = load_grid(snakemake.input.grid)
    models = [load_exposure(row["cal"], wcs=row["wcs"] or None, sky=row["sky"] or None)
              for row in snakemake.params.members]
    sci, wht, origin = single_image(models, grid, snakemake.params.outlier)
    write_single(snakemake.output[0], sci, wht, origin, grid.shape)
    log.info("group %s: %d members, cutout %s at %s", snakemake.wildcards.group, len(models),
             sci.shape, origin)
