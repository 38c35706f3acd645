"""Rule single: one exposure group drizzled onto its cutout of the outlier-detection grid, and
(sky_in_singles) its members' sky statistics for the median job's skymatch solve."""

from image3.runtime.jobserver import delegate

delegate(snakemake)  # on a local run, the job server runs the rest (image3/runtime/jobserver.py)

from functools import partial

from image3.datamodel import load_exposure, read_pixels, save_model, sky_level_to_remove
from image3.footprints import group_footprints
from image3.grid import load_grid
from image3.median import write_single
from image3.outlier import drizzle_single, intermediate_model, padded
from image3.parameters import SingleDrizzle, SkyStatistics
from image3.runtime.runjob import job
from image3.skymatch import member_sky_stats, write_sky_stats

with job(snakemake) as log:
    group = snakemake.wildcards.group
    rows = snakemake.params.members
    sky = SkyStatistics.from_config(snakemake.params.sky)
    footprints = group_footprints(snakemake.input.footprints) if snakemake.output.get("stats") \
        else None
    stats = {}

    def read(row):
        """A member's pixels, its sky statistics measured on the way."""
        model = read_pixels(row["cal"], row["geometry"], wcs=row["wcs"] or None,
                            sky=row["sky"] or None) if row["geometry"] else \
            load_exposure(row["cal"], wcs=row["wcs"] or None, sky=row["sky"] or None)
        if footprints is not None:
            member = stats[row["member"]] = member_sky_stats(
                model.data, model.dq, model.meta.wcs, group_footprints=footprints,
                own_group=group, params=sky)
            # a level the _cal itself records is removed while drizzling (normally none)
            member["level_removed"] = sky_level_to_remove(model)
            log.info("%s: local sky %s from %s pixels; %d overlapping groups", row["member"],
                     member["local"]["sky"], member["local"]["npix"],
                     len(member.get("overlaps", {})))
        return model

    grid = load_grid(snakemake.input.grid)
    # each member read when the drizzle reaches it: one member's pixels in memory at a time
    single = drizzle_single([partial(read, row) for row in rows], grid,
                            SingleDrizzle.from_config(snakemake.params.drizzle), group)
    if footprints is not None:
        write_sky_stats(snakemake.output.stats, stats)
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
