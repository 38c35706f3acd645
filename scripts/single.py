"""Rule single: one exposure group drizzled onto its cutout of the outlier-detection grid, each
member with its sky level removed."""

from image3.runtime.jobserver import delegate

delegate(snakemake)  # on a local run, the job server runs the rest (image3/runtime/jobserver.py)

from functools import partial

from image3.datamodel import load_exposure, read_member, save_model
from image3.grid import load_grid
from image3.median import write_single
from image3.outlier import drizzle_single, intermediate_model, padded
from image3.runtime.runjob import job

with job(snakemake) as log:
    group = snakemake.wildcards.group
    rows = snakemake.params.members
    grid = load_grid(snakemake.input.grid)
    # each member read when the drizzle reaches it: one member's pixels in memory at a time
    single = drizzle_single([partial(read_member, row["cal"], geometry=row["geometry"] or None,
                                     wcs=row["wcs"] or None, sky=row["sky"] or None)
                             for row in rows], grid, snakemake.params.drizzle, group)
    write_single(snakemake.output.single, single)
    log.info("group %s: %d member(s) drizzled onto a %d x %d cutout at (x, y) = (%d, %d); "
             "weight threshold %.4g", group, len(rows),
             single.sci.shape[1], single.sci.shape[0], single.origin[1], single.origin[0],
             single.weight_threshold)
    if snakemake.params.intermediate:
        sci, wht = padded(single)
        first = rows[0]  # the intermediate's metadata: the first member's datamodel
        with load_exposure(first["cal"], wcs=first["wcs"] or None) as like:
            save_model(intermediate_model(sci, grid.wcs, wht, like=like),
                       snakemake.params.intermediate)
        log.info("wrote %s", snakemake.params.intermediate)
