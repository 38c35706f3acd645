"""Rule single: one exposure group drizzled onto its cutout of the outlier-detection grid."""

from image3.datamodel import load_exposure, save_model
from image3.grid import load_grid
from image3.median import write_single
from image3.outlier import drizzle_single, intermediate_model, padded
from image3.runjob import job

with job(snakemake) as log:
    grid = load_grid(snakemake.input.grid)
    models = [load_exposure(row["cal"], wcs=row["wcs"] or None, sky=row["sky"] or None)
              for row in snakemake.params.members]
    single = drizzle_single(models, grid, snakemake.params.drizzle, snakemake.wildcards.group)
    write_single(snakemake.output[0], single)
    log.info("group %s: %d member(s) drizzled onto a %d x %d cutout at (x, y) = (%d, %d); "
             "weight threshold %.4g", snakemake.wildcards.group, len(models),
             single.sci.shape[1], single.sci.shape[0], single.origin[1], single.origin[0],
             single.weight_threshold)
    if snakemake.params.intermediate:
        sci, wht = padded(single)
        save_model(intermediate_model(sci, grid.wcs, wht, like=models[0]),
                   snakemake.params.intermediate)
        log.info("wrote %s", snakemake.params.intermediate)
