"""Rule skymatch: one sky level per group from all members' statistics."""

from image3.runtime.jobserver import delegate

delegate(snakemake)  # on a local run, the job server runs the rest (image3/runtime/jobserver.py)

from image3.parameters import SkySolve
from image3.runtime.runjob import job
from image3.skymatch import log_levels, read_sky_stats, solve_sky

with job(snakemake) as log:
    records = solve_sky(read_sky_stats(snakemake.input.stats), snakemake.params.groups,
                        SkySolve.from_config(snakemake.params.sky))
    for member, path in zip(snakemake.params.members, snakemake.output):
        records[member].write(path)
    log_levels(records)
