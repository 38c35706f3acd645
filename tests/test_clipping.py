"""image3.clipping.sigma_clip_1d against astropy's SigmaClip, which it stands in for."""

import numpy as np
import pytest
from astropy.stats import SigmaClip

from image3.clipping import sigma_clip_1d, sorted_sigma_clip_bounds


def _samples(seed):
    rng = np.random.default_rng(seed)
    values = rng.normal(0.2, 0.01, rng.integers(3, 900)).astype(np.float32)
    values[rng.random(values.size) < 0.1] += rng.exponential(0.2, 1).astype(np.float32)
    values[: rng.integers(0, 4)] = 50.0
    weights = rng.normal(100.0, 3.0, 20000).astype(np.float32)  # drizzle weights, edges low
    weights[rng.random(weights.size) < 0.05] *= rng.random(1).astype(np.float32)
    return [values, weights, values[:1], np.full(7, 0.3, np.float32)]


@pytest.mark.parametrize("seed", range(6))
def test_keeps_what_astropy_keeps_with_its_bounds(seed):
    """Annulus-sized samples with sources and hot pixels, drizzle-weight-like samples with
    partly covered edges, and degenerate ones: the same values kept, the same bounds."""
    for sample in _samples(seed):
        clip = SigmaClip(sigma=3.0, maxiters=5)
        expected = clip(sample, masked=False)
        kept, low, high = sigma_clip_1d(sample)
        assert kept.dtype == sample.dtype
        np.testing.assert_array_equal(kept, expected)
        _, astropy_low, astropy_high = clip(sample, masked=False, return_bounds=True)
        assert (low, high) == pytest.approx((astropy_low, astropy_high), rel=1e-6)
    values = _samples(seed)[0]
    assert sigma_clip_1d(values)[0].size < values.size  # the hot pixels went


@pytest.mark.parametrize("seed", range(6))
def test_sorted_bounds_are_astropys_to_float32_rounding(seed):
    """The rounds on sorted values end at astropy's bounds (its std summed in another order)."""
    for sample in _samples(seed):
        _, low, high = SigmaClip(sigma=3.0, maxiters=5)(sample, masked=False, return_bounds=True)
        assert sorted_sigma_clip_bounds(np.sort(sample)) == pytest.approx((low, high), rel=1e-6)


def test_empty_input_keeps_nothing_and_has_open_bounds():
    kept, low, high = sigma_clip_1d(np.array([], np.float32))
    assert kept.size == 0 and (low, high) == (-np.inf, np.inf)
