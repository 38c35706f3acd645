"""Rule qa_tweakreg: matched-star residual vectors and each group's shift and rotation."""

from image3.runtime.jobserver import delegate

delegate(snakemake)  # on a local run, the job server runs the rest (image3/runtime/jobserver.py)

from astropy.table import Table

from image3 import qa
from image3.runtime.runjob import job

with job(snakemake) as log:
    report = Table.read(snakemake.input.report, format="ascii.ecsv")
    residuals = Table.read(snakemake.input.residuals, format="ascii.ecsv")
    fig = qa.new_figure("tweakreg")
    qa.plot_tweakreg(fig, report, residuals)
    qa.save_figure(fig, snakemake.output[0])
    log.info("wrote %s: %d group fits (%d applied), %d matched-star residuals",
             snakemake.output[0], len(report), int(report["applied"].sum()), len(residuals))
