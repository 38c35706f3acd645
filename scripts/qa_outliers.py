"""Rule qa_outliers: outlier pixels flagged per member (_crf DQ vs _cal DQ) and their map on
the median the exposures were compared with; one exposure's DQ arrays in memory at a time."""

from image3.runtime.jobserver import delegate

delegate(snakemake)  # on a local run, the job server runs the rest (image3/runtime/jobserver.py)

import json
from pathlib import Path

from astropy.io import fits
from stdatamodels.jwst import datamodels

from image3 import qa
from image3.grid import load_grid
from image3.median import median_shape, read_median_window
from image3.runtime.runjob import job

with job(snakemake) as log:
    grid = load_grid(snakemake.input.grid)
    shape = median_shape(snakemake.input.median)
    factor = qa.display_factor(shape)
    image = qa.block_mean(
        lambda y0, y1: read_median_window(snakemake.input.median, (y0, y1, 0, shape[1]))[0],
        shape, factor)
    counts, positions = {}, {}
    for row in snakemake.params.members:
        # DQ is unsigned (BZERO): read, not memory-mapped; only that extension
        cal_dq, crf_dq = fits.getdata(row["cal"], "DQ"), fits.getdata(row["crf"], "DQ")
        with datamodels.ImageModel(row["crf"]) as model:
            x, y = qa.outlier_positions(cal_dq, crf_dq, model.meta.wcs,
                                        grid.wcs.world_to_pixel_values)
        counts[row["member"]] = len(x)
        positions[row["member"]] = qa.to_display(x, y, factor)
    members = json.loads(Path(snakemake.input.footprints).read_text())
    outlines = qa.polygons_to_display({m: e["polygon"] for m, e in members.items()},
                                      grid.wcs.world_to_pixel_values, factor)
    fig = qa.new_figure("outliers")
    qa.plot_outliers(fig, counts, positions, image, outlines,
                     {m: e["group"] for m, e in members.items()})
    qa.save_figure(fig, snakemake.output[0])
    log.info("wrote %s: %d outlier pixels flagged in %d members (%s)", snakemake.output[0],
             sum(counts.values()), len(counts),
             ", ".join(f"{m}: {n}" for m, n in counts.items()))
