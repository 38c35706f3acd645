"""Rule sky_statistics: one member's sky statistic and its sky offsets from its partners."""

from image3.runtime.jobserver import delegate

delegate(snakemake)  # on a local run, the job server runs the rest (image3/runtime/jobserver.py)

from image3.datamodel import MemberFiles
from image3.parameters import SkyStatistics
from image3.runtime.runjob import job
from image3.skymatch import write_member_sky_stats

with job(snakemake) as log:
    log.info("%s", write_member_sky_stats(snakemake.output[0], MemberFiles(**snakemake.params.member),
                                          [MemberFiles(**p) for p in snakemake.params.partners],
                                          snakemake.params.stepsize,
                                          SkyStatistics.from_config(snakemake.params.sky)))
