"""Rule flag: blot the median onto one exposure, flag its outliers, write its _crf and its
drizzled contribution to the _i2d."""

from image3.runtime.jobserver import delegate

delegate(snakemake)  # on a local run, the job server runs the rest (image3/runtime/jobserver.py)

import gc

from image3.datamodel import load_exposure, read_member, read_pixels, read_wcs_status, save_model
from image3.grid import load_grid
from image3.median import median_shape, read_median_window, read_single_coverage
from image3.mosaic import drizzle_member, member_meta, member_pixels
from image3.outlier import (apply_outlier_flags, blot_median, compare_with_median,
                            single_pixel_map, window_of)
from image3.parameters import FinalDrizzle, FlagComparison, SipApproximation
from image3.resample import PartialWriter
from image3.runtime.runjob import job
from image3.sip import apply_sip

with job(snakemake) as log:
    member = snakemake.wildcards.member
    params = FlagComparison.from_config(snakemake.params.compare)
    files = {"wcs": snakemake.input.wcs or None, "sky": snakemake.input.sky or None}
    # The comparison needs SCI and ERR only: read with astropy when the geometry sidecar
    # exists, so the datamodel (every array, asdf) is opened after it, to write the _crf.
    pixels = read_member(snakemake.input.cal, geometry=snakemake.input.geometry or None, **files,
                         arrays=("data", "err"))
    pixmap = single_pixel_map(pixels, load_grid(snakemake.input.grid), params)
    # only the part of the median (and of the own single) that covers this exposure
    box = window_of(pixmap, median_shape(snakemake.input.median))
    median, count = read_median_window(snakemake.input.median, box)
    own = read_single_coverage(snakemake.input.single, box)
    blotted, has_reference = blot_median(pixels, pixmap, median, count, own, (box[0], box[2]),
                                         params)
    del median, count, own
    result = compare_with_median(pixels, blotted, has_reference, params)
    del blotted, has_reference
    model = pixels if not snakemake.input.geometry else \
        load_exposure(snakemake.input.cal, **files)
    del pixels
    if snakemake.input.wcs and read_wcs_status(snakemake.input.wcs).get("corrected"):
        # the _crf's FITS header WCS, as tweakreg's
        apply_sip(model, SipApproximation.from_config(snakemake.params.sip))
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
    del result
    # the _crf's pixels as they are in memory, drizzled onto the final grid (the outlier
    # grid's pixel map serves when the two grids and map steps are the same)
    final = FinalDrizzle.from_config(snakemake.params.final)
    same = snakemake.params.final["same_grid"] \
        and final.pixmap_stepsize == params.pixmap_stepsize and params.resample_data
    reused = pixmap if same else None
    del pixmap
    if snakemake.input.geometry:
        # the _crf's pixels read back with astropy once the datamodel is gone (the same
        # values; no datamodel beside the drizzle's arrays)
        meta = member_meta(model, snakemake.params.group)
        model.close()
        del model
        gc.collect()  # the datamodel's arrays sit in reference cycles: free them first
        crf = read_pixels(snakemake.output.crf, snakemake.input.geometry, **files,
                          arrays=("data", "dq", "var_poisson", "var_rnoise", "var_flat"))
        pixels = member_pixels(crf, snakemake.params.group, final, copy=False, meta=meta)
        del crf
    else:
        # the _crf is written: its variance arrays are taken over, not copied
        pixels = member_pixels(model, snakemake.params.group, final, copy=False)
        model.close()
        del model
        gc.collect()
    # each plane goes to the file as soon as it is made
    with PartialWriter(snakemake.output.contribution) as writer:
        partial = drizzle_member(pixels, load_grid(snakemake.input.final_grid), final,
                                 pixmap=reused, sink=writer)
        writer.finish(partial)
    log.info("%s: drizzled onto the final grid (cutout %d x %d)", member,
             partial.bbox[3] - partial.bbox[2], partial.bbox[1] - partial.bbox[0])
