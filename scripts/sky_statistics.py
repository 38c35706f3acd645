"""Rule sky_statistics: one member's sky statistics, overall and in each overlap."""

from image3.runtime.jobserver import delegate

delegate(snakemake)  # on a local run, the job server runs the rest (image3/runtime/jobserver.py)

from image3.datamodel import read_member
from image3.footprints import group_footprints
from image3.parameters import SkyStatistics
from image3.runtime.runjob import job
from image3.skymatch import member_sky_stats, write_sky_stats

with job(snakemake) as log:
    member = snakemake.wildcards.member
    pixels = read_member(snakemake.input.cal, geometry=snakemake.input.geometry or None,
                         wcs=snakemake.input.wcs or None, arrays=("data", "dq"))
    stats = member_sky_stats(pixels.data, pixels.dq, pixels.meta.wcs,
                             group_footprints=group_footprints(snakemake.input.footprints),
                             own_group=snakemake.params.group,
                             params=SkyStatistics.from_config(snakemake.params.sky))
    write_sky_stats(snakemake.output[0], {member: stats})
    log.info("%s: local sky %s from %s pixels; %d overlapping groups", member,
             stats["local"]["sky"], stats["local"]["npix"], len(stats.get("overlaps", {})))
