"""Rule demo_data: write the synthetic demo association (exposures, ASN and truth)."""

from image3.runtime.jobserver import delegate

delegate(snakemake)  # on a local run, the job server runs the rest (image3/runtime/jobserver.py)

from pathlib import Path

from image3 import synth
from image3.runtime.runjob import job

with job(snakemake) as log:
    p = snakemake.params
    asn = synth.make_association(Path(snakemake.output.asn).parent, n=p.n, size=p.size,
                                 seed=p.seed)
    log.info("demo association written: %s", asn)
