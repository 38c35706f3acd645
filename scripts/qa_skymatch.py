"""Rule qa_skymatch: each member's sky before and after skymatch."""

from image3.runtime.jobserver import delegate

delegate(snakemake)  # on a local run, the job server runs the rest (image3/runtime/jobserver.py)

import json
from pathlib import Path

from image3 import qa
from image3.runtime.runjob import job
from image3.skymatch import read_sky_stats

with job(snakemake) as log:
    members = snakemake.params.members
    stats = read_sky_stats(snakemake.input.stats)
    records = {m: json.loads(Path(p).read_text()) for m, p in zip(members, snakemake.input.sky)}
    table = qa.sky_before_after(stats, records)
    fig = qa.new_figure("skymatch")
    qa.plot_sky_levels(fig, table)
    qa.save_figure(fig, snakemake.output[0])
    log.info("wrote %s: sky after skymatch from %.4g to %.4g MJy/sr over %d members",
             snakemake.output[0], table["after"].min(), table["after"].max(), len(table))
