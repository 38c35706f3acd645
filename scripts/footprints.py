"""Rule footprints: every member's sky footprint (after tweakreg) and group, for skymatch."""

from image3.datamodel import atomic_write_text, load_exposure
from image3.runjob import job
from image3.skymatch import footprints_table

with job(snakemake) as log:
    rows = snakemake.params.members
    text = footprints_table(
        rows, lambda row: load_exposure(row["cal"], wcs=row["wcs"] or None),
        stepsize=snakemake.params.stepsize)
    atomic_write_text(snakemake.output[0], text)
    log.info("footprints of %d members", len(rows))
