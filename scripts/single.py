"""Rule single: one exposure group drizzled onto its cutout of the outlier-detection grid, and
(sky_in_singles) its members' sky statistics for the median job's skymatch solve."""

from image3.datamodel import load_exposure, read_pixels, save_model, sky_level_to_remove
from image3.grid import load_grid
from image3.median import write_single
from image3.outlier import drizzle_single, intermediate_model, padded
from image3.runjob import job
from image3.skymatch import group_footprints, member_sky_stats, write_sky_stats

with job(snakemake) as log:
    group = snakemake.wildcards.group
    rows = snakemake.params.members
    models = [read_pixels(row["cal"], row["geometry"], wcs=row["wcs"] or None,
                          sky=row["sky"] or None) if row["geometry"] else
              load_exposure(row["cal"], wcs=row["wcs"] or None, sky=row["sky"] or None)
              for row in rows]
    if snakemake.output.get("stats"):
        footprints = group_footprints(snakemake.input.footprints)
        stats = {}
        for row, model in zip(rows, models):
            stats[row["member"]] = member_sky_stats(
                model.data, model.dq, model.meta.wcs, group_footprints=footprints,
                own_group=group, params=snakemake.params.sky)
            # a level the _cal itself records is removed while drizzling (normally none)
            stats[row["member"]]["level_removed"] = sky_level_to_remove(model)
            log.info("%s: local sky %s from %s pixels; %d overlapping groups", row["member"],
                     stats[row["member"]]["local"]["sky"], stats[row["member"]]["local"]["npix"],
                     len(stats[row["member"]].get("overlaps", {})))
        write_sky_stats(snakemake.output.stats, stats)
    grid = load_grid(snakemake.input.grid)
    single = drizzle_single(models, grid, snakemake.params.drizzle, group)
    write_single(snakemake.output.single, single)
    log.info("group %s: %d member(s) drizzled onto a %d x %d cutout at (x, y) = (%d, %d); "
             "weight threshold %.4g", group, len(models),
             single.sci.shape[1], single.sci.shape[0], single.origin[1], single.origin[0],
             single.weight_threshold)
    if snakemake.params.intermediate:
        sci, wht = padded(single)
        first = rows[0]  # the intermediate's metadata: the first member's datamodel
        with load_exposure(first["cal"], wcs=first["wcs"] or None) as like:
            save_model(intermediate_model(sci, grid.wcs, wht, like=like),
                       snakemake.params.intermediate)
        log.info("wrote %s", snakemake.params.intermediate)
