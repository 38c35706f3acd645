"""Rule qa_catalog: catalogue sources on the mosaic, magnitudes and concentration indices."""

from image3.runtime.jobserver import delegate

delegate(snakemake)  # on a local run, the job server runs the rest (image3/runtime/jobserver.py)

from astropy.table import Table

from image3 import qa
from image3.runtime.runjob import job

with job(snakemake) as log:
    image, factor, _ = qa.read_display_image(snakemake.input.i2d)
    found = qa.catalog_quantities(Table.read(snakemake.input.catalog, format="ascii.ecsv"),
                                  snakemake.params.aperture_ee)
    x, y = qa.to_display(found["x"], found["y"], factor)
    fig = qa.new_figure("catalog")
    qa.plot_catalog(fig, image, x, y, found["magnitude"], found["concentration"],
                    found["extended"], "aper_total_abmag", found["concentration_name"])
    qa.save_figure(fig, snakemake.output[0])
    log.info("wrote %s: %d sources (%d extended)", snakemake.output[0], len(x),
             int(found["extended"].sum()))
