"""Rule flag: blot the median onto one exposure, flag its outliers, write its _crf and (when
resample runs) its drizzled contribution to the _i2d."""

import gc

from image3.datamodel import load_exposure, read_wcs_status, save_model
from image3.grid import load_grid
from image3.median import median_shape, read_median_window, read_single_coverage
from image3.mosaic import drizzle_member, member_pixels
from image3.outlier import (apply_outlier_flags, compare_with_median, intermediate_model,
                            single_pixel_map, window_of)
from image3.resample import save_partial
from image3.runjob import job
from image3.sip import apply_sip

with job(snakemake) as log:
    member = snakemake.wildcards.member
    params = snakemake.params.compare
    model = load_exposure(snakemake.input.cal, wcs=snakemake.input.wcs or None,
                          sky=snakemake.input.sky or None)
    if snakemake.input.wcs and read_wcs_status(snakemake.input.wcs).get("corrected"):
        apply_sip(model, snakemake.params.sip)  # the _crf's FITS header WCS, as tweakreg's
    pixmap = single_pixel_map(model, load_grid(snakemake.input.grid), params)
    # only the part of the median (and of the own single) that covers this exposure
    box = window_of(pixmap, median_shape(snakemake.input.median))
    median, count = read_median_window(snakemake.input.median, box)
    own = read_single_coverage(snakemake.input.single, box)
    result = compare_with_median(model, pixmap, median, count, own, (box[0], box[2]), params)
    del median, count, own
    for note in result.notes:
        log.info("%s: %s", member, note)
    if result.limits:
        log.info("%s: point-source sharpness limits (rows/columns, diagonals) %.2f, %.2f",
                 member, *result.limits)
    flagged = apply_outlier_flags(model, result.mask)
    save_model(model, snakemake.output.crf)
    usable = max(result.compared + result.alone, 1)
    log.info("%s: %d outlier pixels flagged (%.3f%% of %d usable pixels); %d by comparison "
             "with other exposures, %d by shape where no other exposure covers (%.1f%% of the "
             "pixels)", member, flagged, 100.0 * flagged / usable, usable, result.by_comparison,
             result.by_shape, 100.0 * result.alone / usable)
    if snakemake.params.intermediate:
        save_model(intermediate_model(result.reference, wcs=model.meta.wcs, like=model),
                   snakemake.params.intermediate)
        log.info("wrote %s", snakemake.params.intermediate)
    del result
    if snakemake.output.get("contribution"):
        # the _crf's pixels as they are in memory, drizzled onto the final grid (the outlier
        # grid's pixel map serves when the two grids and map steps are the same)
        final = snakemake.params.final
        same = final["same_grid"] and final["pixmap_stepsize"] == params["pixmap_stepsize"] \
            and params.get("resample_data", True)
        pixels = member_pixels(model, snakemake.params.group, final)
        model.close()
        del model
        gc.collect()  # the datamodel's arrays sit in reference cycles: free them before drizzling
        partial = drizzle_member(pixels, load_grid(snakemake.input.final_grid), final,
                                 pixmap=pixmap if same else None)
        save_partial(snakemake.output.contribution, partial)
        log.info("%s: drizzled onto the final grid (cutout %d x %d)", member,
                 partial.data_sum.shape[1], partial.data_sum.shape[0])
