"""The flag job: one exposure compared with the median, its ``_crf`` written, and its share of
the ``_i2d`` drizzled while the ``_crf``'s pixels are in memory.

The comparison (:mod:`image3.outlier`) reads only SCI and ERR; the ``_crf`` is the exposure's
whole datamodel with the corrected gwcs, its SIP header approximation, the sky record and the
outlier flags; its contribution to the final resample (:mod:`image3.mosaic`) spares the
resample job a second read of every exposure, and, when outlier detection's grid is the final
grid, a second pixel map. Memory: one exposure's arrays, its pixel map and the windows of the
median and of its own single it covers.
"""

from __future__ import annotations

import gc
import logging
from pathlib import Path

from .datamodel import Exposure, ExposureMeta, MemberFiles, read_wcs_status, save_model
from .dqflags import DO_NOT_USE
from .median import median_shape, read_median_window, read_single_coverage
from .mosaic import drizzle_member, member_pixels
from .outlier import (FlagResult, apply_outlier_flags, blot_median, compare_with_median,
                      single_pixel_map, window_of)
from .parameters import FinalDrizzle, FlagComparison, SipApproximation
from .resample import PartialWriter
from .sip import apply_sip
from .wcs import read_grid

log = logging.getLogger(__name__)

#: The ``_crf`` arrays the final drizzle reads.
DRIZZLED_ARRAYS = ("data", "dq", "var_poisson", "var_rnoise", "var_flat")


def flag_member(member: MemberFiles, *, grid_path: str | Path, median_path: str | Path,
                single_path: str | Path, compare: FlagComparison, sip: SipApproximation,
                crf_path: str | Path, final_grid_path: str | Path, final: FinalDrizzle,
                contribution_path: str | Path) -> str:
    """Flag ``member``'s outliers against the median on outlier detection's grid
    (``grid_path``), write its ``_crf`` (``crf_path``) and its drizzled contribution to the
    ``_i2d`` on the final grid (``contribution_path``, :class:`~image3.resample.PartialWriter`).

    ``median_path``: the median (:func:`~image3.median.write_median`); ``single_path``: the
    single of the member's own group, which tells where another exposure covers a pixel.
    The comparison's pixel map serves the final drizzle when both grids are one file and
    their pixel maps' steps and spline degrees agree. Returns the summary line of the flags.
    """
    exposure = member.read(("data", "err"))
    pixmap = single_pixel_map(exposure, read_grid(grid_path), compare)
    # only the part of the median (and of the own single) that covers this exposure
    box = window_of(pixmap, median_shape(median_path))
    median, count = read_median_window(median_path, box)
    own = read_single_coverage(single_path, box)
    blot = blot_median(exposure, pixmap, median, count, own, (box[0], box[2]), compare)
    del median, count, own
    result = compare_with_median(exposure, blot, compare)
    del blot, exposure
    _log_result(member.name, result)

    model = member.read_model()
    if member.wcs is not None and read_wcs_status(member.wcs).get("corrected"):
        apply_sip(model, sip)  # the _crf's FITS header WCS, as tweakreg's
    good_dq = (model.dq & DO_NOT_USE) == 0 if model.dq is not None else True
    no_error = int((result.no_error & good_dq).sum())
    flagged = apply_outlier_flags(model, result.mask, result.no_error)
    save_model(model, crf_path)
    usable = max(result.compared + result.alone, 1)
    summary = (f"{member.name}: {flagged} outlier pixels flagged ({100.0 * flagged / usable:.3f}% "
               f"of {usable} usable pixels); {result.by_comparison} by comparison with other "
               f"exposures, {result.by_shape} by shape where no other exposure covers "
               f"({100.0 * result.alone / usable:.1f}% of the pixels); {result.spared} left "
               "unflagged where a source differs between exposures (not sharp)"
               + (f"; {no_error} pixels left out for an ERR that is NaN or <= 0"
                  if no_error else ""))
    del result

    same_grid = Path(grid_path) == Path(final_grid_path) \
        and final.pixmap_stepsize == compare.pixmap_stepsize \
        and final.pixmap_order == compare.pixmap_order and compare.resample_data
    reused = pixmap if same_grid else None
    del pixmap
    # the _crf's arrays as written, taken over from its datamodel (not copied): the model
    # and its other arrays leave memory before the drizzle
    crf = Exposure.of(model, ExposureMeta.of(model, crf_path), DRIZZLED_ARRAYS)
    model.close()
    del model
    gc.collect()  # a datamodel's arrays sit in reference cycles
    pixels = member_pixels(crf, member.group_id, final, copy=False)
    del crf
    with PartialWriter(contribution_path) as writer:  # each plane written when made
        partial = drizzle_member(pixels, read_grid(final_grid_path), final, pixmap=reused,
                                 sink=writer)
        writer.finish(partial)
    log.info("%s: drizzled onto the final grid (cutout %d x %d)", member.name,
             partial.bbox[3] - partial.bbox[2], partial.bbox[1] - partial.bbox[0])
    return summary


def _log_result(name: str, result: FlagResult) -> None:
    for note in result.notes:
        log.info("%s: %s", name, note)
    if result.limits:
        log.info("%s: point-source sharpness limits (rows/columns, diagonals) %.2f, %.2f",
                 name, *result.limits)
