"""Rule median: all single images combined pixel by pixel, a block of rows at a time; with
sky_in_singles, skymatch solved first and each group's level removed from its single."""

from image3.runtime.jobserver import delegate

delegate(snakemake)  # on a local run, the job server runs the rest (image3/runtime/jobserver.py)

from image3.median import median_of_singles, write_median
from image3.parameters import SkySolve
from image3.runtime.runjob import job
from image3.skymatch import group_offsets, log_levels, read_sky_stats, solve_sky

with job(snakemake) as log:
    singles = list(snakemake.input.singles)
    groups = snakemake.params.groups
    offsets = None
    if snakemake.output.get("sky"):
        stats = read_sky_stats(snakemake.input.stats)
        records = solve_sky(stats, groups, SkySolve.from_config(snakemake.params.sky))
        for member, path in zip((m for ms in groups.values() for m in ms), snakemake.output.sky):
            records[member].write(path)
        log_levels(records)
        offsets = group_offsets(records, stats, groups)
    median, count = median_of_singles(singles, snakemake.params.method,
                                      offsets=None if offsets is None else list(offsets.values()),
                                      threads=snakemake.threads)
    write_median(snakemake.output.median, median, count, snakemake.params.method, len(singles))
    covered = count > 0
    log.info("median of %d singles on a %d x %d grid; %.1f%% of the covered pixels have "
             "fewer than 3 singles", len(singles), median.shape[1], median.shape[0],
             100.0 * float((count[covered] < 3).mean()) if covered.any() else 0.0)
    if snakemake.params.intermediate or snakemake.params.intermediate_singles:
        # only for the saved intermediates: a job without them loads no gwcs or datamodel
        import numpy as np

        from image3.datamodel import load_exposure, save_model
        from image3.grid import load_grid
        from image3.median import read_single
        from image3.outlier import intermediate_model, padded

        grid = load_grid(snakemake.input.grid)
    if snakemake.params.intermediate:
        save_model(intermediate_model(median, grid.wcs), snakemake.params.intermediate)
        log.info("wrote %s", snakemake.params.intermediate)
    for (group, offset), saved in zip((offsets or {}).items(),
                                      snakemake.params.intermediate_singles):
        sci, wht = padded(read_single(saved["single"]))
        first = saved["first"]
        with load_exposure(first["cal"], wcs=first["wcs"] or None) as like:
            save_model(intermediate_model(sci - np.float32(offset), grid.wcs, wht, like=like),
                       saved["path"])
        log.info("wrote %s", saved["path"])
