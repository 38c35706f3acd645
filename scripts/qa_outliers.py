"""Rule qa_outliers: outlier pixels flagged per member (_crf DQ vs _cal DQ) and their map on
the median the exposures were compared with; one exposure's DQ arrays in memory at a time."""

from image3.runtime.jobserver import delegate

delegate(snakemake)  # on a local run, the job server runs the rest (image3/runtime/jobserver.py)

from image3 import qa
from image3.runtime.runjob import job

with job(snakemake) as log:
    log.info("%s", qa.write_outlier_figure(snakemake.input.median, snakemake.input.grid,
                                           snakemake.input.footprints, snakemake.params.members,
                                           snakemake.output[0]))
