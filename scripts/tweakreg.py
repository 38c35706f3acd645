"""Rule tweakreg: align all members; write each member's gwcs sidecar, the matched-star
residuals (for the QA plot) and the fit report."""

from image3.runtime.jobserver import delegate

delegate(snakemake)  # on a local run, the job server runs the rest (image3/runtime/jobserver.py)

from image3.datamodel import write_wcs
from image3.parameters import AlignmentFit
from image3.refcat import read_reference_catalog
from image3.runtime.runjob import job
from image3.tweakreg import (
    align_exposures,
    describe_residuals,
    match_residuals,
    read_exposure_catalog,
    report_table,
    write_report,
)

with job(snakemake) as log:
    members = snakemake.params.members
    exposures = [read_exposure_catalog(row["cal"], row["geometry"], row["sources"], row["member"],
                                       row["group_id"]) for row in members]
    abs_refcat = snakemake.params.abs_refcat
    refcat = read_reference_catalog(abs_refcat) if abs_refcat else None
    fit = AlignmentFit.from_config(snakemake.params.fit)
    alignment = align_exposures(exposures, fit, refcat)
    for row, path in zip(members, snakemake.output.wcs, strict=True):
        write_wcs(path, alignment.wcs[row["member"]], status=alignment.status,
                  corrected=row["member"] in alignment.corrected)
    residuals = match_residuals(exposures, alignment.wcs, fit, refcat)
    write_report(residuals, snakemake.output.residuals)
    # the report last: tests/test_resume stops a run once the report exists
    write_report(report_table(alignment), snakemake.output.report)
    log.info("tweakreg %s: %d groups, %d fits applied; matched-star residuals: %s",
             alignment.status, len({e.group_id for e in exposures}),
             sum(f.applied for f in alignment.fits), describe_residuals(residuals))
