"""The final resample: drizzle every exposure onto the output grid and assemble the ``_i2d``.

The heavy lifting (pixel maps, drizzle, variance sums) is in :mod:`image3.resample`; this module
feeds it exposures one at a time (memory: one exposure plus the output-sized sums) and builds the
product users know: SCI, ERR, CON, WHT, VAR_POISSON, VAR_RNOISE, VAR_FLAT, the output gwcs, a FITS
TAN approximation in the SCI header, and the reference's metadata (units, NDRIZ, exposure-time sums
over groups, PIXAR_SR/A2 of the output pixel, resample parameters, cal_step, provenance, S_REGION).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from . import __version__
from .datamodel import (Exposure, MemberFiles, new_image, record_reference_catalog,
                        reference_catalog_of, save_model)
from .hdrtab import add_header_table, header_row, header_table
from .parameters import FinalDrizzle
from .resample import (IVM_TYPES, Partial, Resampled, combine_partials, drizzle_exposure,
                       exposure_time, partial_meta, prepare_arrays)
from .sip import remove_sip
from .tiles import KERNEL_REACH_PX
from .wcs import Grid, fits_tan_header, footprint, grid_window, pixel_map, read_grid, s_region

if TYPE_CHECKING:
    from stdatamodels.jwst import datamodels

log = logging.getLogger(__name__)

_ARCSEC2_PER_SR = (180.0 / np.pi * 3600.0) ** 2


@dataclass
class MemberPixels:
    """What drizzling one member onto the final grid needs, detached from its
    :class:`~image3.datamodel.Exposure` (so the caller can release its other arrays first): :func:`~image3.resample.prepare_arrays`'s
    outputs, the exposure time, the gwcs, the member's metadata for the product and, with
    ``propagate_dq``, its DQ (else None)."""

    data: np.ndarray
    variances: dict
    weight: np.ndarray
    exptime: float
    wcs: object
    meta: dict
    dq: np.ndarray | None


def member_pixels(exposure: Exposure, group_id: str, params: FinalDrizzle,
                  copy: bool = True) -> MemberPixels:
    """:class:`MemberPixels` of ``exposure``; ``copy=False``: see
    :func:`~image3.resample.prepare_arrays`."""
    data, variances, weight = prepare_arrays(exposure, params.good_bits, params.weight_type,
                                             copy=copy)
    return MemberPixels(data, variances, weight, exposure_time(exposure, params.weight_type),
                        exposure.meta.wcs, member_meta(exposure, group_id),
                        exposure.dq if params.propagate_dq else None)


def drizzle_member(member: MemberPixels, grid: Grid, params: FinalDrizzle,
                   pixmap: np.ndarray | None = None, sink=None) -> Partial:
    """One member's share of the ``_i2d``: its drizzled sums on its cutout of the grid,
    carrying in ``meta`` what the product needs from it once its pixels are released.

    ``pixmap`` (onto ``grid``) is reused when the caller has it (outlier detection on the same
    grid); otherwise it is evaluated here. ``member``'s variances are consumed (drizzled in
    place and dropped). ``sink``: see :func:`~image3.resample.drizzle_exposure`.
    """
    if pixmap is None:
        pixmap = pixel_map(member.wcs, member.data.shape, grid.wcs,
                           stepsize=params.pixmap_stepsize, order=params.pixmap_order)
    partial = drizzle_exposure(
        member.data, member.variances, member.weight, pixmap, grid.shape,
        weight_type=params.weight_type, kernel=params.kernel, pixfrac=params.pixfrac,
        pixel_scale_ratio=grid.pixel_scale_ratio, exptime=member.exptime, dq=member.dq,
        sink=sink, consume=True,
    )
    partial.meta = member.meta
    return partial


def write_i2d(path: str | Path, members: Sequence[MemberFiles], grid_path: str | Path,
              params: FinalDrizzle, contributions: Sequence[str | Path] = (),
              window: Sequence[int] | None = None) -> str:
    """Write the ``_i2d`` of ``members`` on the grid saved at ``grid_path``: from their saved
    contributions (:func:`contribution`, drizzled by the flag jobs; the members' ``cal`` are
    then their ``_crf``) when given, else drizzling every member here. With ``window`` (y0,
    y1, x0, x1) only that part of the grid, a sky tile (:mod:`image3.tiles`), on a grid of its
    own (:func:`~image3.wcs.grid_window`). Returns a summary."""
    grid = read_grid(grid_path)
    if contributions:
        product = mosaic_of_contributions(members, contributions, grid, params, window)
    elif window is None:
        product = resample_members(members, grid, params)
    else:  # drizzled onto the window and a border, so that its edge pixels get every drop
        y0, y1, x0, x1 = window
        ny, nx = grid.shape
        pad = KERNEL_REACH_PX  # the window's edge pixels get every drop of the whole mosaic
        padded = (max(0, y0 - pad), min(ny, y1 + pad), max(0, x0 - pad), min(nx, x1 + pad))
        product = resample_members(members, grid_window(grid, padded), params,
                                   (y0 - padded[0], y1 - padded[0], x0 - padded[2], x1 - padded[2]))
    save_model(product, path)
    return f"wrote {path} ({product.data.shape[1]} x {product.data.shape[0]})"


def resample_members(members: Sequence[MemberFiles], grid: Grid, params: FinalDrizzle,
                     window: Sequence[int] | None = None) -> datamodels.ImageModel:
    """Drizzle the members in order (context bit k = k-th member) and assemble the ``_i2d``
    (of the part ``window`` of ``grid`` if given).

    Only one input exposure is open at a time. The first input's metadata is the base of the
    product's, as in the reference's metadata blender.
    """
    def partials() -> Iterator[Partial]:
        for member in members:
            log.info("drizzling %s", Path(member.cal).name)
            exposure = member.read(("data", "dq", "var_poisson", "var_rnoise", "var_flat"))
            pixels = member_pixels(exposure, member.group_id, params, copy=False)
            del exposure  # its arrays go before drizzling
            yield drizzle_member(pixels, grid, params)

    return _mosaic(members, partials(), grid, params, window)


def mosaic_of_contributions(members: Sequence[MemberFiles], paths: Sequence[str | Path],
                            grid: Grid, params: FinalDrizzle,
                            window: Sequence[int] | None = None) -> datamodels.ImageModel:
    """The ``_i2d`` from saved contributions (:func:`contribution`, one per member, in member
    order = context bit order), read one at a time; the first member gives the product's base
    metadata, as in the reference's metadata blender. ``window``: only that part of ``grid``."""
    return _mosaic(members, paths, grid, params, window)


def _product_of(first: MemberFiles):
    """A new ``ImageModel`` holding the first member's metadata, as the reference's blender."""
    product = new_image()
    with first.read_model() as model:
        product.update(model)
        provenance = reference_catalog_of(model)
    if provenance:  # the absolute alignment's catalogue, as in every member
        record_reference_catalog(product, provenance)
    return product


def _mosaic(members: Sequence[MemberFiles], partials: Iterable[Partial | str | Path], grid: Grid,
            params: FinalDrizzle, window: Sequence[int] | None = None):
    """The ``_i2d`` of ``members`` from ``partials``: drizzled members, or paths to saved ones
    (read a plane at a time), on ``grid``, in member order; with ``window``, the product is
    that part of it."""
    product = _product_of(members[0])
    metas: list[dict] = []

    def noting(items):
        for item in items:
            metas.append(item.meta if isinstance(item, Partial) else partial_meta(item))
            yield item

    fillval = float(params.fillval) if str(params.fillval).upper() != "INDEF" else 0.0
    result = combine_partials(noting(partials), grid.shape, fillval=fillval, window=window,
                              propagate_dq=params.propagate_dq)
    assemble_i2d(product, result, grid if window is None else grid_window(grid, window), metas,
                 params)
    if params.blendheaders:
        add_header_table(product, header_table(
            [header_row(member.cal, header_overrides(meta))
             for member, meta in zip(members, metas, strict=True)]))
    return product


def member_meta(exposure: Exposure, group_id: str) -> dict:
    """What the i2d needs from a member once its pixels are released: its group, exposure
    times, instrument, step statuses and sky record (``background``: level in MJy/sr, method,
    subtracted; None without one) (JSON-serialisable)."""
    meta = exposure.meta
    sky = None if meta.sky is None else {
        "level": meta.sky.level, "method": meta.sky.method, "subtracted": meta.sky.subtracted}
    return {"group_id": group_id, **meta.times, **meta.instrument, "cal_step": dict(meta.steps),
            "background": sky}


def header_overrides(meta: dict) -> dict:
    """The datamodel attributes of a member's ``HDRTAB`` row known from its :func:`member_meta`
    rather than its file's header: the statuses of the steps before resample and the sky
    record, which image3 keeps in sidecars until the ``_crf`` is written."""
    sky = meta["background"] or {}
    return {**{f"meta.cal_step.{step}": status for step, status in meta["cal_step"].items()},
            **{f"meta.background.{item}": sky.get(item)
               for item in ("level", "method", "subtracted")}}


def _combined(values: list, how) -> float | None:
    values = [v for v in values if v is not None]
    return float(how(values)) if values else None


def _blend(values: list):
    """The blender's 'multi' rule: one value if all agree, else MULTIPLE."""
    distinct = {v for v in values if v is not None}
    if not distinct:
        return None
    return distinct.pop() if len(distinct) == 1 else "MULTIPLE"


def assemble_i2d(product, result: Resampled, grid: Grid, members: list[dict],
                 params: FinalDrizzle) -> None:
    """Fill an ``ImageModel`` (already holding the first input's meta) with the resampled arrays."""
    product.data = result.sci
    product.wht = result.wht
    if params.propagate_dq:
        product.dq = result.dq
    if params.enable_ctx:
        product.con = result.con
    if params.enable_err:
        product.err = result.err
        if params.report_var:
            product.var_poisson = result.var_poisson
            product.var_rnoise = result.var_rnoise
            product.var_flat = result.var_flat
    product.meta.bunit_data = "MJy/sr"
    product.meta.bunit_err = "MJy/sr"
    product.meta.wcs = grid.wcs
    header = fits_tan_header(grid.wcs)
    wcsinfo = product.meta.wcsinfo
    remove_sip(wcsinfo)  # the base exposure's, when tweakreg corrected it (image3.sip)
    for axis in (1, 2):
        setattr(wcsinfo, f"crpix{axis}", header[f"CRPIX{axis}"])
        setattr(wcsinfo, f"crval{axis}", header[f"CRVAL{axis}"])
        setattr(wcsinfo, f"ctype{axis}", header[f"CTYPE{axis}"])
        setattr(wcsinfo, f"cunit{axis}", "deg")
        setattr(wcsinfo, f"cdelt{axis}", header.get(f"CDELT{axis}", 1.0))
    for i in (1, 2):
        for j in (1, 2):
            key = f"PC{i}_{j}"
            value = header.get(key, header.get(f"CD{i}_{j}"))
            setattr(wcsinfo, f"pc{i}_{j}", value)
    wcsinfo.s_region = s_region(footprint(grid.wcs, grid.shape))

    # Exposure-time bookkeeping counts each exposure (group) once, as the reference does.
    by_group: dict[str, dict] = {}
    for m in members:
        by_group.setdefault(m["group_id"], m)
    groups = list(by_group.values())
    exp = product.meta.exposure
    exp.exposure_time = _combined([g["exposure_time"] for g in groups], sum)
    exp.effective_exposure_time = _combined([g["effective_exposure_time"] for g in groups], sum)
    if all(g["measurement_time"] is not None for g in groups):
        exp.measurement_time = _combined([g["measurement_time"] for g in groups], sum)
    exp.duration = _combined([g["duration"] for g in groups], sum)
    exp.start_time = _combined([m["start_time"] for m in members], min)
    exp.end_time = _combined([m["end_time"] for m in members], max)
    ins = product.meta.instrument
    ins.filter = _blend([m["filter"] for m in members])
    ins.pupil = _blend([m["pupil"] for m in members])
    ins.detector = _blend([m["detector"] for m in members])

    scale_sr = (grid.pixel_scale_arcsec ** 2) / _ARCSEC2_PER_SR
    product.meta.photometry.pixelarea_steradians = scale_sr
    product.meta.photometry.pixelarea_arcsecsq = grid.pixel_scale_arcsec ** 2
    res = product.meta.resample
    res.pointings = len(by_group)
    # the datamodel schema allows only 'ivm' and 'exptime' (RESWHT): ivm-smooth is an ivm
    # weighting; the history entry below records the exact choice
    res.weight_type = "ivm" if params.weight_type in IVM_TYPES else params.weight_type
    res.pixfrac = float(params.pixfrac)
    res.pixel_scale_ratio = float(grid.pixel_scale_ratio)
    product.meta.resample.kernel = params.kernel
    product.meta.resample.fillval = str(params.fillval)
    for step in ("tweakreg", "skymatch", "outlier_detection"):
        states = {m["cal_step"][step] for m in members if m["cal_step"][step]}
        if states:
            setattr(product.meta.cal_step, step,
                    "COMPLETE" if "COMPLETE" in states else sorted(states)[0])
    product.meta.cal_step.resample = "COMPLETE"
    product.meta.calibration_software_version = __version__
    product.add_history_entry(
        "image3 resample parameters: " + json.dumps(asdict(params), sort_keys=True),
        software={"name": "image3", "version": __version__},
    )
