"""Rule skymatch: one sky level per group from all members' statistics."""

from image3.runtime.jobserver import delegate

delegate(snakemake)  # on a local run, the job server runs the rest (image3/runtime/jobserver.py)

from image3.parameters import SkySolve
from image3.runtime.runjob import job
from image3.skymatch import write_sky_records

with job(snakemake):
    write_sky_records(dict(zip(snakemake.params.members, snakemake.output)), snakemake.input.stats,
                      snakemake.params.groups, SkySolve.from_config(snakemake.params.sky),
                      snakemake.params.keep_in, snakemake.params.refit)
