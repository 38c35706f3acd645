"""The output grid shared by outlier detection and the final resample.

Built once (rule ``grid``) from every member's footprint and the first member's scale and
orientation, as the reference's default, or from a user's ASDF gwcs (``output_wcs``), and passed
between jobs as a small ASDF file (:func:`image3.wcs.write_grid`).
"""

from __future__ import annotations

import logging
from pathlib import Path

from .datamodel import atomic_path, load_exposure
from .wcs import (
    Grid,
    footprint,
    grid_scale,
    mean_pixel_area_sr,
    output_grid,
    read_grid,
    read_output_wcs,
    write_grid,
)

log = logging.getLogger(__name__)

__all__ = ["Grid", "build_grid", "load_grid", "save_grid"]


def build_grid(cal_paths: list, wcs_paths: list, params: dict) -> Grid:
    """The output grid for these members (``wcs_paths`` empty when tweakreg did not run)."""
    wcs_paths = list(wcs_paths) or [None] * len(cal_paths)
    footprints = []
    first = None
    for cal, wcs in zip(cal_paths, wcs_paths):
        model = load_exposure(cal, wcs=wcs)
        with model:
            footprints.append(footprint(model.meta.wcs, model.data.shape))
            if first is None:
                info = model.meta.wcsinfo
                area = model.meta.photometry.pixelarea_steradians
                first = (model.meta.wcs, {k: getattr(info, k) for k in
                                          ("ra_ref", "dec_ref", "roll_ref", "v3yangle", "vparity")},
                         area or mean_pixel_area_sr(model.meta.wcs, model.data.shape))
    ref_wcs, ref_info, ref_area_sr = first
    if params.get("output_wcs"):
        return read_output_wcs(params["output_wcs"], ref_area_sr,
                               output_shape=params["output_shape"])
    wcs = output_grid(
        ref_wcs, ref_info, footprints,
        pixel_scale_ratio=params["pixel_scale_ratio"], pixel_scale=params["pixel_scale"],
        rotation=params["rotation"], crpix=params["crpix"], crval=params["crval"],
        output_shape=params["output_shape"], max_pixels=params["max_output_pixels"],
    )
    scale, ratio = grid_scale(ref_wcs, ref_info, pixel_scale_ratio=params["pixel_scale_ratio"],
                              pixel_scale=params["pixel_scale"])
    return Grid(wcs, tuple(int(n) for n in wcs.array_shape), float(scale), float(ratio))


def save_grid(path: str | Path, grid: Grid) -> None:
    with atomic_path(path) as tmp:
        write_grid(tmp, grid)


load_grid = read_grid
