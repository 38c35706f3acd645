"""Rule single: one exposure group drizzled onto its cutout of the outlier-detection grid, each
member with its sky level removed."""

from image3.runtime.jobserver import delegate

delegate(snakemake)  # on a local run, the job server runs the rest (image3/runtime/jobserver.py)

from functools import partial

from image3.datamodel import read_member
from image3.grid import load_grid
from image3.median import write_single
from image3.outlier import drizzle_single
from image3.parameters import SingleDrizzle
from image3.runtime.runjob import job

with job(snakemake) as log:
    group = snakemake.wildcards.group
    rows = snakemake.params.members
    # each member read when the drizzle reaches it: one member's pixels in memory at a time
    single = drizzle_single([partial(read_member, row["cal"], geometry=row["geometry"] or None,
                                     wcs=row["wcs"] or None, sky=row["sky"] or None)
                             for row in rows], load_grid(snakemake.input.grid),
                            SingleDrizzle.from_config(snakemake.params.drizzle), group)
    write_single(snakemake.output.single, single)
    log.info("group %s: %d member(s) drizzled onto a %d x %d cutout at (x, y) = (%d, %d); "
             "weight threshold %.4g", group, len(rows),
             single.sci.shape[1], single.sci.shape[0], single.origin[1], single.origin[0],
             single.weight_threshold)
