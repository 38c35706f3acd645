"""Rule skymatch: one sky level per group from all members' statistics."""

import json
from pathlib import Path

from image3.runjob import job
from image3.skymatch import solve_sky

with job(snakemake) as log:
    stats = {m: json.loads(Path(p).read_text())
             for m, p in zip(snakemake.params.members, snakemake.input.stats)}
    records = solve_sky(stats, snakemake.params.groups, snakemake.params.sky)
    for member, path in zip(snakemake.params.members, snakemake.output):
        record = records[member]
        record.write(path)
        log.info("%s: sky level %s (%s, %s)", member,
                 "not computed" if record.level is None else f"{record.level:.5g} MJy/sr",
                 record.method, record.status)
