"""Rules resample and resample_tile: the _i2d mosaic (or one sky tile of it), from the members'
contributions (drizzled by the flag jobs) or, without outlier detection, drizzling every
exposure here."""

from image3.runtime.jobserver import delegate

delegate(snakemake)  # on a local run, the job server runs the rest (image3/runtime/jobserver.py)

from image3.datamodel import MemberFiles
from image3.mosaic import write_i2d
from image3.parameters import FinalDrizzle
from image3.runtime.runjob import job

with job(snakemake) as log:
    log.info("%s", write_i2d(snakemake.output[0],
                             [MemberFiles(**row) for row in snakemake.params.members],
                             snakemake.input.grid,
                             FinalDrizzle.from_config(snakemake.params.drizzle),
                             snakemake.input.get("contributions", ()),
                             snakemake.params.get("window")))
