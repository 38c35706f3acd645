"""Outlier detection: the reference's arithmetic, the median's row blocks, and recall/precision
against injected cosmic rays on synthetic NIRCam exposures (image3.synth truth)."""

import functools
import json
import warnings
from dataclasses import replace
from pathlib import Path

import asdf
import numpy as np
import pytest
from astropy.io import fits
from astropy.stats import sigma_clip
from astropy.table import Table
from stdatamodels.jwst import datamodels

from image3 import synth
from image3.config import schema_defaults
from image3.datamodel import read_exposure
from image3.grid import build_grid, member_geometry
from image3.median import (Single, combine_stack, median_of_singles, median_shape,
                           read_median_window, read_single_coverage, write_median, write_single)
from image3.outlier import (DO_NOT_USE, OUTLIER, abs_derivative, apply_outlier_flags,
                            blot_median, compare_with_median, drizzle_single, find_outliers, laplacian,
                            parse_pair, single_pixel_map, weight_threshold, window_of)
from image3.parameters import FlagComparison, OutputGrid, SingleDrizzle

# The workflow's defaults (the schema's): the reference's default grid, the single drizzles'
# and the comparison's parameters.
DEFAULT_GRID = OutputGrid.from_config(schema_defaults()["resample"])
SINGLE = SingleDrizzle.from_config(schema_defaults()["outlier_detection"])
FLAG = FlagComparison.from_config(schema_defaults()["outlier_detection"])


# ------------------------------------------------------------------------------------------
# The reference's arithmetic


def test_parse_pair():
    assert parse_pair("5.0 4.0") == (5.0, 4.0)
    assert parse_pair(" 1.2   0.7 ") == (1.2, 0.7)


def test_weight_threshold_is_maskpt_times_clipped_mean():
    rng = np.random.default_rng(0)
    weight = rng.normal(100.0, 1.0, (50, 50)).astype(np.float32)
    weight[:5] = 0.0  # uncovered: ignored
    weight[10, 10] = 1e6  # clipped away
    expected = 0.7 * float(np.ma.mean(sigma_clip(weight[weight != 0], sigma=3, maxiters=5)))
    assert weight_threshold(weight, 0.7) == pytest.approx(expected, rel=1e-6)
    assert weight_threshold(weight, 0.7) == pytest.approx(70.0, rel=0.01)


@pytest.mark.parametrize("seed", range(8))
def test_weight_threshold_equals_astropy_on_drizzle_like_weights(seed):
    """Partly covered edges (weights scaled down), ties, empty pixels: astropy's number."""
    rng = np.random.default_rng(seed)
    weight = rng.normal(100.0, rng.uniform(0.1, 10.0), (60, 70)).astype(np.float32)
    weight[rng.random(weight.shape) < 0.1] *= rng.random(1).astype(np.float32)
    weight[:, : rng.integers(0, 20)] = 0.0
    weight[-rng.integers(0, 10):] = np.float32(50.0)
    good = weight[weight != 0]
    expected = 0.7 * float(np.ma.mean(sigma_clip(good, sigma=3, maxiters=5)))
    assert weight_threshold(weight, 0.7) == pytest.approx(expected, rel=1e-6)
    assert weight_threshold(np.zeros((3, 3), np.float32), 0.7) == np.inf


def test_abs_derivative_is_largest_neighbour_difference():
    image = np.array([[0, 0, 0], [0, 4, 1], [0, 0, 9]], dtype=np.float32)
    deriv = abs_derivative(image)
    assert deriv[1, 1] == 4  # |4 - 0|, the largest of 4, 3, 4, 4 (diagonals do not count)
    assert deriv[2, 2] == 9  # |9 - 0|, its left neighbour
    assert deriv[0, 0] == 0


def test_laplacian_of_a_plane_is_zero_inside_and_edges_ignore_missing_neighbours():
    y, x = np.mgrid[:6, :7].astype(np.float32)
    plane = 2 * x + 3 * y
    assert np.allclose(laplacian(plane)[1:-1, 1:-1], 0)
    spike = np.zeros((5, 5), np.float32)
    spike[2, 2] = 1
    assert laplacian(spike)[2, 2] == -4 and laplacian(spike)[2, 3] == 1


def test_reference_method_flags_a_cosmic_ray_and_grows_into_its_neighbours():
    """A 20σ hit is flagged (mask1); a 4.5σ neighbour only through the 3×3 growth (mask2);
    a lone 4.5σ pixel elsewhere is not; a negative 6σ pixel is (the test is on |D|)."""
    data = np.zeros((20, 20), np.float32)
    err = np.ones_like(data)
    data[5, 5], data[5, 6] = 20, 4.5
    data[15, 15] = 4.5
    data[10, 2] = -6
    result = find_outliers(data, err, np.zeros_like(data), np.ones(data.shape, bool), 0.0,
                           replace(FLAG, method="reference"))
    assert set(zip(*np.nonzero(result.mask))) == {(5, 5), (5, 6), (10, 2)}


def test_background_is_added_back_to_the_blot():
    data = np.full((10, 10), 3.0, np.float32)
    result = find_outliers(data, np.ones_like(data), np.zeros_like(data),
                           np.ones(data.shape, bool), 3.0, replace(FLAG, method="reference"))
    assert not result.mask.any()


def _star_field(rng, shape=(120, 120), n_stars=25):
    """Sky-free field of Gaussian stars (σ = 1 px, peaks 40-200 ERR) plus unit noise."""
    y, x = np.indices(shape, dtype=np.float32)
    truth = np.zeros(shape, np.float32)
    for cy, cx in rng.uniform(8, shape[0] - 8, (n_stars, 2)):
        truth += rng.uniform(40, 200) * np.exp(-((x - cx) ** 2 + (y - cy) ** 2) / 2)
    return truth, truth + rng.normal(size=shape).astype(np.float32)


def test_a_median_holding_a_cosmic_ray_is_not_trusted():
    """Two exposures' cosmic rays at one spot survive a median of three: the blot then holds
    a 30σ spike. The image3 method judges that spot by shape: this exposure's own 30σ hit there
    is flagged and, in a clean exposure, the pixel is left alone; the reference's algorithm
    misses the hit (the spike's own derivative raises its threshold above it)."""
    rng = np.random.default_rng(3)
    truth, data = _star_field(rng)
    err = np.ones_like(data)
    blotted = truth.copy()
    blotted[60, 30] += 30  # the median's cosmic ray, on blank sky
    hit = data.copy()
    hit[60, 30] += 30  # this exposure's hit at the same spot
    everywhere = np.ones(data.shape, bool)
    for method, found_hit in (("image3", True), ("reference", False)):
        params = replace(FLAG, method=method)
        assert find_outliers(hit, err, blotted, everywhere, 0.0, params).mask[60, 30] == found_hit
    clean = find_outliers(data, err, blotted, everywhere, 0.0, FLAG)
    assert clean.untrusted == 9 and clean.limits is not None
    assert not clean.mask[truth > 40].any()  # no star core flagged


@pytest.mark.parametrize("method", ["image3", "reference"])
def test_pixels_with_an_unusable_err_are_left_out_not_flagged(method):
    """Isolated DQ-good pixels whose ERR is NaN, 0, negative or infinite (issue 29): an ERR of
    0 would make any difference from the median an outlier. They are neither compared nor
    flagged, but made DO_NOT_USE; a 20σ hit beside them is still flagged."""
    rng = np.random.default_rng(5)
    truth, data = _star_field(rng)
    err = np.ones_like(data)
    bad = [(10, 10), (20, 40), (70, 90), (100, 15)]
    for (y, x), value in zip(bad, (np.nan, 0.0, -1.0, np.inf)):
        err[y, x] = value
        data[y, x] += 5  # a 5σ difference: an outlier for an ERR of 0
    data[50, 50] += 20
    result = find_outliers(data, err, truth, np.ones(data.shape, bool), 0.0,
                           replace(FLAG, method=method))
    assert set(zip(*np.nonzero(result.no_error))) == set(bad)
    assert not result.mask[tuple(np.transpose(bad))].any()
    assert result.mask[50, 50]
    model = datamodels.ImageModel(data.shape)
    model.data, model.err = data, err
    apply_outlier_flags(model, result.mask, result.no_error)
    assert all(model.dq[p] == DO_NOT_USE for p in bad)  # left out, not called outliers


def test_flags_set_outlier_and_do_not_use_and_match_nans():
    model = datamodels.ImageModel((4, 4))
    for name in ("data", "err", "var_rnoise", "var_poisson", "var_flat"):
        setattr(model, name, np.ones((4, 4), np.float32))
    model.var_flat[0, 0] = np.nan  # NaN in one variance: DO_NOT_USE and NaN everywhere
    mask = np.zeros((4, 4), bool)
    mask[2, 2] = True
    assert apply_outlier_flags(model, mask) == 1
    assert model.dq[2, 2] == DO_NOT_USE | OUTLIER
    assert model.dq[0, 0] == DO_NOT_USE
    for name in ("data", "err", "var_rnoise", "var_poisson", "var_flat"):
        array = getattr(model, name)
        assert np.isnan(array[2, 2]) and np.isnan(array[0, 0]) and np.isfinite(array[1, 1])
    assert model.meta.cal_step.outlier_detection == "COMPLETE"


# ------------------------------------------------------------------------------------------
# The median


def test_combine_stack_reference_is_nanmedian():
    values = np.array([[1.0, 5.0], [3.0, np.nan], [100.0, np.nan], [2.0, np.nan]])[..., None]
    combined, count = combine_stack(values.astype(np.float32), None, "reference")
    assert combined[:, 0].tolist() == [2.5, 5.0] and count[:, 0].tolist() == [4, 1]


@pytest.mark.parametrize("depth", [1, 2, 5, 6, 17])
def test_combine_stack_median_equals_numpy_nanmedian(depth):
    """The sort-based median: numpy's numbers to the bit, NaN as no data, inf as a value."""
    rng = np.random.default_rng(depth)
    values = rng.normal(size=(depth, 40, 50)).astype(np.float32)
    values[rng.random(values.shape) < 0.4] = np.nan
    values[0, 0, :3] = np.inf
    values[-1, 1, :2] = -np.inf
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        expected = np.nanmedian(values, axis=0).astype(np.float32)
    combined, count = combine_stack(values, None, "reference")
    np.testing.assert_array_equal(combined, expected)
    assert combined.dtype == np.float32
    np.testing.assert_array_equal(count, np.isfinite(values).sum(axis=0))


def test_combine_stack_takes_the_lower_of_two_disagreeing_middle_values():
    """Two singles: 0 and a 10σ cosmic ray → 0 (the mean would be 5); 0 and 1σ → their mean.
    Four singles with two cosmic rays at one pixel: the lower middle value."""
    values = np.array([[0.0, 0.0, 0.0], [10.0, 1.0, 0.2], [np.nan, np.nan, 50.0],
                       [np.nan, np.nan, 40.0]], np.float32)[..., None]
    errors = np.full_like(values, 1 / np.sqrt(2))
    combined, count = combine_stack(values, errors, "image3")
    assert combined[:, 0].tolist() == pytest.approx([0.0, 0.5, 0.2])
    assert count[:, 0].tolist() == [2, 2, 4]


def _random_single(rng, grid_shape, origin, shape):
    sci = rng.normal(size=shape).astype(np.float32)
    sci[rng.random(shape) < 0.1] = np.nan
    return Single(sci, np.ones(shape, np.float32), np.full(shape, 0.5, np.float32), origin,
                  grid_shape, 0.7)


def test_median_in_row_blocks_equals_the_whole_stack(tmp_path):
    """Blocks of a few rows (the fixed memory budget) give exactly the in-memory result."""
    rng = np.random.default_rng(1)
    grid_shape = (40, 50)
    cutouts = [((0, 0), (30, 35)), ((10, 12), (30, 38)), ((5, 3), (20, 20)), ((20, 30), (20, 20))]
    paths, cube, ecube = [], [], []
    for k, (origin, shape) in enumerate(cutouts):
        single = _random_single(rng, grid_shape, origin, shape)
        write_single(tmp_path / f"s{k}.fits", single)
        paths.append(tmp_path / f"s{k}.fits")
        full = np.full(grid_shape, np.nan, np.float32)
        full[origin[0]:origin[0] + shape[0], origin[1]:origin[1] + shape[1]] = single.sci
        cube.append(full)
        ecube.append(np.where(np.isfinite(full), 0.5, np.nan).astype(np.float32))
    expected, expected_count = combine_stack(np.stack(cube), np.stack(ecube), "image3")
    median, count = median_of_singles(paths, "image3", block_bytes=3 * 4 * 2 * 50 * 4)
    np.testing.assert_array_equal(median, expected)
    np.testing.assert_array_equal(count, expected_count)
    write_median(tmp_path / "median.fits", median, count, "image3", 4)
    window, window_count = read_median_window(tmp_path / "median.fits", (5, 15, 7, 27))
    np.testing.assert_array_equal(window, median[5:15, 7:27])
    covered = read_single_coverage(paths[3], (15, 25, 25, 45))
    np.testing.assert_array_equal(covered[5:, 5:], np.isfinite(cube[3][20:25, 30:45]))
    assert not covered[:5].any() and not covered[:, :5].any()
    # in pieces (sky tiles' inner regions): each piece is its region of the whole, and a
    # window read across the pieces is the whole's
    pieces = []
    for k, region in enumerate(((0, 40, 0, 20), (0, 17, 20, 50), (17, 40, 20, 50))):
        y0, y1, x0, x1 = region
        part, part_count = median_of_singles(paths, "image3", region, block_bytes=3 * 4 * 2 * 50 * 4)
        np.testing.assert_array_equal(part, median[y0:y1, x0:x1])
        np.testing.assert_array_equal(part_count, count[y0:y1, x0:x1])
        pieces.append(tmp_path / f"piece{k}.fits")
        write_median(pieces[-1], part, part_count, "image3", 4, (y0, x0), grid_shape)
    window, window_count = read_median_window(pieces, (5, 30, 7, 45))
    np.testing.assert_array_equal(window, median[5:30, 7:45])
    np.testing.assert_array_equal(window_count, count[5:30, 7:45])
    assert median_shape(pieces) == grid_shape


# ------------------------------------------------------------------------------------------
# Against truth


def run_outlier_detection(asn_path: Path, work: Path, method: str) -> dict:
    """The three rules' work in one process with the default parameters and ``method``:
    singles → median → flags per member (not yet applied). Returns {member: FlagResult}."""
    single, flag = replace(SINGLE, method=method), replace(FLAG, method=method)
    asn = json.loads(Path(asn_path).read_text())
    members = [m["expname"][:-len("_cal.fits")] for m in asn["products"][0]["members"]]
    cals = [str(Path(asn_path).parent / f"{m}_cal.fits") for m in members]
    grid = build_grid([member_geometry(c) for c in cals], DEFAULT_GRID)
    singles = {}
    for member, cal in zip(members, cals):
        singles[member] = work / f"{member}_single.fits"
        write_single(singles[member], drizzle_single([read_exposure(cal)], grid, single))
    median, count = median_of_singles(list(singles.values()), method)
    write_median(work / "median.fits", median, count, method, len(members))
    results = {}
    for member, cal in zip(members, cals):
        exposure = read_exposure(cal)
        pixmap = single_pixel_map(exposure, grid, flag)
        box = window_of(pixmap, median_shape(work / "median.fits"))
        window, window_count = read_median_window(work / "median.fits", box)
        own = read_single_coverage(singles[member], box)
        blot = blot_median(exposure, pixmap, window, window_count, own, (box[0], box[2]), flag)
        results[member] = compare_with_median(exposure, blot, flag)
    return results


def star_cores(truth: Path, member: str, noise_free: np.ndarray, err: np.ndarray,
               sky: float) -> np.ndarray:
    """3×3 pixels at the true centre (TRUE wcs) of every star whose true peak (noise-free,
    above the sky) exceeds 50 × ERR."""
    sources = Table.read(truth / "sources.ecsv")
    stars = sources[sources["kind"] == "star"]
    with asdf.open(truth / f"{member}_wcs.asdf") as af:
        x, y = synth.sky_to_pixel(af.tree["wcs"], np.asarray(stars["ra"]),
                                  np.asarray(stars["dec"]))
    ny, nx = noise_free.shape
    cores = np.zeros(noise_free.shape, bool)
    for cx, cy in zip(np.round(x).astype(int), np.round(y).astype(int)):
        if not (0 <= cx < nx and 0 <= cy < ny):
            continue
        box = (slice(max(cy - 1, 0), cy + 2), slice(max(cx - 1, 0), cx + 2))
        peak = noise_free[box] - sky
        k = np.unravel_index(np.argmax(peak), peak.shape)
        if np.isfinite(err[box][k]) and peak[k] > 50 * err[box][k]:
            cores[box] = True
    return cores


def truth_scores(asn_path: Path, results: dict) -> dict:
    """Recall per amplitude bin (nσ = injected amplitude / _cal ERR), per member and pooled;
    precision = flagged pixels on an injected cosmic ray / flagged pixels; star-core pixels
    (without a cosmic ray) flagged."""
    data_dir = Path(asn_path).parent
    truth = data_dir / "truth"
    exposures = Table.read(truth / "exposures.ecsv")
    bins = {"5-7": (5, 7), "7-10": (7, 10), ">=10": (10, np.inf), ">=5": (5, np.inf)}
    pooled = {k: [0, 0] for k in bins}
    per_member, flagged_total, hits_total, cores_flagged = {}, 0, 0, 0
    for member, result in results.items():
        injected = fits.getdata(truth / f"{member}_cr.fits")
        noise_free = fits.getdata(truth / f"{member}_model.fits")
        with fits.open(data_dir / f"{member}_cal.fits") as hdul:
            err, dq = hdul["ERR"].data, hdul["DQ"].data
        flagged = result.mask & ((dq & DO_NOT_USE) == 0)
        with np.errstate(invalid="ignore", divide="ignore"):
            nsigma = np.where(injected > 0, injected / err, 0)
        recall = {}
        for name, (lo, hi) in bins.items():
            in_bin = (nsigma >= lo) & (nsigma < hi)
            pooled[name][0] += int((in_bin & flagged).sum())
            pooled[name][1] += int(in_bin.sum())
            recall[name] = (in_bin & flagged).sum() / max(int(in_bin.sum()), 1)
        sky = float(exposures[exposures["member"] == member]["sky_mjysr"][0])
        cores = star_cores(truth, member, noise_free, err, sky)
        cores_flagged += int((flagged & cores & (injected == 0)).sum())
        flagged_total += int(flagged.sum())
        hits_total += int((flagged & (injected > 0)).sum())
        per_member[member] = recall
    return {
        "recall": {k: v[0] / max(v[1], 1) for k, v in pooled.items()},
        "worst_recall_10": min(r[">=10"] for r in per_member.values()),
        "precision": hits_total / max(flagged_total, 1),
        "star_core_pixels_flagged": cores_flagged,
        "per_member": per_member,
    }


@pytest.fixture(scope="module")
def dithered_field(tmp_path_factory):
    """5 × 1024² NIRCam exposures, true WCS and equal sky (no tweakreg/skymatch needed)."""
    out = tmp_path_factory.mktemp("field")
    return synth.make_association(out / "data", n=5, size=1024, seed=1, wcs_errors=False,
                                  sky_offsets=False, truth_images=True)


def test_recall_precision_and_star_cores_against_injected_cosmic_rays(dithered_field, tmp_path):
    """Truth: injected cosmic rays and the noise-free sky. Required: recall ≥ 99.5% of the
    pixels hit ≥ 10σ in every exposure, ≥ 97.3% pooled ≥ 5σ, precision ≥ 99%, and no pixel of
    a bright star's core flagged (the reference reaches ~91% / ~92% / ~96% here)."""
    scores = truth_scores(dithered_field, run_outlier_detection(dithered_field, tmp_path, "image3"))
    print(json.dumps({k: v for k, v in scores.items() if k != "per_member"}, indent=1))
    assert scores["worst_recall_10"] >= 0.995
    assert scores["recall"][">=5"] >= 0.973
    assert scores["precision"] >= 0.99
    assert scores["star_core_pixels_flagged"] == 0


def test_reference_method_misses_what_image3_finds(dithered_field, tmp_path):
    """The reference's algorithm (method: reference) on the same field: the cosmic rays where
    fewer than three exposures overlap survive, and half of each one in a two-exposure
    overlap is flagged in the clean exposure (lower precision)."""
    scores = truth_scores(dithered_field,
                          run_outlier_detection(dithered_field, tmp_path, "reference"))
    assert 0.85 < scores["worst_recall_10"] < 0.97
    assert scores["precision"] < 0.98


def test_a_group_read_member_by_member_drizzles_as_the_open_models(dithered_field):
    """drizzle_single given functions that read each member (the single job's way: one
    member's pixels in memory at a time) equals it given the exposures read first, exactly."""
    cals = sorted(str(p) for p in Path(dithered_field).parent.glob("*_cal.fits"))[:2]
    grid = build_grid([member_geometry(c) for c in cals], DEFAULT_GRID)
    opened = drizzle_single([read_exposure(c) for c in cals], grid, SINGLE, "g")
    read = drizzle_single([functools.partial(read_exposure, c) for c in cals], grid, SINGLE, "g")
    assert opened.origin == read.origin and opened.weight_threshold == read.weight_threshold
    for name in ("sci", "wht", "err"):
        np.testing.assert_array_equal(getattr(opened, name), getattr(read, name))
    assert np.isfinite(read.sci).mean() > 0.5


@pytest.mark.parametrize("shape", [(1, 7), (6, 1), (2, 2), (37, 53)])
def test_box_filters_equal_scipy(shape):
    """The 1-D-pass box dilation and 3 x 3 maximum give scipy.ndimage's results exactly."""
    from scipy import ndimage

    from image3.outlier import _dilate, _max3

    rng = np.random.default_rng(sum(shape))
    mask = rng.random(shape) < 0.1
    for size in (3, 5):
        np.testing.assert_array_equal(_dilate(mask, size),
                                      ndimage.binary_dilation(mask, np.ones((size, size), bool)))
    image = rng.normal(size=shape).astype(np.float32)
    image[rng.random(shape) < 0.2] = -np.inf
    np.testing.assert_array_equal(_max3(image), ndimage.maximum_filter(image, 3))



# ------------------------------------------------------------------------------------------
# Two exposures that disagree on a source (6. of image3.outlier's docstring)


def _aperture_fluxes(path: Path, ra, dec, radius_arcsec: float) -> np.ndarray:
    """Sum within ``radius_arcsec`` less the median of an annulus 5-15 px outside, in uJy, at
    (ra, dec) through the _i2d's gwcs."""
    from photutils.aperture import CircularAnnulus, CircularAperture, aperture_photometry

    with datamodels.ImageModel(str(path)) as i2d:
        x, y = i2d.meta.wcs.invert(ra, dec)
        data = np.nan_to_num(i2d.data)
        pixar = i2d.meta.photometry.pixelarea_steradians
        r = radius_arcsec / i2d.meta.photometry.pixelarea_arcsecsq ** 0.5
    pos = np.column_stack([x, y])
    total = np.asarray(aperture_photometry(data, CircularAperture(pos, r))["aperture_sum"])
    sky = np.array([np.median(m.multiply(data)[m.data > 0])
                    for m in CircularAnnulus(pos, r + 5, r + 15).to_mask()])
    return (total - sky * np.pi * r * r) * pixar * 1e12


@pytest.fixture(scope="module")
def misregistered_pair(tmp_path_factory):
    """Two 1024² exposures, the second with its 0.11" pointing error left in (no tweakreg)."""
    root = tmp_path_factory.mktemp("pair")
    asn = synth.make_association(root / "data", n=2, size=1024, seed=7, density=0.2)
    return (asn, root, *_flagged_mosaic(asn, root))


@pytest.fixture(scope="module")
def troubled_field(tmp_path_factory):
    """Four 1024² exposures with true WCSs but the second's, 0.3" off (no tweakreg), two
    variable stars and a moving source."""
    root = tmp_path_factory.mktemp("troubles")
    asn = synth.make_association(root / "data", n=4, size=1024, seed=11, density=0.2,
                                 wcs_errors=False, misregister=(2, 0.3, 0.0), variables=2,
                                 movers=1)
    return (asn, root, *_flagged_mosaic(asn, root))


def _flagged_mosaic(asn: Path, root: Path):
    """The association through skymatch, the singles, the median and the flag jobs, drizzled
    into an _i2d; and its exposures with the injected cosmic rays subtracted, drizzled without
    flags (``i2d_clean``). Returns (members, flag log lines)."""
    from image3.datamodel import MemberFiles
    from image3.flag import flag_member
    from image3.grid import write_output_grid
    from image3.median import write_median_of_singles
    from image3.mosaic import write_i2d
    from image3.outlier import write_group_single
    from image3.parameters import FinalDrizzle, SipApproximation, SkySolve, SkyStatistics
    from image3.asn import pair_partners
    from image3.skymatch import write_member_sky_stats, write_sky_records

    defaults = schema_defaults()
    final = FinalDrizzle.from_config(defaults["resample"])
    names = [m["expname"][:-len("_cal.fits")]
             for m in json.loads(asn.read_text())["products"][0]["members"]]
    cals = [MemberFiles(m, synth.group_id(m), asn.parent / synth.cal_filename(m)) for m in names]
    write_output_grid(root / "grid.pkl", cals, DEFAULT_GRID, root / "grid_shape.json")
    by_name = {m.name: m for m in cals}
    for m in cals:
        write_member_sky_stats(root / f"{m.name}_stats.json", m,
                               [by_name[p] for p in pair_partners(names, m.name)],
                               defaults["skymatch"]["stepsize"],
                               SkyStatistics.from_config(defaults["skymatch"]))
    write_sky_records({m.name: root / f"{m.name}_sky.json" for m in cals},
                      [root / f"{m.name}_stats.json" for m in cals],
                      {m.group_id: [m.name] for m in cals},
                      SkySolve.from_config(defaults["skymatch"]))
    members = [replace(m, sky=root / f"{m.name}_sky.json") for m in cals]
    for m in members:
        write_group_single(root / f"{m.name}_single.fits", [m], root / "grid.pkl", SINGLE,
                           m.group_id)
    write_median_of_singles(root / "median.fits", [root / f"{m.name}_single.fits"
                                                   for m in members], FLAG.method)
    lines = [flag_member(m, grid_path=root / "grid.pkl", median_path=root / "median.fits",
                         single_path=root / f"{m.name}_single.fits", compare=FLAG,
                         sip=SipApproximation.from_config(defaults["tweakreg"]),
                         crf_path=root / f"{m.name}_crf.fits", final_grid_path=root / "grid.pkl",
                         final=final, contribution_path=root / f"{m.name}.npz")
             for m in members]
    write_i2d(root / "i2d.fits", [replace(m, cal=root / f"{m.name}_crf.fits", sky=None)
                                  for m in members], root / "grid.pkl", final,
              [root / f"{m.name}.npz" for m in members])
    clean = []
    for m in members:
        with datamodels.ImageModel(str(m.cal)) as model:
            model.data = model.data - fits.getdata(asn.parent / "truth" / f"{m.name}_cr.fits")
            model.save(str(root / f"{m.name}_clean_cal.fits"))
        clean.append(replace(m, cal=root / f"{m.name}_clean_cal.fits"))
    write_i2d(root / "i2d_clean.fits", clean, root / "grid.pkl", final)
    return members, lines


def test_a_star_misregistered_between_two_exposures_keeps_99_percent_of_its_flux(
        misregistered_pair):
    """Stars >= 0.3 uJy covered by both exposures (0.11" apart): flux within r = 1" in the
    _i2d within 1% of the unflagged mosaic of the cosmic-ray-free exposures (measured
    0.994-1.004; 0.23-0.49 when both copies of each star were flagged)."""
    from truth import isolation_arcsec

    asn, root, _, lines = misregistered_pair
    truth = Table.read(asn.parent / "truth" / "exposures.ecsv")
    assert max(np.hypot(truth["wcs_dx_arcsec"], truth["wcs_dy_arcsec"])) > 0.1
    sources = Table.read(asn.parent / "truth" / "sources.ecsv")
    with datamodels.ImageModel(str(root / "i2d.fits")) as i2d:
        x, y = i2d.meta.wcs.invert(np.asarray(sources["ra"]), np.asarray(sources["dec"]))
        con = i2d.con[0]
    xi, yi = np.round(x).astype(int), np.round(y).astype(int)
    ny, nx = con.shape
    inside = (xi > 60) & (yi > 60) & (xi < nx - 60) & (yi < ny - 60)
    both = np.zeros(len(sources), dtype=bool)  # the sky beside the star has both exposures
    both[inside] = (con[yi[inside], xi[inside] + 20] == 3) & (con[yi[inside], xi[inside] - 20] == 3)
    stars = sources[both & (sources["kind"] == "star") & (sources["flux_ujy"] >= 0.3)
                    & (isolation_arcsec(sources) > 1.2)]
    assert len(stars) >= 8
    ra, dec = np.asarray(stars["ra"]), np.asarray(stars["dec"])
    ratio = (_aperture_fluxes(root / "i2d.fits", ra, dec, 1.0)
             / _aperture_fluxes(root / "i2d_clean.fits", ra, dec, 1.0))
    assert np.all(np.abs(ratio - 1) < 0.01), np.round(ratio, 3)
    assert all(" left unflagged where a source differs between exposures" in line for line in lines)
    spared = [int(line.split("; ")[-1].split()[0]) for line in lines]
    assert min(spared) > 500


def test_two_exposures_still_flag_98_percent_of_cosmic_rays_above_10_sigma(misregistered_pair):
    """In the same pair, cosmic-ray pixels >= 10σ flagged in each exposure: >= 98% (measured
    98.7% and 99.3%); pixels flagged off any cosmic ray and not DO_NOT_USE in the _cal: <= 20
    per exposure (measured 6 and 1; 2340 and 2680 when sources were flagged)."""
    asn, root, members, _ = misregistered_pair
    for m in members:
        injected = fits.getdata(asn.parent / "truth" / f"{m.name}_cr.fits")
        err, cal_dq = fits.getdata(m.cal, "ERR"), fits.getdata(m.cal, "DQ")
        flagged = (fits.getdata(root / f"{m.name}_crf.fits", "DQ") & DO_NOT_USE) != 0
        usable = (cal_dq & DO_NOT_USE) == 0
        strong = (injected >= 10 * err) & usable
        assert flagged[strong].mean() >= 0.98
        assert int((flagged & usable & (injected == 0)).sum()) <= 20


def _region_fluxes(path: Path, positions, radius_arcsec: float) -> float:
    """Sum [uJy] over the union of circles of ``radius_arcsec`` at (ra, dec) ``positions``
    less the median of the pixels 5-15 px outside it."""
    with datamodels.ImageModel(str(path)) as i2d:
        x, y = i2d.meta.wcs.invert(*np.asarray(positions).T)
        data = np.nan_to_num(i2d.data)
        pixar = i2d.meta.photometry.pixelarea_steradians
        r = radius_arcsec / i2d.meta.photometry.pixelarea_arcsecsq ** 0.5
    yy, xx = np.indices(data.shape)
    distance = np.min([np.hypot(xx - x0, yy - y0) for x0, y0 in zip(x, y)], axis=0)
    inside, ring = distance <= r, (distance > r + 5) & (distance <= r + 15)
    return float((data[inside].sum() - np.median(data[ring]) * inside.sum()) * pixar * 1e12)


def test_misregistered_variable_and_moving_sources_keep_their_flux(troubled_field):
    """Four exposures, one 0.3" off: isolated stars >= 0.3 uJy keep >= 95% of their flux
    within 1" of the unflagged cosmic-ray-free mosaic (measured 97.0-101.1%; 72-97% when
    the median decided), the variable stars and the moving source (its positions in all
    exposures) within 10% (100.0-101.4%; 33-100%)."""
    from truth import isolation_arcsec

    asn, root, _, _ = troubled_field
    sources = Table.read(asn.parent / "truth" / "sources.ecsv")
    with datamodels.ImageModel(str(root / "i2d.fits")) as i2d:
        x, y = i2d.meta.wcs.invert(np.asarray(sources["ra"]), np.asarray(sources["dec"]))
        con = i2d.con[0]
    xi, yi = np.round(x).astype(int), np.round(y).astype(int)
    ny, nx = con.shape
    inside = (xi > 60) & (yi > 60) & (xi < nx - 60) & (yi < ny - 60)
    every = np.zeros(len(sources), dtype=bool)  # the sky beside the star has all four
    every[inside] = (con[yi[inside], xi[inside] + 20] == 15) & (con[yi[inside], xi[inside] - 20] == 15)
    stars = sources[every & (sources["kind"] == "star") & (sources["flux_ujy"] >= 0.3)
                    & (isolation_arcsec(sources) > 1.2) & ~sources["variable"]]
    assert len(stars) >= 6
    for star in stars:
        ratio = (_region_fluxes(root / "i2d.fits", [(star["ra"], star["dec"])], 1.0)
                 / _region_fluxes(root / "i2d_clean.fits", [(star["ra"], star["dec"])], 1.0))
        assert 0.95 <= ratio <= 1.05, (star["id"], ratio)
    epochs = Table.read(asn.parent / "truth" / "epochs.ecsv")
    changing = sorted(set(epochs["id"]))
    assert len(changing) == 3
    for source in changing:
        rows = epochs[epochs["id"] == source]
        positions = np.column_stack([rows["ra"], rows["dec"]])
        ratio = (_region_fluxes(root / "i2d.fits", positions, 1.0)
                 / _region_fluxes(root / "i2d_clean.fits", positions, 1.0))
        assert 0.9 <= ratio <= 1.1, (source, ratio)
