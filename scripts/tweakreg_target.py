"""Rule tweakreg_target<N>: the bands of one target aligned in one fit; each product's gwcs
sidecars, residuals, reference catalogue and fit report, as its own tweakreg job writes them."""

from image3.runtime.jobserver import delegate

delegate(snakemake)  # on a local run, the job server runs the rest (image3/runtime/jobserver.py)

from image3.parameters import AlignmentFit, ReferenceStars
from image3.runtime.runjob import job
from image3.tweakreg import ProductAlignment, align_products

with job(snakemake) as log:
    log.info("%s", align_products(
        [ProductAlignment(**product) for product in snakemake.params.products],
        AlignmentFit.from_config(snakemake.params.fit),
        "".join(snakemake.input.abs_refcat),  # its one file, or none
        ReferenceStars.from_config(snakemake.params.stars)))
