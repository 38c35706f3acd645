"""Rule layout: every member's sky footprint (for skymatch) and the output grid(s) (for
outlier detection and resample), from one read of each member's gwcs."""

from image3.datamodel import atomic_write_text
from image3.grid import build_grid, member_geometry, save_grid
from image3.runjob import job
from image3.skymatch import footprints_table

with job(snakemake) as log:
    rows = snakemake.params.members
    geometry = [member_geometry(row["cal"], row["wcs"] or None, row["geometry"] or None)
                for row in rows]
    atomic_write_text(snakemake.output.footprints, footprints_table(
        {row["member"]: (row["group_id"], g.wcs, g.shape) for row, g in zip(rows, geometry)},
        stepsize=snakemake.params.stepsize))
    log.info("footprints of %d members", len(rows))
    for name, path in snakemake.output.items():
        if name.startswith("grid"):
            grid = build_grid(geometry, snakemake.params.grids[name])
            save_grid(path, grid)
            log.info("%s: %d x %d pixels at %.4f arcsec", name, grid.shape[1], grid.shape[0],
                     grid.pixel_scale_arcsec)
