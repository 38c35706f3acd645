"""Rule save_step_result (tweakreg's and skymatch's save_results): a member as the step left it,
under the reference's _tweakreg / _skymatch name (image3/intermediates.py)."""

from image3.runtime.jobserver import delegate

delegate(snakemake)  # on a local run, the job server runs the rest (image3/runtime/jobserver.py)

from image3.intermediates import save_exposure
from image3.parameters import SipApproximation
from image3.runtime.runjob import job

with job(snakemake):
    save_exposure(snakemake.input.cal, snakemake.input.wcs or None,
                  snakemake.input.get("sky") or None,
                  SipApproximation.from_config(snakemake.params.sip), snakemake.output[0])
