"""Rule flag: blot the median onto one exposure, flag its outliers, write its _crf and its
drizzled contribution to the _i2d (image3/flag.py)."""

from image3.runtime.jobserver import delegate

delegate(snakemake)  # on a local run, the job server runs the rest (image3/runtime/jobserver.py)

from image3.datamodel import MemberFiles
from image3.flag import flag_member
from image3.parameters import FinalDrizzle, FlagComparison, SipApproximation
from image3.runtime.runjob import job

with job(snakemake) as log:
    log.info("%s", flag_member(
        MemberFiles(**snakemake.params.member), grid_path=snakemake.input.grid,
        median_path=snakemake.input.median, single_path=snakemake.input.single,
        compare=FlagComparison.from_config(snakemake.params.compare),
        sip=SipApproximation.from_config(snakemake.params.sip), crf_path=snakemake.output.crf,
        final_grid_path=snakemake.input.final_grid,
        final=FinalDrizzle.from_config(snakemake.params.final),
        contribution_path=snakemake.output.contribution))
