"""Robust statistics of pixel values: the sky statistic, sigma clipping, a fast NaN median.

Two clippings sit here because two references clip differently: stsci.imagestats (the sky
statistic) about the mean, astropy's ``SigmaClip`` (the catalogue's local background, the
outlier step's weight threshold) about the median.

:func:`sky_statistic` is the sky value of an image's pixels as the reference's skymatch
defines it (stsci.imagestats): values clipped about their mean, then their mode, median, mean
or histogram median; the mode is measured by a fitted peak (see its docstring).

:func:`sigma_clip_1d` repeats ``astropy.stats.SigmaClip(sigma, maxiters=maxiters)`` on
finite 1-D values (cenfunc median, stdfunc std, bounds inclusive): each round computes the
bounds median ± sigma·std of the values kept so far and keeps those inside them, until a
round removes nothing or ``maxiters`` rounds have run. The same numpy reductions on the same
values keep the same values (tests/test_statistics.py compares it with astropy).

:func:`sorted_sigma_clip_bounds` runs the same rounds on values sorted once, where each
round's kept values are a slice: its median is read off and only its standard deviation is
summed (4 M drizzle weights: ~0.1 s instead of ~0.35 s). Summed in sorted order, the bounds
can differ from astropy's by float32 rounding; for sums over many values, not for keeping
exactly astropy's values.

:func:`nanmedian` is numpy's ``nanmedian`` of a float32 array, several times faster: the
median of the singles, the drizzle core's smoothed read-noise variance and the outlier
step's local background use it.

Values are in the data's units (MJy/sr for pixel data).
"""

from __future__ import annotations

import logging
import math

import numpy as np
from numpy.polynomial import polynomial as P

from .parameters import SkyStatistics

log = logging.getLogger(__name__)

__all__ = [
    "nanmedian",
    "sigma_clip_1d",
    "sky_statistic",
    "sorted_sigma_clip_bounds",
]

# The fitted mode uses the pixel-value histogram within this many core sigmas of the peak. A
# cubic in log(counts) absorbs the skew that faint source wings add, so the window can be wide
# (low scatter) without the peak being pulled towards the source tail. Measured on 512 x 512
# unit-noise pixels with 3-10 % of pixels on sources: quadratic over +-1 sigma: scatter 0.004,
# bias +0.004 to +0.012; cubic over +-1.5: 0.006, < 0.002; cubic over +-2: 0.0045, < 0.007.
_MODE_HALF_WINDOW = 2.0
_MODE_DEGREE = 3
_MODE_MAX_ITERATIONS = 30


# --------------------------------------------------------------------------------------------
# Sky statistic


def sky_statistic(values: np.ndarray, params: SkyStatistics) -> tuple[float | None, int]:
    """Sky value of pixel values and the number of pixels it used, as the reference defines it:
    ``params.skystat`` with the clipping and binning of ``params`` (its ``dqbits`` unused).

    Clipping is stsci.imagestats': values outside [``lower``, ``upper``] (data units; None =
    no limit) are ignored, then ``nclip`` times the mean and standard deviation (N - 1) of the
    values inside the current limits set new limits ``mean - lsigma*std`` ...
    ``mean + usigma*std`` (never wider than ``lower``/``upper``) over all values.
    On the values inside the final limits:

    - ``mean``, ``median``: their mean and median;
    - ``midpt``: imagestats' histogram median (bins ``binwidth`` standard deviations wide,
      interpolated within the bin holding the half-way count), with imagestats' conventions;
    - ``imagestats_mode``: imagestats' mode: the highest histogram bin refined by a parabola
      through it and its neighbours. Its bins are read back with a width differing from the
      one they were filled with, which moves it by up to half a bin, and the highest of
      0.1-sigma bins wanders by several bins with Poisson noise: on 512 x 512 unit-noise
      pixels it is off by -0.02 to -0.05 sigma, scatter 0.06 sigma;
    - ``mode`` (default): the same quantity, the peak of the distribution, measured
      precisely: a Poisson maximum-likelihood fit of a cubic to log(counts) of a histogram
      (bins ``binwidth`` sigma, at most 0.2) within +-2 core sigmas of the peak, iterated
      from the median until the window stops moving. On 512 x 512 unit-noise pixels: scatter
      0.0045 sigma (0.0012 on 2048 x 2048), bias within 0.001 sigma without sources and
      within 0.007 sigma of the distribution's peak with 10 % of pixels on extended sources
      (the peak itself then sits 0.2 sigma above the true sky; the median 0.27, the mean
      0.33). Falls back to ``imagestats_mode`` if the fit finds no peak (a flat distribution).

    Non-finite values are ignored. Returns (None, 0) when no value survives the limits.
    """
    skystat, binwidth = params.skystat, params.binwidth
    values = np.asarray(values, dtype=np.float32).ravel()  # imagestats works in float32
    values = values[np.isfinite(values)]
    clipped = _clip(values, params.lower, params.upper, params.nclip, params.lsigma,
                    params.usigma)
    if clipped is None:
        return None, 0
    inside, mean, std = clipped
    if skystat == "mean":
        value = mean
    elif skystat == "median":
        value = float(np.median(inside))
    elif skystat == "mode":
        value = _fitted_mode(inside, std, binwidth)
        if value is None:
            log.debug("sky mode: no peak found by the fit, using the histogram mode")
            value = _imagestats_mode(values, inside, std, binwidth)
    elif skystat == "imagestats_mode":
        value = _imagestats_mode(values, inside, std, binwidth)
    else:
        value = _midpt(values, inside, std, binwidth)
    if not np.isfinite(value):
        return None, 0
    return float(value), int(inside.size)


def _clip(values, lower, upper, nclip, lsigma, usigma):
    """stsci.imagestats' iterative clipping: (values inside, mean, std) or None if none are.

    Limits that narrow (the usual case) select from the previous iteration's values rather
    than all of them: the same values, in the same order. The standard deviation is summed
    in float64 over blocks of deviations (:func:`_std`), without numpy's full-size float64
    temporaries; on 4 M pixels the clipping takes half the time of ``values.std``'s.
    """
    if values.size == 0:
        return None
    vmin, vmax = float(values.min()), float(values.max())
    floor_ = vmin if lower is None else float(lower)
    ceiling = vmax if upper is None else float(upper)
    if floor_ > vmax or ceiling < vmin:
        return None
    low, high = floor_, ceiling
    inside, previous = values, None
    for iteration in range(nclip + 1):
        narrower = previous is not None and low >= previous[0] and high <= previous[1]
        source = inside if narrower else values
        if low > vmin or high < vmax:
            inside = source[(source >= low) & (source <= high)]
        else:
            inside = values
        if inside.size == 0:
            return None
        mean = float(inside.mean(dtype=np.float64))
        std = _std(inside, mean)
        previous = (low, high)
        if iteration < nclip:
            low = max(floor_, mean - lsigma * std)
            high = min(ceiling, mean + usigma * std)
    return inside, mean, std


_STD_BLOCK = 65536


def _std(values: np.ndarray, mean: float) -> float:
    """Sample standard deviation (N - 1) of ``values`` about ``mean``, summed in float64."""
    if values.size < 2:
        return 0.0
    squares = 0.0
    for start in range(0, values.size, _STD_BLOCK):
        deviation = values[start:start + _STD_BLOCK].astype(np.float64)
        deviation -= mean
        squares += float(np.dot(deviation, deviation))
    return math.sqrt(squares / (values.size - 1))


def _imagestats_histogram(values, inside, std, binwidth):
    """imagestats' histogram: (counts, origin, step), or None when it has a single bin.

    Filled with bins of (max - min) / (nbins - 1) from the clipped minimum, over all values
    below min + nbins * that width (not only the clipped ones); positions are read back with
    ``step`` = binwidth * std. Both are imagestats' conventions, kept for its numbers.
    """
    vmin, vmax = float(inside.min()), float(inside.max())
    step = binwidth * std
    span = vmax - vmin
    tiny = 10.0 * np.finfo(np.float32).eps
    if step < tiny or span < tiny or step > span:
        return None
    nbins = int(span / step) + 1
    fill_width = span / (nbins - 1)
    used = values[(values >= vmin) & (values < vmin + nbins * fill_width)]
    index = np.minimum(((used - vmin) / fill_width).astype(np.int64), nbins - 1)
    return np.bincount(index, minlength=nbins), vmin, step


def _imagestats_mode(values, inside, std, binwidth) -> float:
    histogram = _imagestats_histogram(values, inside, std, binwidth)
    if histogram is None:
        return float(inside.min()) + 0.5 * binwidth * std
    counts, origin, step = histogram
    if counts.size == 2:
        position = 0.5 if counts[0] > counts[1] else 1.5 if counts[0] < counts[1] else 1.0
        return origin + position * step
    peak = int(np.argmax(counts))
    if peak == 0:
        return origin + 0.5 * step
    if peak == counts.size - 1:
        return origin + (counts.size - 0.5) * step
    rise = int(counts[peak]) - int(counts[peak - 1])
    fall = int(counts[peak]) - int(counts[peak + 1])
    offset = 0.0 if rise + fall == 0 else 0.5 * (rise - fall) / (rise + fall)
    return origin + (peak + 0.5 + offset) * step


def _midpt(values, inside, std, binwidth) -> float:
    histogram = _imagestats_histogram(values, inside, std, binwidth)
    if histogram is None:
        return float(inside.min()) + 0.5 * binwidth * std
    counts, origin, step = histogram
    cumulative = np.cumsum(counts) / counts.sum()
    lo = int(np.argmax(cumulative >= 0.5))
    below = cumulative[lo - 1] if lo > 0 else 0.0
    in_bin = cumulative[lo] - below
    if in_bin == 0:
        return origin + lo * step
    return origin + (lo + (0.5 - below) / in_bin) * step


def _fitted_mode(inside: np.ndarray, std: float, binwidth: float) -> float | None:
    """Peak of the distribution of ``inside`` (see :func:`sky_statistic`), or None.

    The histogram is built once, so the fit depends only on which bins the window holds: the
    iteration ends exactly when that selection repeats (moving a window over raw values
    instead makes the peak jitter by the odd pixel entering or leaving it).
    """
    if std == 0.0:
        return float(np.median(inside))
    # At least 20 bins across the window, whatever the user's binwidth.
    step = min(binwidth, _MODE_HALF_WINDOW / 10.0) * std
    vmin = float(inside.min())
    nbins = max(1, math.ceil((float(inside.max()) - vmin) / step))
    index = np.minimum(((inside - vmin) / step).astype(np.int64), nbins - 1)
    counts = np.bincount(index, minlength=nbins)
    centre = _median_by_bins(inside, index, counts)
    del index
    x = vmin + (np.arange(nbins) + 0.5) * step
    width = std  # current estimate of the core sigma (the curvature of log density at the peak)
    seen = set()
    for _ in range(_MODE_MAX_ITERATIONS):
        window = np.nonzero(np.abs(x - centre) <= _MODE_HALF_WINDOW * width)[0]
        if window.size < 4 * (_MODE_DEGREE + 1):
            return None
        selection = (int(window[0]), int(window[-1]))
        if selection in seen:
            return centre
        seen.add(selection)
        coefficients = _poisson_polyfit((x[window] - centre) / width, counts[window], _MODE_DEGREE)
        peak = None if coefficients is None else _nearest_maximum(coefficients)
        if peak is None:
            return None
        offset, curvature = peak
        # Move at most half a window, so a peak outside the window is approached, not jumped to.
        centre += width * float(np.clip(offset, -0.5 * _MODE_HALF_WINDOW, 0.5 * _MODE_HALF_WINDOW))
        width = float(np.clip(width / math.sqrt(-curvature), 0.25 * std, 4.0 * std))
    return None


def _median_by_bins(values: np.ndarray, index: np.ndarray, counts: np.ndarray) -> float:
    """``float(np.median(values))``, exactly, from the histogram bins that hold the middle.

    ``index`` is each value's bin and ``counts`` the bins' counts; the bin grows with the
    value, so the middle values are found by partitioning the one or two bins that hold
    them instead of all values (a few percent of them): 60 ms less per 2048² frame here.
    """
    n = values.size
    cumulative = np.cumsum(counts)
    middle = []
    for rank in ((n // 2,) if n % 2 else (n // 2 - 1, n // 2)):
        b = int(np.searchsorted(cumulative, rank, side="right"))
        below = int(cumulative[b - 1]) if b else 0
        middle.append(np.partition(values[index == b], rank - below)[rank - below])
    return float(np.mean(np.array(middle, dtype=values.dtype)))


def _poisson_polyfit(x, counts, degree):
    """Coefficients (increasing order) of log(expected count) = polynomial(x), by Poisson
    maximum likelihood (iteratively reweighted least squares), or None if it fails.

    Poisson rather than least squares on log(counts) so that sparse or empty bins (few pixels
    in a small overlap) do not bias the peak.
    """
    design = np.vander(x, degree + 1, increasing=True)
    start = counts + 0.5
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        beta = _weighted_lstsq(design, np.log(start), start)
        for _ in range(50):
            eta = design @ beta
            mu = np.exp(eta)
            if not np.all(np.isfinite(mu)) or np.any(mu <= 0):
                return None
            new = _weighted_lstsq(design, eta + (counts - mu) / mu, mu)
            if np.max(np.abs(new - beta)) < 1e-10:
                return new
            beta = new
    return beta if np.all(np.isfinite(beta)) else None


def _weighted_lstsq(design, target, weight):
    root = np.sqrt(weight)
    return np.linalg.lstsq(design * root[:, None], target * root, rcond=None)[0]


def _nearest_maximum(coefficients):
    """(x, second derivative) of the polynomial's local maximum nearest 0, or None."""
    slope = P.polyder(coefficients)
    roots = P.polyroots(slope)
    roots = roots[np.abs(roots.imag) < 1e-12].real
    bend = P.polyval(roots, P.polyder(slope))
    roots, bend = roots[bend < 0], bend[bend < 0]
    if roots.size == 0:
        return None
    k = int(np.argmin(np.abs(roots)))
    return float(roots[k]), float(bend[k])


# --------------------------------------------------------------------------------------------
# Sigma clipping (astropy's)


def sigma_clip_1d(values: np.ndarray, sigma: float = 3.0,
                  maxiters: int = 5) -> tuple[np.ndarray, float, float]:
    """(values kept, lower bound, upper bound) of finite 1-D ``values``.

    The bounds are the last round's (±inf when ``values`` is empty); astropy's masked
    output masks the input outside them.
    """
    low, high = -np.inf, np.inf
    for _ in range(maxiters):
        if values.size == 0:
            break
        centre, std = np.median(values), np.std(values)
        low, high = centre - std * sigma, centre + std * sigma
        keep = (values >= low) & (values <= high)
        if keep.all():
            break
        values = values[keep]
    return values, float(low), float(high)


def sorted_sigma_clip_bounds(values: np.ndarray, sigma: float = 3.0,
                             maxiters: int = 5) -> tuple[float, float]:
    """The last round's (lower, upper) bounds of :func:`sigma_clip_1d` on ``values``, which
    must be finite, sorted ascending and not empty."""
    lo, hi = 0, values.size
    for _ in range(maxiters):
        kept = values[lo:hi]
        middle = kept.size // 2
        centre = kept[middle] if kept.size % 2 else np.mean(kept[middle - 1:middle + 1])
        std = np.std(kept)
        low, high = centre - std * sigma, centre + std * sigma
        bounds = (lo + int(np.searchsorted(kept, low, side="left")),
                  lo + int(np.searchsorted(kept, high, side="right")))
        if bounds == (lo, hi):
            break
        lo, hi = bounds
    return float(low), float(high)


# --------------------------------------------------------------------------------------------
# NaN median


def nanmedian(values: np.ndarray, axis: int = 0) -> np.ndarray:
    """``np.nanmedian(values, axis)`` of a float32 array, the same numbers, several times
    faster: one sort along ``axis`` (NaN last), then per position the middle value or the mean
    of the two middle values (numpy sorts masked arrays for short axes and loops in Python over
    long ones). All-NaN positions are NaN, without a warning."""
    ordered = np.sort(values, axis=axis)
    present = (~np.isnan(values)).sum(axis=axis, keepdims=True)
    lower = np.take_along_axis(ordered, np.maximum((present - 1) // 2, 0), axis)
    upper = np.take_along_axis(ordered, present // 2, axis)
    del ordered
    with np.errstate(invalid="ignore", over="ignore"):
        combined = np.where(present % 2 == 1, lower, (lower + upper) / np.float32(2))
    combined = np.squeeze(combined.astype(np.float32, copy=False), axis=axis)
    combined[np.squeeze(present, axis=axis) == 0] = np.nan
    return combined
