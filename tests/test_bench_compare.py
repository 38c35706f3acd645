"""bench/compare.py, the side-by-side comparison with jwst, on tiny hand-made arrays and tables
(jwst itself is not needed)."""

import sys
from datetime import datetime
from pathlib import Path

import numpy as np
import pytest
from astropy.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
import compare  # noqa: E402

ARCSEC = 1 / 3600.0


def test_robust_std_of_gaussian_noise_is_its_sigma():
    """Truth: σ = 2; tolerance 3% for 20 000 samples (MAD's error is ~1%)."""
    values = np.random.default_rng(1).normal(5.0, 2.0, 20000)
    values[:10] = np.nan
    assert compare.robust_std(values) == pytest.approx(2.0, rel=0.03)
    assert np.isnan(compare.robust_std(np.array([np.nan])))


def test_ratio_stats_ignores_non_positive_and_non_finite_pairs():
    stats = compare.ratio_stats([2.0, 4.0, 6.0, -1.0, np.nan], [1.0, 2.0, 3.0, 1.0, 1.0])
    assert stats == {"n": 3, "median": 2.0, "robust_std": 0.0}


def test_mosaic_difference_over_common_pixels():
    """Truth: ours = theirs + 0.01 MJy/sr with ERR 0.1 → median 0.01 MJy/sr = 0.1 ERR, no
    scatter; one pixel only in ours, two only in theirs; one 10-ERR pixel of 100 common."""
    theirs = np.full((10, 12), 1.0, np.float32)
    ours = theirs + np.float32(0.01)
    err = np.full_like(theirs, 0.1)
    theirs[0, :3] = np.nan
    ours[0, 1:3] = np.nan
    ours[9, 10:] = np.nan
    ours[5, 5] = 2.0
    result = compare.mosaic_difference(ours, theirs, err, err * 1.1)
    assert result["pixels_common"] == 120 - 5
    assert (result["pixels_ours_only"], result["pixels_theirs_only"]) == (1, 2)
    assert result["median_mjysr"] == pytest.approx(0.01, abs=1e-6)
    assert result["median_in_err"] == pytest.approx(0.1, abs=1e-5)
    assert result["robust_std_mjysr"] == pytest.approx(0.0, abs=1e-6)
    assert result["fraction_above_5_err"] == pytest.approx(1 / 115)
    assert result["err_ratio_median"] == pytest.approx(1.1, rel=1e-6)
    with pytest.raises(ValueError, match="different grids"):
        compare.mosaic_difference(ours[:5], theirs, err)


def test_new_outliers_ignore_pixels_already_unusable_in_the_cal():
    cal = np.array([0, 1, 16, 0, 4], np.uint32)  # good, DO_NOT_USE, OUTLIER, good, other bit
    crf = np.array([17, 17, 17, 0, 21], np.uint32)
    assert compare.new_outliers(cal, crf).tolist() == [True, False, False, False, True]


def test_flag_agreement_counts():
    ours = np.array([True, True, False, False])
    theirs = np.array([True, False, True, False])
    assert compare.flag_agreement(ours, theirs) == {
        "ours": 2, "theirs": 2, "both": 1, "ours_only": 1, "theirs_only": 1}


def test_cosmic_ray_recall_and_precision_pool_over_exposures():
    """Truth, ERR 1: exposure 1 has rays of 6σ (found), 12σ (found), 20σ (missed) and one false
    flag; exposure 2 one 7σ ray (missed) and one 0.5σ track pixel (flagged, counts as a hit).
    Recall ≥10σ = 1/2, 5-10σ = 1/2, ≥5σ = 2/4; precision: 3 of the 4 flagged pixels are on rays."""
    err = np.ones(6)
    first = compare.cosmic_ray_counts(np.array([1, 1, 0, 1, 0, 0], bool),
                                      np.array([6.0, 12.0, 20.0, 0, 0, 0]), err)
    second = compare.cosmic_ray_counts(np.array([0, 1, 0, 0, 0, 0], bool),
                                       np.array([7.0, 0.5, 0, 0, 0, 0]), err)
    scores = compare.cosmic_ray_scores([first, second])
    assert scores["recall_>=10"] == pytest.approx(1 / 2)
    assert scores["recall_5-10"] == pytest.approx(1 / 2)
    assert scores["recall_>=5"] == pytest.approx(2 / 4)
    assert scores["precision"] == pytest.approx(3 / 4)


def test_match_sky_within_radius_and_mutual():
    """Truth: source 0 moved by 0.05" matches, source 1 moved by 0.2" does not; two entries of
    list 1 near one of list 2 give one pair (the nearer)."""
    dec = -27.8
    cos = np.cos(np.deg2rad(dec))
    ra1 = np.array([53.0, 53.001, 53.002, 53.002 + 0.03 * ARCSEC / cos])
    dec1 = np.full(4, dec)
    ra2 = np.array([53.0 + 0.05 * ARCSEC / cos, 53.001, 53.002])
    dec2 = np.array([dec, dec + 0.2 * ARCSEC, dec + 0.02 * ARCSEC])
    i, j, sep = compare.match_sky(ra1, dec1, ra2, dec2, radius_arcsec=0.1)
    assert i.tolist() == [0, 2] and j.tolist() == [0, 2]
    assert sep == pytest.approx([0.05, 0.02], abs=1e-4)
    empty = compare.match_sky([], [], ra2, dec2)
    assert all(len(a) == 0 for a in empty)


def _table(ra, dec, **columns):
    return Table({"ra": np.asarray(ra, float), "dec": np.asarray(dec, float), **columns})


def test_catalogue_agreement_ratio_of_matched_fluxes():
    ra = 53.0 + np.arange(5) * 2 * ARCSEC
    ours = _table(ra, np.full(5, -27.8), aper_total_flux=[1.0, 2.0, 3.0, 4.0, 5.0])
    theirs = _table(ra[:4], np.full(4, -27.8), aper_total_flux=[1.0, 2.0, 3.0, 2.0])
    result = compare.catalogue_agreement(ours, theirs)
    assert (result["sources_ours"], result["sources_theirs"], result["matched"]) == (5, 4, 4)
    assert result["aper_total_flux_ratio"]["median"] == pytest.approx(1.0)
    assert result["median_separation_mas"] == pytest.approx(0.0, abs=1e-6)


def test_photometry_against_truth_uses_isolated_stars_only():
    """Truth: three stars 5" apart (isolated), a galaxy, and a star 0.5" from another star
    (neither isolated); the catalogue measures the isolated ones at 0.98 × their flux."""
    ra = 53.0 + np.array([0, 5, 10, 15, 20, 20]) * ARCSEC
    dec = -27.8 + np.array([0, 0, 0, 0, 0, 0.5]) * ARCSEC
    truth = _table(ra, dec, flux_ujy=[10.0, 20.0, 30.0, 40.0, 50.0, 60.0],
                   kind=["star", "star", "star", "galaxy", "star", "star"])
    catalogue = _table(ra, dec, aper_total_flux=np.array([9.8, 19.6, 29.4, 40, 50, 60]) * 1e-6)
    result = compare.photometry_against_truth(catalogue, truth)
    assert (result["isolated_stars"], result["matched"]) == (3, 3)
    assert result["flux_ratio"]["median"] == pytest.approx(0.98)
    assert result["flux_ratio"]["robust_std"] == pytest.approx(0.0, abs=1e-9)


def test_step_intervals_and_table_from_a_jwst_log():
    """Truth: pipeline 10:00:01.0-10:00:09.0, tweakreg 01.5-04.0, resample 04.5-08.5; PSS samples
    at 1 s steps with a 900 MB peak at 6 s (in resample)."""
    log = "\n".join([
        "2026-01-01 10:00:01,000 - stpipe.step - INFO - Step Image3Pipeline running with args",
        "2026-01-01 10:00:01,500 - stpipe.step - INFO - Step tweakreg running with args (x,).",
        "2026-01-01 10:00:02,000 - jwst.tweakreg - INFO - Detected 200 sources",
        "2026-01-01 10:00:04,000 - stpipe.step - INFO - Step tweakreg done",
        "2026-01-01 10:00:04,500 - stpipe.step - INFO - Step resample running with args (x,).",
        "2026-01-01 10:00:08,500 - stpipe.step - INFO - Step resample done",
        "2026-01-01 10:00:09,000 - stpipe.step - INFO - Step Image3Pipeline done",
    ])
    t0 = datetime(2026, 1, 1, 10, 0, 0).timestamp()
    intervals = compare.step_intervals(log)
    assert intervals["tweakreg"] == pytest.approx((t0 + 1.5, t0 + 4.0))
    assert intervals["Image3Pipeline"] == pytest.approx((t0 + 1.0, t0 + 9.0))
    samples = [(t0 + s, 100.0 + (800 if s == 6 else 10 * s)) for s in range(11)]
    rows = {r["step"]: r for r in compare.step_table(intervals, samples, t0, t0 + 10)}
    assert rows["startup"]["wall_s"] == pytest.approx(1.0)
    assert rows["resample"] == {"step": "resample", "wall_s": 4.0, "peak_pss_mb": 900.0}
    assert rows["tweakreg"]["peak_pss_mb"] == pytest.approx(140.0)
    assert rows["exit"]["wall_s"] == pytest.approx(1.0)


def test_sky_level_errors_remove_the_common_offset():
    """Truth: levels = true sky − 0.2 (match_down anchoring) + errors (0, +1e-4, −1e-4)."""
    true_sky = np.array([0.2, 0.25, 0.3])
    result = compare.sky_level_errors(true_sky - 0.2 + np.array([0, 1e-4, -1e-4]), true_sky)
    assert result["errors_mjysr"] == pytest.approx([0, 1e-4, -1e-4], abs=1e-12)
    assert result["max_abs_mjysr"] == pytest.approx(1e-4)
    assert result["rms_mjysr"] == pytest.approx(np.sqrt(2 / 3) * 1e-4)


def test_detections_against_truth():
    """Truth: 4 true sources 2" apart; ours finds 0, 1, 2, theirs 1, 2, 3 plus one entry 1"
    from any true source."""
    ra = 53.0 + np.arange(4) * 2 * ARCSEC
    truth = _table(ra, np.full(4, -27.8))
    ours = _table(ra[:3], np.full(3, -27.8))
    theirs = _table(np.append(ra[1:], ra[3] + 1 * ARCSEC), np.full(4, -27.8))
    result = compare.detections_against_truth(ours, theirs, truth)
    assert result["ours"] == {"true": 3, "spurious": 0}
    assert result["theirs"] == {"true": 3, "spurious": 1}
    assert (result["found_by_both"], result["found_by_ours_only"], result["found_by_theirs_only"]) == (2, 1, 1)


def test_point_source_snr_of_a_gaussian_psf():
    """Truth: a single Gaussian of sigma s pixels has NEA = 4 pi s^2; a source of F MJy/sr x
    pixel on noise sigma has S/N = F / (sigma sqrt(NEA)). 1 uJy on 0.1" pixels is
    1e-12 / (0.1" in rad)^2 MJy/sr x pixel."""
    err = np.full((10, 10), 0.01)
    err[0, 0] = 0.0
    pixel_sr = (0.1 / 206264.80625) ** 2
    snr = compare.point_source_snr([1.0, 1.0, 1.0], [5.0, 0.0, 20.0], [5.0, 0.0, 5.0], err, 0.1,
                                   [(1.0, 0.2)])  # sigma 2 pixels
    expected = 1e-12 / pixel_sr / (0.01 * np.sqrt(4 * np.pi * 4.0))
    assert snr[0] == pytest.approx(expected, rel=1e-9)
    assert np.isnan(snr[1]) and np.isnan(snr[2])  # no error there / off the image


def test_edge_distance_and_star_completeness():
    covered = np.ones((20, 20), bool)
    covered[:, 15:] = False
    distance = compare.edge_distance(covered, [14.0, 4.0, 30.0], [5.0, 5.0, 5.0])
    assert distance[:2].tolist() == [1.0, 11.0] and np.isnan(distance[2])
    found = np.array([True, False, True, True, False])
    snr = np.array([30.0, 12.0, 50.0, 40.0, 5.0])
    edge = np.array([3.0, 50.0, 50.0, 8.0, 2.0])
    result = compare.star_completeness(found, snr, edge)
    assert result == {"stars": 4, "completeness": 0.75, "bright_half": 1.0, "strong_stars": 3,
                      "strong_completeness": 1.0, "edge_stars": 2, "edge_completeness": 1.0}
