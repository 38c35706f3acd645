"""Tests of image3.detection: background, star finders and segmentation.

Scenes are small (≤ 300² pixels) Gaussian-star fields with known positions,
so each test runs in well under a second.
"""

from dataclasses import replace

import numpy as np
import pytest
from scipy.special import erf

from image3.config import schema_defaults
from image3.detection import (
    SOURCE_COLUMNS,
    circular_peaks,
    detect_segments,
    estimate_background,
    find_sources,
)
from image3.errors import ConfigError, StepError
from image3.parameters import SourceFinding

#: tweakreg's finding parameters (the schema's defaults), varied by the tests with ``replace``.
FINDING = SourceFinding.from_config(schema_defaults()["tweakreg"])

SIGMA_PSF = 1.2  # pixels; FWHM ≈ 2.8 px, close to the tweakreg kernel_fwhm default 2.5
NOISE = 1.0
SKY = 10.0


def gaussian_stars(shape, x, y, flux, sigma=SIGMA_PSF):
    """Stars as pixel-integrated circular Gaussians; ``flux`` is each star's total."""
    ny, nx = shape
    s = np.sqrt(2.0) * sigma
    edges_x = np.arange(nx + 1) - 0.5
    edges_y = np.arange(ny + 1) - 0.5
    px = 0.5 * np.diff(erf((edges_x[None, :] - np.asarray(x)[:, None]) / s), axis=1)
    py = 0.5 * np.diff(erf((edges_y[None, :] - np.asarray(y)[:, None]) / s), axis=1)
    return np.einsum("n,ny,nx->yx", np.asarray(flux, dtype=float), py, px)


@pytest.fixture(scope="module")
def star_field():
    """300² field: 36 isolated bright stars on a jittered grid, sky, noise, NaN pixels and a masked edge."""
    rng = np.random.default_rng(42)
    shape = (300, 300)
    grid = np.arange(25, 300, 50)
    x, y = (g.ravel() + rng.uniform(-3, 3, g.size) for g in np.meshgrid(grid, grid))
    flux = rng.uniform(3000, 20000, x.size)  # peak S/N ≈ 300-2000 per pixel
    image = SKY + gaussian_stars(shape, x, y, flux) + rng.normal(0, NOISE, shape)
    image[rng.integers(0, 300, 400), rng.integers(0, 300, 400)] = np.nan  # scattered bad pixels
    image[140:150, :] = np.nan  # a dead band crossing the field between star rows
    mask = np.zeros(shape, dtype=bool)
    mask[:, :8] = True  # reference-pixel-like border flagged NON_SCIENCE
    return image, mask, x, y, flux


def _matched(sources, x, y, tolerance=0.5):
    """Number of true stars with a detection within ``tolerance`` pixels."""
    if len(sources) == 0:
        return 0
    d = np.hypot(sources["xcentroid"][:, None] - x[None, :], sources["ycentroid"][:, None] - y[None, :])
    return int(np.sum(d.min(axis=0) < tolerance))


def test_background_recovers_a_smooth_sky_and_its_noise():
    """Truth: sky = 10 + gradient, noise σ = 1 → background within 0.03 (median), 0.15 (worst); RMS ±5 %.

    A 64-px mesh median has a 0.02 statistical error; the 3×3 mesh median
    filter bends a gradient near the image corners.
    """
    rng = np.random.default_rng(1)
    yy, xx = np.mgrid[0:256, 0:256]
    sky = SKY + 0.002 * xx + 0.001 * yy
    background, rms = estimate_background(sky + rng.normal(0, NOISE, sky.shape), None, 64)
    inner = (slice(32, -32), slice(32, -32))
    assert np.median(np.abs(background - sky)[inner]) < 0.03
    assert np.max(np.abs(background - sky)[inner]) < 0.15
    assert np.median(rms) == pytest.approx(NOISE, rel=0.05)


def test_background_box_larger_than_image_is_clipped():
    """Truth: a 1000-px box on a 100×80 image acts as one box; result = the sky level."""
    rng = np.random.default_rng(2)
    image = SKY + rng.normal(0, NOISE, (100, 80))
    background, rms = estimate_background(image, None, 1000)
    assert background.shape == image.shape
    assert np.allclose(background, SKY, atol=0.1)
    assert np.allclose(rms, NOISE, rtol=0.1)


def test_background_falls_back_to_partly_masked_boxes_when_every_box_is():
    """Truth: every box 50% masked (> 10% allowed) → the boxes are used as they are, still the
    sky level."""
    rng = np.random.default_rng(3)
    image = SKY + rng.normal(0, NOISE, (128, 128))
    mask = np.zeros(image.shape, dtype=bool)
    mask[:, ::2] = True
    background, rms = estimate_background(image, mask, 32)
    covered = ~mask
    assert np.allclose(background[covered], SKY, atol=0.1)
    assert np.allclose(rms[covered], NOISE, rtol=0.1)


def test_background_of_a_fully_masked_image_is_a_step_error():
    with pytest.raises(StepError):
        estimate_background(np.full((50, 50), np.nan), None, 25)


@pytest.mark.parametrize(
    ("starfinder", "extra"),
    [
        ("iraf", {}),
        # DAO's sharpness/roundness scales differ from IRAF's: the reference
        # defaults (sharp 0.5–2, round 0–0.2) reject half of all round stars
        # (roundness scatters around 0), so DAO runs with DAOFIND's usual limits.
        ("dao", {"sharplo": 0.2, "sharphi": 1.0, "roundlo": -1.0, "roundhi": 1.0}),
        ("segmentation", {}),
    ],
)
def test_each_starfinder_recovers_the_bright_stars_despite_nan_pixels(star_field, starfinder, extra):
    """Truth: 36 bright stars; ≥ 35 found within 0.5 px (one may sit on a NaN cluster), none in the mask."""
    image, mask, x, y, _ = star_field
    finding = replace(FINDING, starfinder=starfinder, snr_threshold=10, kernel_fwhm=2.5,
                      bkg_boxsize=100, **extra)
    sources = find_sources(image, mask, None, finding)
    assert sources.colnames == list(SOURCE_COLUMNS)
    assert np.all(np.isfinite(sources["xcentroid"])) and np.all(np.isfinite(sources["flux"]))
    assert _matched(sources, x, y) >= len(x) - 1
    assert np.all(sources["xcentroid"] >= 8 - 0.5)


def test_iraf_fluxes_follow_the_true_fluxes(star_field):
    """Truth: IRAF flux is a fixed fraction of the total for equal PSFs → rank correlation > 0.95."""
    image, mask, x, y, flux = star_field
    sources = find_sources(image, mask, None,
                           replace(FINDING, snr_threshold=10, kernel_fwhm=2.5, bkg_boxsize=100))
    d = np.hypot(sources["xcentroid"][:, None] - x, sources["ycentroid"][:, None] - y)
    found, truth = d.min(axis=1) < 0.5, d.argmin(axis=1)
    measured, true = np.asarray(sources["flux"])[found], flux[truth[found]]
    rank = np.corrcoef(np.argsort(np.argsort(measured)), np.argsort(np.argsort(true)))[0, 1]
    assert rank > 0.95


def test_brightest_keeps_the_n_brightest(star_field):
    image, mask, *_ = star_field
    finding = replace(FINDING, snr_threshold=10, kernel_fwhm=2.5, bkg_boxsize=100, brightest=5)
    sources = find_sources(image, mask, None, finding)
    assert len(sources) == 5


@pytest.mark.parametrize("starfinder", ["iraf", "dao", "segmentation"])
@pytest.mark.parametrize("kind", ["noise", "zeros", "all_nan", "all_masked"])
def test_images_without_sources_give_an_empty_table(starfinder, kind):
    """Truth: no star → an empty table with the four columns, never an exception."""
    shape = (64, 64)
    image = {
        "noise": np.random.default_rng(4).normal(SKY, NOISE, shape),
        "zeros": np.zeros(shape),
        "all_nan": np.full(shape, np.nan),
        "all_masked": np.ones(shape),
    }[kind]
    mask = np.full(shape, kind == "all_masked")
    finding = replace(FINDING, starfinder=starfinder, snr_threshold=10, kernel_fwhm=2.5,
                      bkg_boxsize=32)
    sources = find_sources(image, mask, None, finding)
    assert len(sources) == 0
    assert sources.colnames == list(SOURCE_COLUMNS)


def test_segments_are_labelled_consecutively_and_deblended():
    """Truth: two blended stars 7 px apart and one isolated star → 3 labels 1..3 after deblending."""
    rng = np.random.default_rng(5)
    shape = (80, 80)
    x, y = np.array([30.0, 37.0, 60.0]), np.array([40.0, 40.0, 20.0])
    image = SKY + gaussian_stars(shape, x, y, [5000, 4000, 3000]) + rng.normal(0, NOISE, shape)
    finding = replace(FINDING, snr_threshold=3, kernel_fwhm=2.0, bkg_boxsize=40, npixels=10)
    blended = detect_segments(image, None, replace(finding, deblend=False))
    segments = detect_segments(image, None, finding)
    assert blended.segmentation.n_labels == 2
    assert list(segments.segmentation.labels) == [1, 2, 3]
    assert segments.convolved.shape == shape
    assert np.allclose(np.median(segments.background), SKY, atol=0.1)


@pytest.mark.parametrize("key,value", [("starfinder", "sextractor"), ("connectivity", 6),
                                       ("multithresh_mode", "log"), ("apermask_method", "drop")])
def test_an_unknown_choice_is_a_config_error_when_the_parameters_are_made(key, value):
    with pytest.raises(ConfigError, match=f"{key} must be one of"):
        replace(FINDING, **{key: value})


@pytest.mark.parametrize("radius", [2, 3, 2.5, 7])
def test_circular_peaks_are_photutils_find_peaks(radius):
    """Truth: photutils find_peaks(min_separation=radius), the star finders' own peak step,
    on noise with sources, ties (a flat-topped source), masked pixels and peaks at the border.
    Required: the same pixels in the same (row-major) order."""
    from photutils.detection import find_peaks

    rng = np.random.default_rng(3)
    image = rng.normal(0.0, 1.0, (300, 280))
    y, x = np.mgrid[:300, :280]
    for cx, cy in rng.uniform(-3, 283, (60, 2)):
        image += rng.uniform(5, 50) * np.exp(-((x - cx) ** 2 + (y - cy) ** 2) / 4.0)
    image[100:102, 50:52] = 40.0  # a flat top: four tied maxima
    mask = rng.random(image.shape) < 0.01
    expected = find_peaks(image, 3.0, mask=mask, min_separation=radius)
    found = circular_peaks(image, 3.0, radius, mask)
    assert len(found) == len(expected) > 20
    np.testing.assert_array_equal(found[:, 0], expected["x_peak"])
    np.testing.assert_array_equal(found[:, 1], expected["y_peak"])


def _segment_area_at(segments, x, y):
    """Area (pixels) of the segment holding pixel (x, y), 0 if none."""
    label = segments.segmentation.data[int(round(y)), int(round(x))] if segments else 0
    return int((segments.segmentation.data == label).sum()) if label else 0


def test_a_source_cut_by_the_mask_is_judged_on_its_covered_part():
    """Truth: two equal faint stars, one in the open and one whose peak is 1 px from a masked
    region (e.g. a coverage edge); uncut each reaches ~20 pixels above the threshold. With
    npixels = 25 the one in the open stays undetected (the rule is unchanged away from the
    mask), the cut one (about half its pixels) is found: it needs 25 x the covered fraction of
    a 25-pixel disk about its peak."""
    rng = np.random.default_rng(8)
    shape = (80, 120)
    x, y = np.array([30.0, 90.0]), np.array([40.0, 40.0])
    image = SKY + gaussian_stars(shape, x, y, [190, 190]) + rng.normal(0, NOISE, shape)
    mask = np.zeros(shape, dtype=bool)
    mask[:, 92:] = True
    finding = replace(FINDING, snr_threshold=3, kernel_fwhm=2.8, bkg_boxsize=40, npixels=10,
                      deblend=False)
    open_area = _segment_area_at(detect_segments(image, mask, finding), 30, 40)
    assert 15 <= open_area < 25  # the open star's full size: below 25 pixels
    segments = detect_segments(image, mask, replace(finding, npixels=25))
    assert _segment_area_at(segments, 30, 40) == 0
    cut_area = _segment_area_at(segments, 90, 40)
    assert 6 < cut_area < 25  # found with fewer than npixels
