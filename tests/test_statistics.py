"""Tests of image3.statistics: the sky statistic, sigma clipping and the NaN median.

On unit-noise values the sky statistics come out within 1 % of the noise sigma; the
reference's histogram estimators (bins 0.1 sigma wide) within 0.1 sigma; imagestats'
definitions are checked on a small example worked by hand. The sigma clipping keeps what
astropy's SigmaClip, which it stands in for, keeps; the NaN median gives numpy's numbers.
"""

import warnings
from dataclasses import replace

import numpy as np
import pytest
from astropy.stats import SigmaClip
from scipy import optimize, stats

from image3.config import schema_defaults
from image3.errors import ConfigError
from image3.parameters import SkyStatistics
from image3.statistics import nanmedian, sigma_clip_1d, sky_statistic, sorted_sigma_clip_bounds

SIGMA = 1.0  # per-pixel noise (data units)
TOLERANCE = 0.01 * SIGMA
SIZE = 512

#: The sky statistics' parameters: the workflow's defaults (the schema's).
STATISTICS = SkyStatistics.from_config(schema_defaults()["skymatch"])


def stat(skystat: str, **changes) -> SkyStatistics:
    """The default statistics' parameters with another ``skystat`` (and ``changes``)."""
    return replace(STATISTICS, skystat=skystat, **changes)


def test_statistics_of_gaussian_noise_hit_its_centre():
    rng = np.random.default_rng(5)
    values = rng.normal(7.0, 2.0, SIZE * SIZE)
    for skystat in ("mode", "median", "mean"):
        value, npix = sky_statistic(values, stat(skystat))
        assert value == pytest.approx(7.0, abs=0.01 * 2.0), skystat
        assert npix > 0.9999 * values.size  # 4-sigma clipping removes ~6e-5
    # the reference's histogram estimators are good to about a bin (0.1 sigma)
    for skystat in ("imagestats_mode", "midpt"):
        assert sky_statistic(values, stat(skystat))[0] == pytest.approx(7.0, abs=0.1 * 2.0), skystat


def test_mode_finds_the_peak_of_a_skewed_distribution():
    """Noise plus 8 % of pixels with exponentially distributed source flux (scale 3 sigma):
    the fitted mode lands on the density's peak, which the median and mean miss."""
    rng = np.random.default_rng(11)
    n, fraction, scale = 1_000_000, 0.08, 3.0
    values = rng.normal(0.0, 1.0, n)
    on_source = rng.random(n) < fraction
    values[on_source] += rng.exponential(scale, on_source.sum())

    def density(x):
        return (1 - fraction) * stats.norm.pdf(x) + fraction * stats.exponnorm.pdf(x, scale)

    peak = optimize.minimize_scalar(lambda x: -density(x), bounds=(-1, 1), method="bounded").x
    assert sky_statistic(values, stat("mode"))[0] == pytest.approx(peak, abs=TOLERANCE)
    assert sky_statistic(values, stat("median"))[0] - peak > 3 * TOLERANCE


def test_imagestats_definitions_on_a_hand_computed_example():
    """values 0, 1, 1, 2.3 x3, 3, 3, 4; nclip=0, binwidth=0.5: mean 2.1, std sqrt(12.18 / 8);
    7 bins of 4/6 filled [1, 2, 0, 3, 2, 0|1, 1|0] but read back with step 0.5 std."""
    values = np.array([0, 1, 1, 2.3, 2.3, 2.3, 3, 3, 4])
    options = {"nclip": 0, "binwidth": 0.5}
    step = 0.5 * np.sqrt(12.18 / 8)
    assert sky_statistic(values, stat("mean", **options)) == (pytest.approx(2.1, rel=1e-6), 9)
    # peak bin 3, rises 3 and falls 1: parabola offset 0.5 (3 - 1) / 4
    mode = sky_statistic(values, stat("imagestats_mode", **options))[0]
    assert mode == pytest.approx(3.75 * step, rel=1e-6)
    # half-way count in bin 3, one half of the way through its 3 of 9
    assert sky_statistic(values, stat("midpt", **options))[0] == pytest.approx(3.5 * step, rel=1e-6)
    assert sky_statistic(values, stat("median", **options))[0] == pytest.approx(2.3, rel=1e-6)


def test_clipping_and_limits():
    rng = np.random.default_rng(2)
    values = rng.normal(0.0, 1.0, 100_000)
    values[:1000] = 1e4  # cosmic rays
    mean, npix = sky_statistic(values, stat("mean"))
    assert mean == pytest.approx(0.0, abs=0.01) and npix < 99_000
    assert sky_statistic(values, stat("mean", upper=100.0))[1] == npix
    assert sky_statistic(values, stat("mean", lower=2e4)) == (None, 0)
    assert sky_statistic(np.array([np.nan, np.inf]), STATISTICS) == (None, 0)
    assert sky_statistic(np.full(50, 3.0), STATISTICS) == (3.0, 50)
    with pytest.raises(ConfigError):
        stat("average")


@pytest.mark.parametrize("seed", range(4))
def test_median_by_bins_is_numpys_median(seed):
    """The fitted mode's starting point, found in the middle histogram bins: numpy's median
    exactly, for odd and even counts, ties, a crowded bin and a single value."""
    from image3.statistics import _median_by_bins

    rng = np.random.default_rng(seed)
    samples = [rng.normal(0.2, 0.01, n).astype(np.float32) for n in (1, 2, 999, 4000)]
    samples.append(np.round(rng.normal(0, 3, 3001), 0).astype(np.float32))  # ties
    crowded = rng.normal(5.0, 1.0, 2000).astype(np.float32)
    crowded[:1200] = 5.0
    samples.append(crowded)
    for values in samples:
        step = 0.1 * (float(values.std()) or 1.0)
        vmin = float(values.min())
        nbins = max(1, int(np.ceil((float(values.max()) - vmin) / step)))
        index = np.minimum(((values - vmin) / step).astype(np.int64), nbins - 1)
        counts = np.bincount(index, minlength=nbins)
        assert _median_by_bins(values, index, counts) == float(np.median(values))


# --------------------------------------------------------------------------------------------
# Sigma clipping (astropy's)


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


def test_sigma_clip_of_empty_input_keeps_nothing_and_has_open_bounds():
    kept, low, high = sigma_clip_1d(np.array([], np.float32))
    assert kept.size == 0 and (low, high) == (-np.inf, np.inf)


# --------------------------------------------------------------------------------------------
# NaN median


def test_nanmedian_along_a_long_last_axis_equals_numpy():
    """As smooth_variance uses it: 1024 pixels per block, some blocks without any."""
    rng = np.random.default_rng(9)
    values = rng.random((5, 6, 1024)).astype(np.float32)
    values[rng.random(values.shape) < 0.3] = np.nan
    values[0, 0] = np.nan
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        expected = np.nanmedian(values, axis=-1)
    np.testing.assert_array_equal(nanmedian(values, axis=-1), expected)
