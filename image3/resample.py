"""Drizzle core: per-exposure partial sums on a cutout of the output grid, and their exact join.

Drizzle's output is a weighted mean, ``sci = sum(w a d) / sum(w a)`` (w: input pixel weight,
a: overlap of the input pixel's drop with the output pixel, d: input surface brightness), so an
exposure can be drizzled alone onto the part of the output grid it touches and kept as
*un-normalised* sums; adding those sums for all exposures and normalising once gives the same
mosaic as drizzling every exposure, in order, into one ``drizzle.resample.Drizzle``.

Variances follow the reference (stcal ``Resample``): for each of VAR_RNOISE, VAR_POISSON and
VAR_FLAT, sqrt(var) is drizzled alone with the same weights and squared, giving sigma_i^2 per
exposure i on the output grid; with W_i = 1 / sigma_rnoise,i^2 (``ivm``) or the exposure time
(``exptime``), ``var = sum(W_i^2 sigma_i^2) / (sum W_i)^2 / pixel_scale_ratio^2``. (Two of those drizzles
share one call where they can, :func:`_drizzled_sigmas`; the values are the same.)

An exposure enters as :func:`prepare_arrays` gives it: its data with the sky removed, its
variances and its drizzle weight (:func:`weight_map`).

With ``propagate_dq`` each exposure's drizzle also ORs the DQ of the input pixels that
contribute (weight > 0) into each output pixel (drizzle's ``out_dq``); the exposures' planes are
ORed in the join, and output pixels no input reaches get :data:`NO_DATA_DQ`.

Units: data and errors in surface brightness (MJy/sr); variances in (MJy/sr)^2.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import zipfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from drizzle.resample import Drizzle, blot_image

from .datamodel import Exposure, sky_level_to_remove
from .dqflags import PIXEL, interpret_bits
from .errors import ConfigError, InputFileError
from .statistics import nanmedian

log = logging.getLogger(__name__)

__all__ = [
    "KERNELS",
    "NO_DATA_DQ",
    "VARIANCE_NAMES",
    "Partial",
    "PartialWriter",
    "Resampled",
    "blot",
    "combine_partials",
    "drizzle_exposure",
    "exposure_time",
    "partial_meta",
    "prepare_arrays",
    "weight_map",
]

KERNELS = ("square", "gaussian", "point", "turbo", "lanczos2", "lanczos3")
#: Output variance planes, in i2d extension order.
VARIANCE_NAMES = ("var_poisson", "var_rnoise", "var_flat")
# Weight types that weight by inverse read-noise variance (see weight_map).
IVM_TYPES = ("ivm", "ivm-smooth")
# Block size (pixels) of the smoothed read-noise variance: far larger than a PSF, far smaller
# than an amplifier (512 px on NIRCam) so the read-noise map's real structure is kept.
SMOOTH_BLOCK_PX = 32
_CTX_BITS = 32
#: Rows of an exposure blotted at a time: the float64 pixel map of a block is a few MB.
BLOT_BLOCK_ROWS = 128
#: DQ of an output pixel no input reaches (zero weight sum; SCI is ``fillval`` there): the
#: JWST flags of a pixel holding no science data, 513 (the reference leaves 0 there).
NO_DATA_DQ = PIXEL["DO_NOT_USE"] | PIXEL["NON_SCIENCE"]


# --------------------------------------------------------------------------------------------
# Input arrays and weights


def weight_map(
    dq: np.ndarray,
    var_rnoise: np.ndarray | None,
    good_bits: int | str | None,
    weight_type: str | None,
    exptime: float,
) -> np.ndarray:
    """Per-pixel drizzle weight (float32) of one exposure, as the reference builds it.

    ``ivm``: 1 / VAR_RNOISE (non-finite -> 0; all ones when VAR_RNOISE is missing);
    ``ivm-smooth``: 1 / VAR_RNOISE smoothed by :func:`smooth_variance` (the read-noise map's
    large-scale structure, e.g. per amplifier, without its pixel-to-pixel scatter);
    ``exptime``: ``exptime`` (the caller passes TMEASURE, else EFFEXPTM); None: 1.
    Pixels with a bad DQ bit (:func:`interpret_bits` of ``good_bits``) get 0.

    Why ``ivm-smooth``: a drizzled pixel is a weighted mean of the input pixels it overlaps, so
    weights that differ from pixel to pixel (a read-noise map scatters by ~10%) re-weight the
    pixels of an undersampled PSF against each other and scatter a star's flux by ~0.9% per
    exposure (measured: uniform +/-10% weights, FWHM 2 px). Smoothing the weight keeps the
    inverse-variance weighting between exposures and regions and removes that scatter.
    """
    bad_bits = interpret_bits(good_bits)
    # built in place: a 2048² frame's temporaries are 17 MB each
    good = np.bitwise_and(np.asarray(dq, dtype=np.uint32), np.uint32(bad_bits))
    good = good == 0
    if weight_type in IVM_TYPES:
        if var_rnoise is None or var_rnoise.shape != good.shape:
            log.warning("VAR_RNOISE not available: drizzle weight set to 1")
            result = np.ones(good.shape, dtype=np.float32)
        else:
            var = np.asarray(var_rnoise, dtype=np.float32)
            if weight_type == "ivm-smooth":
                smooth = smooth_variance(var)
                smooth[~np.isfinite(var)] = np.nan
                var = smooth
            else:
                var = var.copy()
            with np.errstate(divide="ignore", invalid="ignore"):
                result = np.divide(np.float32(1.0), var, out=var)
            result[~np.isfinite(result)] = 0
    elif weight_type == "exptime":
        result = np.full(good.shape, np.float32(exptime), dtype=np.float32)
    elif weight_type is None:
        result = np.ones(good.shape, dtype=np.float32)
    else:
        raise ConfigError(
            f"weight_type must be 'ivm', 'ivm-smooth', 'exptime' or None, got {weight_type!r}")
    result[~good] = 0
    return result


def smooth_variance(var: np.ndarray, block: int = SMOOTH_BLOCK_PX) -> np.ndarray:
    """Median of ``var`` over ``block`` x ``block`` pixel blocks, expanded back to full size
    (float32, a new array).

    Non-finite pixels are ignored; a block with none finite takes the global median.
    """
    ny, nx = var.shape
    py, px = -ny % block, -nx % block
    padded = np.full((ny + py, nx + px), np.nan, dtype=np.float32)
    inside = padded[:ny, :nx]
    inside[...] = var
    inside[~np.isfinite(inside)] = np.nan
    nby, nbx = padded.shape[0] // block, padded.shape[1] // block
    # each block's pixels in one row, so one sort finds every block's median
    blocks = padded.reshape(nby, block, nbx, block).transpose(0, 2, 1, 3).reshape(nby, nbx, -1)
    medians = nanmedian(blocks, axis=-1)
    del padded, inside, blocks
    empty = ~np.isfinite(medians)
    if empty.any():
        medians[empty] = nanmedian(var.ravel())
    full = np.repeat(np.repeat(medians, block, axis=0), block, axis=1)
    return full if (py, px) == (0, 0) else np.ascontiguousarray(full[:ny, :nx])


def exposure_time(exposure: Exposure, weight_type: str) -> float:
    """The reference's exposure time for ``exptime`` weighting (s): TMEASURE, else EFFEXPTM."""
    times = exposure.meta.times
    value = times["measurement_time"] or times["effective_exposure_time"]
    return float(value or times["exposure_time"] or 1.0)


def prepare_arrays(exposure: Exposure, good_bits, weight_type: str, with_variances: bool = True,
                   copy: bool = True) -> tuple[np.ndarray, dict, np.ndarray]:
    """Science data with the sky removed, variances and drizzle weight of one exposure.

    Pixels that are non-finite in SCI or in any variance, or flagged bad by ``good_bits``, get
    zero weight (the reference's ``match_nans_and_flags`` followed by its DQ mask).
    ``with_variances=False`` returns no variances (an empty dict), for a caller drizzling
    the data alone: their non-finite pixels still get zero weight, without copying them.
    ``copy=False`` returns the exposure's own variance arrays (when float32), zeroed in place,
    for a caller that discards the exposure.
    """
    data = np.asarray(exposure.data, dtype=np.float32) - np.float32(sky_level_to_remove(exposure))
    found = {}
    for name in ("var_rnoise", "var_poisson", "var_flat"):
        arr = getattr(exposure, name, None)
        if arr is not None and arr.shape == data.shape:
            found[name] = arr
    weight = weight_map(exposure.dq, found.get("var_rnoise"), good_bits, weight_type,
                        exposure_time(exposure, weight_type))
    # zeroed in place below; asarray gives the exposure's own array when it is float32
    own = np.array if copy else np.asarray
    variances = {name: own(arr, dtype=np.float32) for name, arr in found.items()} \
        if with_variances else {}
    bad = ~np.isfinite(data)
    for arr in found.values():
        bad |= ~np.isfinite(arr)
    del found
    for arr in (weight, data, *variances.values()):
        arr[bad] = 0.0
    return data, variances, weight


# --------------------------------------------------------------------------------------------
# Per-exposure partial sums


@dataclass
class Partial:
    """One exposure drizzled onto the cutout ``bbox`` of the output grid, as additive sums.

    ``bbox`` = (y0, y1, x0, x1), half-open, in output-grid pixels; every array is
    (y1 - y0, x1 - x0). ``data_sum`` = sum(w a d), ``weight_sum`` = sum(w a) (drizzle's WHT),
    ``coverage`` = where this exposure contributes (drizzle's context bit). ``variance_sums[name]`` =
    (sum W^2 sigma^2, sum W) of that variance. All sums float32. ``dq`` (uint32, or None when
    not asked for): the bitwise OR of the DQ of the input pixels that contribute to each output
    pixel. ``meta``: what the product needs from the exposure once its pixels are released
    (JSON-serialisable).
    """

    out_shape: tuple[int, int]
    bbox: tuple[int, int, int, int]
    data_sum: np.ndarray
    weight_sum: np.ndarray
    coverage: np.ndarray
    variance_sums: dict[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)
    pixel_scale_ratio: float = 1.0
    meta: dict = field(default_factory=dict)
    dq: np.ndarray | None = None


def _cutout(pixmap: np.ndarray, out_shape, margin: int) -> tuple[int, int, int, int]:
    """Output-grid box (y0, y1, x0, x1) holding every finite pixmap point plus ``margin``."""
    ny, nx = out_shape
    x, y = pixmap[..., 0], pixmap[..., 1]
    x0 = max(0, math.floor(np.nanmin(x)) - margin)
    x1 = min(nx, math.ceil(np.nanmax(x)) + margin + 1)
    y0 = max(0, math.floor(np.nanmin(y)) - margin)
    y1 = min(ny, math.ceil(np.nanmax(y)) + margin + 1)
    return y0, max(y0, y1), x0, max(x0, x1)


def _kernel_margin(pixmap: np.ndarray, kernel: str, pixfrac: float,
                   pixel_scale_ratio: float) -> int:
    """Output pixels a drop can reach beyond its centre: a safe bound for every kernel.

    Square/turbo drops reach < pixfrac input pixels, gaussian ~1.1 pixfrac (at least 1.2) and
    lanczos its order (2 or 3); input pixels span at most ``step`` output pixels.
    """
    # every 8th row/column is plenty: distortions are smooth and the bound has slack
    along_x = np.diff(pixmap[::8], axis=1)
    along_y = np.diff(pixmap[:, ::8], axis=0)
    with np.errstate(invalid="ignore"):
        step = max(
            np.nanmax(np.hypot(along_x[..., 0], along_x[..., 1]), initial=0.0),
            np.nanmax(np.hypot(along_y[..., 0], along_y[..., 1]), initial=0.0),
        )
    step = max(float(step), 1.0 / pixel_scale_ratio)
    reach = 3.0 if kernel.startswith("lanczos") else max(1.5, 1.2 * pixfrac)
    return math.ceil(reach * step) + 2


def drizzle_exposure(
    data: np.ndarray,
    variances: Mapping[str, np.ndarray],
    weight: np.ndarray,
    pixmap: np.ndarray,
    out_shape: tuple[int, int],
    *,
    weight_type: str,
    kernel: str,
    pixfrac: float,
    pixel_scale_ratio: float,
    exptime: float = 1.0,
    dq: np.ndarray | None = None,
    sink: PartialWriter | None = None,
    consume: bool = False,
) -> Partial:
    """Drizzle one exposure (data and each variance) onto its cutout of the output grid.

    Parameters
    ----------
    data
        Surface brightness (sky already removed); pixels with zero weight are ignored.
    variances
        Any of ``var_rnoise``, ``var_poisson``, ``var_flat`` (same shape as ``data``).
        ``var_rnoise`` is required for ``weight_type='ivm'``.
    weight
        Drizzle weight per input pixel (:func:`weight_map`).
    pixmap
        (ny, nx, 2) input pixel centres on the output grid (:func:`image3.wcs.pixel_map`);
        NaN outside the input's bounding box.
    out_shape
        (ny, nx) of the full output grid.
    weight_type
        ``ivm`` or ``exptime``: the per-exposure variance weight W (see module docstring).
    kernel, pixfrac, pixel_scale_ratio
        Drizzle parameters; ``pixel_scale_ratio`` = output / input pixel scale.
    exptime
        Exposure time (s): the variance weight W for ``exptime`` weighting.
    dq
        The exposure's DQ (unsigned, same shape as ``data``) to propagate (the Partial's
        ``dq``), or None.
    sink
        If given, every plane (data and weight sums, coverage, each variance's sums) is
        written to it as soon as it is made and the returned Partial holds only the cutout's
        place (``bbox``, ``out_shape``, ``pixel_scale_ratio``; its arrays are empty): a
        caller writing the contribution out never holds the planes together.
    consume
        The caller hands ``variances`` over: each is replaced by its square root in place and
        dropped from the dict once drizzled, so no copy of it is made.
    """
    if kernel not in KERNELS:
        raise ConfigError(f"kernel must be one of {', '.join(KERNELS)}, got {kernel!r}")
    if weight_type not in (*IVM_TYPES, "exptime"):
        raise ConfigError(
            f"weight_type must be 'ivm', 'ivm-smooth' or 'exptime', got {weight_type!r}")
    unknown = set(variances) - set(VARIANCE_NAMES)
    if unknown:
        raise ValueError(f"unknown variance arrays {sorted(unknown)}; expected {VARIANCE_NAMES}")
    if weight_type in IVM_TYPES and variances and "var_rnoise" not in variances:
        raise InputFileError("weight_type 'ivm' needs VAR_RNOISE to weight the variances")
    out_shape = (int(out_shape[0]), int(out_shape[1]))

    finite = np.isfinite(pixmap[..., 0]) & np.isfinite(pixmap[..., 1])
    rows = np.flatnonzero(finite.any(axis=1))
    cols = np.flatnonzero(finite.any(axis=0))
    if rows.size == 0:
        return _empty_partial(out_shape, variances, pixel_scale_ratio, dq is not None)
    # drizzle's input range (the reference's ``resample_range`` of the bounding box)
    in_range = {"xmin": int(cols[0]), "xmax": int(cols[-1]),
                "ymin": int(rows[0]), "ymax": int(rows[-1])}
    sub = pixmap[in_range["ymin"]:in_range["ymax"] + 1, in_range["xmin"]:in_range["xmax"] + 1]
    margin = _kernel_margin(sub, kernel, pixfrac, pixel_scale_ratio)
    y0, y1, x0, x1 = _cutout(sub, out_shape, margin)
    if y1 <= y0 or x1 <= x0:
        return _empty_partial(out_shape, variances, pixel_scale_ratio, dq is not None)
    with _relative_to_cutout(pixmap, x0, y0) as shifted:
        return _drizzle_cutout(data, variances, weight, shifted, in_range, out_shape,
                               (y0, y1, x0, x1), weight_type=weight_type, kernel=kernel,
                               pixfrac=pixfrac, pixel_scale_ratio=pixel_scale_ratio,
                               exptime=exptime, dq=dq, sink=sink, consume=consume)


@contextlib.contextmanager
def _relative_to_cutout(pixmap: np.ndarray, x0: int, y0: int):
    """``pixmap`` moved by (-x0, -y0) in place for the block, and moved back after it.

    Saves a copy of the (ny, nx, 2) float64 map. Both moves are exact, so the caller gets its
    map back bit for bit: the cutout origin is an integer no larger than any finite map value
    (it is their floor less a margin, or 0), and for doubles 0 <= n <= v, v - n is a multiple
    of v's unit in the last place no larger than v, hence representable, and so is (v - n) + n.
    A map that is not C-contiguous float64 (drizzle would copy it anyway) is copied instead.
    """
    offset = np.array([x0, y0], dtype=np.float64)
    if pixmap.dtype != np.float64 or not pixmap.flags.c_contiguous or not pixmap.flags.writeable:
        yield pixmap - offset
        return
    pixmap -= offset
    try:
        yield pixmap
    finally:
        pixmap += offset


def _drizzle_cutout(data, variances, weight, shifted, in_range, out_shape, bbox, *,
                    weight_type, kernel, pixfrac, pixel_scale_ratio, exptime, dq=None,
                    sink=None, consume=False) -> Partial:
    """:func:`drizzle_exposure` once the cutout ``bbox`` and the map onto it are known."""
    y0, y1, x0, x1 = bbox
    cut_shape = (y1 - y0, x1 - x0)
    drizzle_args = {
        "exptime": exptime,
        "pixmap": shifted,
        "iscale": 1.0,
        "pixel_scale_ratio": pixel_scale_ratio,
        "weight_map": weight,
        "wht_scale": 1.0,
        "pixfrac": pixfrac,
        "in_units": "cps",
        **in_range,
    }
    # coverage is drizzle's context bit, not weight > 0: lanczos kernels' negative lobes can
    # leave a covered pixel with a weight sum <= 0
    driz = Drizzle(kernel=kernel, fillval="NaN", out_shape=cut_shape, max_ctx_id=0)
    driz.add_image(data, **drizzle_args, **({} if dq is None else {"dq": dq}))
    out_dq = driz.out_dq
    weight_sum = driz.out_wht
    # sum(w a), kept for the variances (whose drizzled sigmas are sums over it) when the
    # name is given an empty plane below
    norm = weight_sum
    # sci * wht in float64 rounded to float32, without full-size float64 temporaries
    data_sum = np.multiply(driz.out_img, weight_sum, dtype=np.float64,
                           out=np.empty(cut_shape, dtype=np.float32))
    data_sum[weight_sum == 0] = 0.0
    coverage = driz.out_ctx[0] != 0
    del driz
    weight_sum = weight_sum.astype(np.float32, copy=False)
    if sink is not None:
        for name, plane in (("data_sum", data_sum), ("weight_sum", weight_sum),
                            ("coverage", coverage), ("dq", out_dq)):
            if plane is not None:
                sink.add(name, plane)
        empty = np.zeros((0, 0), dtype=np.float32)
        data_sum, weight_sum, coverage = empty, empty, empty.astype(bool)
        out_dq = None if out_dq is None else empty.astype(np.uint32)

    # Each variance's drizzled sigma (the data's weights) is squared and summed with the
    # variance weight W at once, so few drizzled variances are alive at a time. With ivm
    # weighting W = 1 / drizzled VAR_RNOISE, so VAR_RNOISE goes first.
    w = None
    if weight_type not in IVM_TYPES:
        w = np.full(cut_shape, float(exptime))
    elif "var_rnoise" not in variances:
        w = np.zeros(cut_shape)
    variance_sums = {}
    order = sorted(variances, key=lambda n: n != "var_rnoise")
    sigmas = _drizzled_sigmas(variances, order, weight, norm, drizzle_args, kernel, cut_shape,
                              consume)
    for name, var in sigmas:
        np.square(var, out=var)
        if w is None:
            w = _inverse_where_positive(var)
        sums = _weighted_variance_sums(var, w)
        del var
        if sink is None:
            variance_sums[name] = sums
        else:
            sink.add_variance(name, *sums)
        del sums
    variance_sums = {n: variance_sums[n] for n in VARIANCE_NAMES if n in variance_sums}

    return Partial(out_shape, (y0, y1, x0, x1), data_sum, weight_sum, coverage, variance_sums,
                   float(pixel_scale_ratio), dq=out_dq)


def _inverse_where_positive(var: np.ndarray) -> np.ndarray:
    """float64 ``1 / var`` (the float32 reciprocal) where ``var`` is positive, 0 elsewhere."""
    usable = (var > 0) & np.isfinite(var)
    inverse = np.reciprocal(var, where=usable, out=np.zeros_like(var))
    return inverse.astype(np.float64)


def _weighted_variance_sums(var: np.ndarray, w: np.ndarray,
                            rows: int = 256) -> tuple[np.ndarray, np.ndarray]:
    """float32 (var · W², W), both 0 where var is negative or not finite or W is not
    positive; var · W² is formed in float64 a block of ``rows`` rows at a time (no
    full-size float64 temporary)."""
    wsum = np.empty(var.shape, dtype=np.float32)
    wt = np.empty(var.shape, dtype=np.float32)
    for r0 in range(0, var.shape[0], rows):
        v, ww = var[r0:r0 + rows], w[r0:r0 + rows]
        ok = (v >= 0) & np.isfinite(v) & (ww > 0)
        with np.errstate(over="ignore", invalid="ignore"):
            block = v.astype(np.float64)
            block *= ww
            block *= ww
        block[~ok] = 0.0
        wsum[r0:r0 + rows] = block
        weights = ww.astype(np.float32)
        weights[~ok] = 0.0
        wt[r0:r0 + rows] = weights
    return wsum, wt


#: Kernels whose drops are never negative: with them a drizzle's weights can carry a sigma.
_POSITIVE_KERNELS = ("square", "turbo", "point", "gaussian")


def _drizzled_sigmas(variances, order, weight, weight_sum, drizzle_args, kernel, cut_shape,
                     consume):
    """(name, drizzled sigma) for each variance in ``order``: sqrt(var) drizzled with the
    data's weights, float32, NaN where nothing lands (the reference's values).

    A drizzle is a weighted mean and its weight plane is linear in the weight map, so one
    call yields two sums over the same drops a: with weights w * s_c and data s_p / s_c,
    ``out_wht`` = sum(w a s_c) and ``out_img * out_wht`` = sum(w a s_p), each divided by
    ``weight_sum`` = sum(w a) (the data's drizzle) to give the two drizzled sigmas. So
    VAR_RNOISE carries the next variance through one drizzle instead of two (a third of
    the variance drizzling, which dominates this function), where its sigma is positive
    wherever the weight is and the kernel's drops are never negative; the values are the
    separate drizzles' up to float32 rounding.
    """
    def sigma(name):
        if consume:
            values = variances.pop(name)
            np.sqrt(values, out=values)
            return values
        return np.sqrt(variances[name])

    def drizzle(values, weights):
        driz = Drizzle(kernel=kernel, fillval="NaN", out_shape=cut_shape, disable_ctx=True)
        driz.add_image(values, **{**drizzle_args, "weight_map": weights})
        return driz

    if (kernel in _POSITIVE_KERNELS and len(order) > 1 and order[0] == "var_rnoise"
            and bool(np.all(variances["var_rnoise"][weight > 0] > 0))):
        carrier, passenger = order[:2]
        order = order[2:]
        sigma_c = sigma(carrier)
        carried = np.multiply(weight, sigma_c, dtype=np.float32)
        positive = carried > 0
        ratio = sigma(passenger)
        np.divide(ratio, sigma_c, out=ratio, where=positive)
        ratio[~positive] = 0.0
        del positive
        del sigma_c
        driz = drizzle(ratio, carried)
        del ratio, carried
        covered = weight_sum > 0
        total = driz.out_wht.astype(np.float64)
        with np.errstate(invalid="ignore", divide="ignore"):
            total /= weight_sum
        total[~covered] = np.nan
        out_c = total.astype(np.float32)
        total *= driz.out_img
        del driz
        yield carrier, out_c
        del out_c
        out_p = total.astype(np.float32)
        del total
        yield passenger, out_p
        del out_p
    for name in order:
        driz = drizzle(sigma(name), weight)
        out = driz.out_img
        del driz
        yield name, out


def _empty_partial(out_shape, variances, pixel_scale_ratio, with_dq: bool) -> Partial:
    log.warning("exposure does not overlap the output grid: it contributes nothing")
    empty = np.zeros((0, 0), dtype=np.float32)
    return Partial(out_shape, (0, 0, 0, 0), empty, empty, np.zeros((0, 0), dtype=bool),
                   {name: (empty, empty) for name in variances if name in VARIANCE_NAMES},
                   float(pixel_scale_ratio), dq=empty.astype(np.uint32) if with_dq else None)


class PartialWriter:
    """Writes a :class:`Partial` into an uncompressed ``.npz`` plane by plane, so a plane can
    leave memory once written (the ``sink`` of :func:`drizzle_exposure`). The file is made
    under a temporary name and renamed to exactly ``path`` by :meth:`finish`; leaving the
    ``with`` block on an error removes it.
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._tmp = self.path.with_name(f".{self.path.name}.tmp")
        self._zip = zipfile.ZipFile(self._tmp, "w", compression=zipfile.ZIP_STORED,
                                    allowZip64=True)
        self._written: set[str] = set()

    def add(self, name: str, array) -> None:
        with self._zip.open(f"{name}.npy", "w", force_zip64=True) as stream:
            np.lib.format.write_array(stream, np.asanyarray(array), allow_pickle=False)
        self._written.add(name)

    def add_variance(self, name: str, wsum: np.ndarray, wt: np.ndarray) -> None:
        self.add(f"{name}_wsum", wsum)
        self.add(f"{name}_wt", wt)

    def finish(self, partial: Partial) -> None:
        """Write what ``partial`` holds that is not written yet, and rename the file into
        place."""
        for name, plane in _planes_of(partial).items():
            if name not in self._written:
                self.add(name, plane)
        self._zip.close()
        os.replace(self._tmp, self.path)  # never a truncated file under the final name

    def __enter__(self) -> PartialWriter:
        return self

    def __exit__(self, exc_type, *_) -> None:
        if exc_type is not None:
            self._zip.close()
            self._tmp.unlink(missing_ok=True)


def _planes_of(partial: Partial) -> dict[str, np.ndarray]:
    """A :class:`Partial` as the named arrays of its file (no copies of its planes)."""
    planes = {
        "out_shape": np.array(partial.out_shape, dtype=np.int64),
        "bbox": np.array(partial.bbox, dtype=np.int64),
        "data_sum": partial.data_sum,
        "weight_sum": partial.weight_sum,
        "coverage": partial.coverage,
        "pixel_scale_ratio": np.array(partial.pixel_scale_ratio),
        "meta": np.array(json.dumps(partial.meta)),
    }
    for name, (wsum, wt) in partial.variance_sums.items():
        planes[f"{name}_wsum"], planes[f"{name}_wt"] = wsum, wt
    if partial.dq is not None:
        planes["dq"] = partial.dq
    return planes


@contextlib.contextmanager
def _planes(item: Partial | str | Path):
    """The planes of a partial by their file names (:func:`_planes_of`), read from the file
    one at a time when asked for if ``item`` is a path."""
    if isinstance(item, Partial):
        yield _planes_of(item)
        return
    try:
        stream = np.load(item)
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as err:
        raise InputFileError(f"{item}: not a drizzle partial written by image3 ({err})") from None
    with stream:
        try:
            yield stream
        except (KeyError, zipfile.BadZipFile) as err:
            raise InputFileError(
                f"{item}: not a drizzle partial written by image3 ({err})") from None


def partial_meta(path: str | Path) -> dict:
    """The ``meta`` of a saved :class:`Partial`, without reading its planes."""
    with _planes(path) as planes:
        return json.loads(str(planes["meta"]))


# --------------------------------------------------------------------------------------------
# Join


@dataclass
class Resampled:
    """The mosaic arrays of the ``_i2d`` (float32, except CON int32 (planes, ny, nx) and DQ
    uint32, None unless asked for)."""

    sci: np.ndarray
    wht: np.ndarray
    con: np.ndarray
    var_poisson: np.ndarray
    var_rnoise: np.ndarray
    var_flat: np.ndarray
    err: np.ndarray
    n_inputs: int
    dq: np.ndarray | None = None


def combine_partials(
    partials: Iterable[Partial | str | Path],
    out_shape: tuple[int, int],
    fillval: float | str = np.nan,
    window: tuple[int, int, int, int] | None = None,
    propagate_dq: bool = False,
) -> Resampled:
    """Sum per-exposure partials (in the given order = context bit order) into the mosaic.

    Partials (or paths to saved ones, read one plane at a time) are accumulated into
    output-sized sums (data and weight float64, variance sums float32 as each partial holds
    them), so memory is ~44 bytes per output pixel (48 with ``propagate_dq``) plus one plane of
    a partial; the result planes are made in place. The result equals drizzling the same inputs
    serially into one ``Drizzle`` to float32 rounding.
    SCI is ``fillval`` and every variance and ERR NaN where no input has weight.

    ``window`` (y0, y1, x0, x1), half-open pixel ranges of the ``out_shape`` grid: only that part
    is made (a sky tile), from the parts of the partials that fall in it; its pixels are those
    of the whole mosaic, and memory follows the window.

    ``propagate_dq``: the result's DQ is the OR of the partials' ``dq`` planes (each partial
    must have one), with :data:`NO_DATA_DQ` added where no input has weight.
    """
    if isinstance(fillval, str):
        fillval = np.nan if fillval.strip().upper() in ("NAN", "INDEF") else float(fillval)
    full = (int(out_shape[0]), int(out_shape[1]))
    wy0, wy1, wx0, wx1 = window if window is not None else (0, full[0], 0, full[1])
    ny, nx = wy1 - wy0, wx1 - wx0
    data_sum = np.zeros((ny, nx))
    weight_sum = np.zeros((ny, nx))
    var_wsum = {name: np.zeros((ny, nx), dtype=np.float32) for name in VARIANCE_NAMES}
    var_wt = {name: np.zeros((ny, nx), dtype=np.float32) for name in VARIANCE_NAMES}
    con = np.zeros((1, ny, nx), dtype=np.uint32)
    dq = np.zeros((ny, nx), dtype=np.uint32) if propagate_dq else None
    ratio = None
    n = 0
    for item in partials:
        with _planes(item) as planes:
            shape = tuple(int(v) for v in planes["out_shape"])
            if shape != full:
                raise ValueError(f"partial for a {shape} grid cannot join a {full} grid")
            p_ratio = float(planes["pixel_scale_ratio"])
            if ratio is None:
                ratio = p_ratio
            elif not math.isclose(p_ratio, ratio, rel_tol=1e-12):
                raise ValueError(f"partials disagree on pixel_scale_ratio: {ratio} vs {p_ratio}")
            plane, bit = divmod(n, _CTX_BITS)
            if plane == con.shape[0]:
                con = np.concatenate([con, np.zeros((1, ny, nx), dtype=np.uint32)])
            n += 1
            y0, y1, x0, x1 = (int(v) for v in planes["bbox"])
            cy0, cy1, cx0, cx1 = max(y0, wy0), min(y1, wy1), max(x0, wx0), min(x1, wx1)
            if cy1 <= cy0 or cx1 <= cx0:
                continue
            sl = slice(cy0 - wy0, cy1 - wy0), slice(cx0 - wx0, cx1 - wx0)  # in the window
            part = slice(cy0 - y0, cy1 - y0), slice(cx0 - x0, cx1 - x0)  # in the partial
            # one plane in memory at a time (read from the file when it is one)
            data_sum[sl] += planes["data_sum"][part]
            weight_sum[sl] += planes["weight_sum"][part]
            for name in VARIANCE_NAMES:
                if f"{name}_wsum" in planes:
                    var_wsum[name][sl] += planes[f"{name}_wsum"][part]
                    var_wt[name][sl] += planes[f"{name}_wt"][part]
            con[plane][sl] |= planes["coverage"][part].astype(np.uint32) << np.uint32(bit)
            if dq is not None:
                dq[sl] |= planes["dq"][part]

    untouched = weight_sum == 0
    if dq is not None:
        dq[untouched] |= np.uint32(NO_DATA_DQ)
    weight_sum[untouched] = 1.0
    data_sum /= weight_sum
    weight_sum[untouched] = 0.0
    data_sum[untouched] = fillval
    sci = data_sum.astype(np.float32)
    del data_sum, untouched
    scaling = np.float32(1.0 / (ratio or 1.0) ** 2)
    variances = {}
    err = np.zeros((ny, nx), dtype=np.float32)
    none = np.ones((ny, nx), dtype=bool)  # no variance at all: ERR NaN
    for name in VARIANCE_NAMES:
        var, wt = var_wsum.pop(name), var_wt.pop(name)
        uncovered = wt <= 0
        wt[uncovered] = 1.0
        var /= wt
        var /= wt
        var *= scaling
        var[uncovered] = np.nan
        del wt
        finite = ~np.isnan(var)
        np.add(err, var, out=err, where=finite)
        none &= ~finite
        variances[name] = var
        del uncovered, finite
    np.sqrt(err, out=err)
    err[none] = np.nan
    del none
    return Resampled(
        sci=sci,
        wht=weight_sum.astype(np.float32),
        con=con.view(np.int32),
        var_poisson=variances["var_poisson"],
        var_rnoise=variances["var_rnoise"],
        var_flat=variances["var_flat"],
        err=err,
        n_inputs=n,
        dq=dq,
    )


# --------------------------------------------------------------------------------------------
# Blot


def blot(image: np.ndarray, pixmap: np.ndarray, in_shape: tuple[int, int], *,
         fillval: float = np.nan, interp: str = "linear",
         origin: tuple[int, int] = (0, 0)) -> np.ndarray:
    """Resample a mosaic (e.g. the median) back onto an exposure's detector grid (float32).

    ``pixmap`` is the exposure's :func:`image3.wcs.pixel_map` onto the mosaic grid, shape
    ``in_shape + (2,)``. As in the reference, NaN pixmap entries become -1 (off the mosaic,
    so ``fillval``) and the interpolation is bilinear. ``origin`` = (y0, x0): where the
    top-left pixel of ``image`` lies on the mosaic when ``image`` is a window of it.
    """
    in_shape = (int(in_shape[0]), int(in_shape[1]))
    if pixmap.shape != in_shape + (2,):
        raise ValueError(f"pixmap shape {pixmap.shape} does not match the exposure {in_shape}")
    image = np.asarray(image, dtype=np.float32)
    offset = np.array([origin[1], origin[0]], dtype=np.float64)
    out = np.full(in_shape, fillval, dtype=np.float32)
    # each output pixel depends only on its own map entry, so blocks of rows give the same
    # image as one call without a full-size copy of the float64 map
    for r0 in range(0, in_shape[0], BLOT_BLOCK_ROWS):
        r1 = min(r0 + BLOT_BLOCK_ROWS, in_shape[0])
        block = pixmap[r0:r1] - offset
        block[np.isnan(block)] = -1.0
        blot_image(data=image, pixmap=block, out_img=out[r0:r1], fillval=fillval, iscale=1.0,
                   interp=interp)
    return out
