"""Rule find_sources: one member's source list for tweakreg (found, or the user's catalogue)
and its geometry sidecar (gwcs, shape, wcsinfo), so later joins need not open the _cal."""

from image3.runtime.jobserver import delegate

delegate(snakemake)  # on a local run, the job server runs the rest (image3/runtime/jobserver.py)

from image3.datamodel import check_exposure, open_exposure, pixel_meta
from image3.grid import geometry_of, save_geometry
from image3.parameters import SourceFinding
from image3.refcat import read_source_list
from image3.runtime.runjob import job
from image3.tweakreg import exposure_sources, inside_bounding_box, write_sources

with job(snakemake) as log:
    cal = snakemake.input.cal
    finding = SourceFinding.from_config(snakemake.params.finding)
    with open_exposure(cal) as model:
        check_exposure(model, cal)
        save_geometry(snakemake.output.geometry, geometry_of(model), pixel_meta(model))
        if snakemake.input.get("catalog"):
            sources = inside_bounding_box(read_source_list(snakemake.input.catalog),
                                          model.meta.wcs.bounding_box)
            origin = f"user catalogue {snakemake.input.catalog}"
        else:
            sources = exposure_sources(model, finding)
            origin = f"{finding.starfinder} star finder"
    write_sources(sources, snakemake.output.sources, origin=origin)
    log.info("%s: %d sources (%s)", snakemake.wildcards.member, len(sources), origin)
