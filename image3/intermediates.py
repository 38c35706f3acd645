"""The steps' optional products, the reference's files, each made by a job of its own from what
the steps leave in the work folder.

tweakreg's and skymatch's ``save_results``: ``<member>_<asn_id>_tweakreg.fits`` (the member with
its corrected gwcs and that gwcs' FITS SIP approximation, as the ``_crf`` has them) and
``<member>_<asn_id>_skymatch.fits`` (also with its sky record in ``meta.background``).

outlier_detection's ``save_intermediate_results``:

- ``<first member>_<asn_id>_outlier_i2d.fits``, per exposure group: its single drizzle on the
  whole outlier-detection grid (SCI, NaN where the group has no data or is below ``maskpt``;
  WHT), metadata of the group's first member;
- ``<first member of the association>_<asn_id>_median.fits``: the median of the singles;
- ``<member>_<asn_id>_blot.fits``, per member: the median blotted onto the member's pixels, as
  its comparison used it (sharpened for method ``image3``; the sky removed, as in the median),
  metadata of its ``_crf``.

Units: MJy/sr; grids and pixel maps as in :mod:`image3.outlier`.
"""

from __future__ import annotations

from pathlib import Path

from .datamodel import read_exposure_model, read_wcs_status, save_model
from .grid import load_grid
from .median import median_shape, read_median_window, read_single
from .outlier import (blot_window, comparison_image, intermediate_model, padded,
                      single_pixel_map, window_of)
from .parameters import FlagComparison, SipApproximation
from .sip import apply_sip

__all__ = ["save_blot", "save_exposure", "save_median", "save_single"]


def save_exposure(cal: str | Path, wcs: str | Path | None, sky: str | Path | None,
                  sip: SipApproximation, path: str | Path) -> None:
    """Write the member ``cal`` as the steps left it: with its corrected gwcs ``wcs`` (and,
    where tweakreg corrected it, the FITS SIP header of ``sip``) and its sky record ``sky``,
    each if given (the reference's per-step ``save_results`` files)."""
    with read_exposure_model(cal, wcs=wcs, sky=sky) as model:
        if wcs is not None and read_wcs_status(wcs).get("corrected"):
            apply_sip(model, sip)
        save_model(model, path)


def save_single(single: str | Path, grid: str | Path, first_cal: str | Path,
                first_wcs: str | Path | None, path: str | Path) -> None:
    """Write a group's single (image3.median's file) on the whole ``grid``, with the metadata
    of its first member (``first_cal`` with its corrected gwcs ``first_wcs``, if any)."""
    sci, wht = padded(read_single(single))
    with read_exposure_model(first_cal, wcs=first_wcs) as like:
        save_model(intermediate_model(sci, load_grid(grid).wcs, wht, like=like), path)


def save_median(median: str | Path, grid: str | Path, path: str | Path) -> None:
    """Write the median image (image3.median's file) with the outlier-detection grid's gwcs."""
    ny, nx = median_shape(median)
    values, _ = read_median_window(median, (0, ny, 0, nx))
    save_model(intermediate_model(values, load_grid(grid).wcs), path)


def save_blot(crf: str | Path, median: str | Path, grid: str | Path, params: FlagComparison,
              path: str | Path) -> None:
    """Write the median blotted onto the member of ``crf`` as its flag job compared with it
    (``params``: the flag job's)."""
    with read_exposure_model(crf) as model:
        pixmap = single_pixel_map(model, load_grid(grid), params)
        box = window_of(pixmap, median_shape(median))
        window, _ = read_median_window(median, box)
        blotted = blot_window(window, (box[0], box[2]), pixmap, model.data.shape)
        reference = comparison_image(blotted, params.method, stacked=not params.resample_data)
        save_model(intermediate_model(reference, wcs=model.meta.wcs, like=model), path)
