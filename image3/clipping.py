"""astropy's sigma clipping of a flat array, without its per-call overhead.

:func:`sigma_clip_1d` repeats ``astropy.stats.SigmaClip(sigma, maxiters=maxiters)`` on
finite 1-D values (cenfunc median, stdfunc std, bounds inclusive): each round computes the
bounds median ± sigma·std of the values kept so far and keeps those inside them, until a
round removes nothing or ``maxiters`` rounds have run. The same numpy reductions on the same
values keep the same values (tests/test_clipping.py compares it with astropy).
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
