"""Rule qa_bands: the bands of one target on its projection, as a colour image, and each band's
source positions against the first band's (image3/qa.py)."""

from image3.runtime.jobserver import delegate

delegate(snakemake)  # on a local run, the job server runs the rest (image3/runtime/jobserver.py)

from image3.qa import write_bands_figure
from image3.runtime.runjob import job

with job(snakemake) as log:
    bands = [b.rsplit("-", 1)[-1].upper() for b in snakemake.params.bands]
    log.info("%s", write_bands_figure(dict(zip(bands, snakemake.input.i2ds, strict=True)),
                                      dict(zip(bands, snakemake.input.catalogs, strict=True)),
                                      snakemake.output[0]))
