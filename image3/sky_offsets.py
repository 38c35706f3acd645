"""Sky offsets between overlapping members, from their registered pixel differences.

Two members that see the same sky differ, pixel for pixel once registered, only by their sky
levels and their noise: sources and extended emission (a nebula) cancel, which a statistic of
each member's own pixels in the overlap (the reference's way) cannot do once the emission
fills the overlap. For a pair (a, b):

* b's usable pixels are resampled at a's pixel centres, bilinearly, through a's corrected
  gwcs forward and b's inverse (:func:`image3.wcs.pixel_map`); a pixel of b next to an
  unusable one gives no value (NaN propagates), so masks are respected;
* the offset sky_a - sky_b is the median of the differences a - b where both have a value,
  clipped as the sky statistic is (``nclip``, ``lsigma``, ``usigma``; ``lower``/``upper``
  limit the pixel values that enter, not the differences). The median, whatever ``skystat``:
  the differences are symmetric about the offset but for residuals of sources, whose cores
  are clipped and whose faint wings would bias a mean; its error is the textbook one;
* its uncertainty is that of the clipped differences' mean from their scatter between blocks
  of :data:`BLOCK_PX` pixels a side (a cluster-robust standard error), so what does not cancel
  (residual structure from misregistration, flat-field errors, a nebula seen through
  different PSFs) counts; never below the statistical 1.2533 std / sqrt(n) of the median.

Units: data, offsets and uncertainties in the data's units (MJy/sr); pixel coordinates
0-based, the first pixel's centre at 0.
"""

from __future__ import annotations

import dataclasses
import numpy as np
from scipy.ndimage import map_coordinates

from .parameters import SkyStatistics
from .statistics import sky_statistic
from .wcs import pixel_map

__all__ = ["BLOCK_PX", "MIN_PAIR_PIXELS", "pair_offset", "registered_differences"]

#: Side (pixels) of the blocks whose scatter gives a pair's uncertainty: larger than a
#: source's residual, small enough that a 10 % overlap strip of a 2048² detector holds dozens.
BLOCK_PX = 64
#: Fewest pixels of differences that give a pair offset (their error is then ~0.2 sigma).
MIN_PAIR_PIXELS = 100
#: Evaluation step (pixels) of the pixel map between the two members, and the degree of the
#: spline between its nodes (3e-8 px error on NIRCam).
_PIXMAP_STEP = 16
_PIXMAP_ORDER = 3
#: Clip of the differences before the block means: this many clipped standard deviations.
_BLOCK_CLIP = 4.0


def registered_differences(data: np.ndarray, usable: np.ndarray, wcs, other: np.ndarray,
                           other_usable: np.ndarray, other_wcs) -> np.ndarray | None:
    """``data - other`` at ``data``'s pixel centres, ``other`` resampled bilinearly through
    ``wcs`` forward and ``other_wcs`` inverse: float32 of ``data``'s shape, NaN where either
    has no usable value (``usable``/``other_usable``: bool masks); None when they do not
    overlap."""
    pixmap = pixel_map(wcs, data.shape, other_wcs, _PIXMAP_STEP, _PIXMAP_ORDER)
    x, y = pixmap[..., 0], pixmap[..., 1]
    ny, nx = other.shape
    with np.errstate(invalid="ignore"):
        inside = usable & (x >= 0) & (x <= nx - 1) & (y >= 0) & (y <= ny - 1)
    if not inside.any():
        return None
    masked = np.where(other_usable, other, np.nan).astype(np.float32)
    resampled = map_coordinates(masked, [y[inside], x[inside]], order=1, mode="constant",
                                cval=np.nan)
    differences = np.full(data.shape, np.nan, dtype=np.float32)
    differences[inside] = data[inside] - resampled
    return differences


def pair_offset(differences: np.ndarray, params: SkyStatistics) -> dict | None:
    """The offset, its uncertainty and the pixels used, from :func:`registered_differences`.

    Returns ``{"offset", "uncertainty", "npix"}`` (data units; ``npix`` the differences the
    statistic kept after clipping), or None when fewer than :data:`MIN_PAIR_PIXELS` remain.
    """
    values = differences[np.isfinite(differences)]
    if values.size < MIN_PAIR_PIXELS:
        return None
    offset, npix = sky_statistic(values, dataclasses.replace(params, skystat="median", lower=None,
                                                             upper=None))
    if offset is None or npix < MIN_PAIR_PIXELS:
        return None
    std = _robust_std(values)
    statistical = 1.2533 * std / np.sqrt(npix)
    spread = _block_standard_error(differences, offset, _BLOCK_CLIP * std)
    return {"offset": float(offset), "uncertainty": float(max(statistical, spread)),
            "npix": int(npix)}


def _robust_std(values: np.ndarray) -> float:
    """1.4826 × the median absolute deviation (the standard deviation of Gaussian values)."""
    return float(1.4826 * np.median(np.abs(values - np.median(values))))


def _block_standard_error(differences: np.ndarray, centre: float, clip: float) -> float:
    """Standard error of the mean of the differences within ``centre`` ± ``clip`` from the
    scatter of their means in BLOCK_PX² blocks weighted by their counts (blocks with at
    least 1/8 of the fullest one's; 0 with < 4 blocks)."""
    ny, nx = differences.shape
    by, bx = -(-ny // BLOCK_PX), -(-nx // BLOCK_PX)
    padded = np.full((by * BLOCK_PX, bx * BLOCK_PX), np.nan, dtype=np.float32)
    padded[:ny, :nx] = differences
    with np.errstate(invalid="ignore"):
        kept = np.abs(padded - centre) <= clip
    blocks = (by, BLOCK_PX, bx, BLOCK_PX)
    counts = kept.reshape(blocks).sum(axis=(1, 3)).ravel().astype(float)
    sums = np.where(kept, padded - centre, 0.0).reshape(blocks).sum(axis=(1, 3), dtype=float).ravel()
    used = counts >= max(counts.max() / 8, 1)
    k = int(used.sum())
    if k < 4:
        return 0.0
    counts, sums = counts[used], sums[used]
    mean = sums.sum() / counts.sum()
    residuals = sums - counts * mean  # n_k (m_k - mean)
    return float(np.sqrt(k / (k - 1) * np.sum(residuals ** 2)) / counts.sum())
