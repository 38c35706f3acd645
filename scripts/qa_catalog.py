"""Rule qa_catalog: catalogue sources on the mosaic, magnitudes and concentration indices."""

from image3.runtime.jobserver import delegate

delegate(snakemake)  # on a local run, the job server runs the rest (image3/runtime/jobserver.py)

from image3 import qa
from image3.runtime.runjob import job

with job(snakemake) as log:
    log.info("%s", qa.write_catalog_figure(snakemake.input.i2d, snakemake.input.catalog,
                                           snakemake.params.aperture_ee, snakemake.output[0]))
