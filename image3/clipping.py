"""astropy's sigma clipping of a flat array, without its per-call overhead.

:func:`sigma_clip_1d` repeats ``astropy.stats.SigmaClip(sigma, maxiters=maxiters)`` on
finite 1-D values (cenfunc median, stdfunc std, bounds inclusive): each round computes the
bounds median ± sigma·std of the values kept so far and keeps those inside them, until a
round removes nothing or ``maxiters`` rounds have run. The same numpy reductions on the same
values keep the same values (tests/test_clipping.py compares it with astropy).

:func:`sorted_sigma_clip_bounds` runs the same rounds on values sorted once, where each
round's kept values are a slice: its median is read off and only its standard deviation is
summed (4 M drizzle weights: ~0.1 s instead of ~0.35 s). Summed in sorted order, the bounds
can differ from astropy's by float32 rounding; for sums over many values, not for keeping
exactly astropy's values.
"""

from __future__ import annotations

import numpy as np


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
