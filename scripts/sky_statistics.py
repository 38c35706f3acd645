"""Rule sky_statistics: one member's sky statistics, overall and in each overlap."""

import json

from image3.datamodel import atomic_write_text, load_exposure
from image3.runjob import job
from image3.skymatch import group_footprints, member_sky_stats

with job(snakemake) as log:
    model = load_exposure(snakemake.input.cal, wcs=snakemake.input.wcs or None)
    footprints = group_footprints(snakemake.input.footprints)
    stats = member_sky_stats(model.data, model.dq, model.meta.wcs,
                             group_footprints=footprints, own_group=snakemake.params.group,
                             params=snakemake.params.sky)
    atomic_write_text(snakemake.output[0], json.dumps(stats, indent=1) + "\n")
    sky = stats["local"]["sky"]
    log.info("%s: local sky %s from %d pixels; %d overlapping groups", snakemake.wildcards.member,
             "not computed" if sky is None else f"{sky:.5g} MJy/sr", stats["local"]["npix"],
             len(stats.get("overlaps", {})))
