"""Rule qa_mosaic: the mosaic (block-averaged for display) with every member's footprint."""

from image3.runtime.jobserver import delegate

delegate(snakemake)  # on a local run, the job server runs the rest (image3/runtime/jobserver.py)

import json
from pathlib import Path

from astropy.wcs import WCS

from image3 import qa
from image3.runtime.runjob import job

with job(snakemake) as log:
    image, factor, header = qa.read_display_image(snakemake.input.i2d)
    members = json.loads(Path(snakemake.input.footprints).read_text())
    outlines = qa.polygons_to_display({m: e["polygon"] for m, e in members.items()},
                                      WCS(header).world_to_pixel_values, factor)
    fig = qa.new_figure("mosaic")
    qa.plot_mosaic(fig, image, outlines, {m: e["group"] for m, e in members.items()},
                   title=f"{Path(snakemake.input.i2d).name} (1/{factor} scale)")
    qa.save_figure(fig, snakemake.output[0])
    log.info("wrote %s: mosaic shown at 1/%d scale (%d x %d) with %d member footprints",
             snakemake.output[0], factor, image.shape[1], image.shape[0], len(outlines))
