"""Drizzle core: weights, per-exposure partials and their join, variances, blot.

Small synthetic arrays (128^2 inputs) on the synthetic NRCB1 gwcs (SIAF distortion), dithered
by editing its v2v3 -> sky rotation; every pixel map is exact (stepsize 1) so only drizzle is
under test.
"""

from dataclasses import dataclass, replace

import numpy as np
import pytest
from drizzle.resample import Drizzle
from test_wcs import GRID, dithered

from image3 import resample as R
from image3 import wcs as W
from image3.errors import ConfigError, InputFileError

N = 128  # input exposures are N x N
DITHERS_ARCSEC = [(0.0, 0.0), (0.93, 0.41), (-0.47, 1.12)]  # (dv2, dv3): ~15-35 pixel offsets
NAMES = ("var_rnoise", "var_poisson", "var_flat")


@dataclass
class Exposure:
    data: np.ndarray
    variances: dict
    weight: np.ndarray
    pixmap: np.ndarray
    exptime: float


def make_scene(nircam, pixel_scale_ratio=1.0, output_shape=None):
    """Dithered WCSs, their output grid and exact pixel maps."""
    wcs, info = nircam
    wcss = [dithered(wcs, *d) for d in DITHERS_ARCSEC]
    grid = W.output_grid(wcs, info, [W.footprint(w, (N, N)) for w in wcss],
                         replace(GRID, pixel_scale_ratio=pixel_scale_ratio,
                                 output_shape=output_shape))
    pixmaps = [W.pixel_map(w, (N, N), grid, stepsize=1, order=1) for w in wcss]
    return wcss, grid, pixmaps


@pytest.fixture(scope="module")
def scene(nircam):
    return make_scene(nircam)


def random_exposures(pixmaps, weight_type="ivm", seed=1):
    """Noisy data, varying variances, some DO_NOT_USE pixels and a harmless JUMP_DET one."""
    rng = np.random.default_rng(seed)
    exposures = []
    for k, pixmap in enumerate(pixmaps):
        data = rng.normal(10.0, 1.0, (N, N)).astype(np.float32)
        variances = {name: rng.uniform(0.5, 1.5, (N, N)).astype(np.float32) * scale
                     for name, scale in zip(NAMES, (0.01, 0.05, 0.002), strict=True)}
        dq = np.zeros((N, N), dtype=np.uint32)
        dq[rng.integers(0, N, 40), rng.integers(0, N, 40)] = 1
        dq[5, 7] = 4
        exptime = 100.0 + 50 * k
        weight = R.weight_map(dq, variances["var_rnoise"], "~DO_NOT_USE+NON_SCIENCE",
                              weight_type, exptime)
        exposures.append(Exposure(data, variances, weight, pixmap, exptime))
    return exposures


def drizzle_all(exposures, grid, *, weight_type="ivm", kernel="square", pixfrac=1.0, ratio=1.0):
    return [R.drizzle_exposure(e.data, e.variances, e.weight, e.pixmap, grid.array_shape,
                               weight_type=weight_type, kernel=kernel, pixfrac=pixfrac,
                               pixel_scale_ratio=ratio, exptime=e.exptime) for e in exposures]


def serial_reference(exposures, shape, *, weight_type="ivm", kernel="square", pixfrac=1.0,
                     ratio=1.0):
    """What the reference (stcal Resample.add_model/finalize) computes: one full-grid Drizzle
    for the data, one per input and variance for sqrt(var), float32 running sums."""
    driz = Drizzle(kernel=kernel, fillval="NaN", out_shape=shape, max_ctx_id=len(exposures) - 1)
    wsum = {n: np.full(shape, np.nan, dtype=np.float32) for n in NAMES}
    wt = {n: np.zeros(shape, dtype=np.float32) for n in NAMES}
    for e in exposures:
        args = {"exptime": e.exptime, "pixmap": e.pixmap, "pixel_scale_ratio": ratio,
                "weight_map": e.weight, "pixfrac": pixfrac, "in_units": "cps",
                "xmin": 0, "xmax": N - 1, "ymin": 0, "ymax": N - 1}
        driz.add_image(e.data, **args)
        var = {}
        for n in NAMES:
            vdriz = Drizzle(out_shape=shape, kernel=kernel, fillval=np.nan, disable_ctx=True)
            vdriz.add_image(np.sqrt(e.variances[n]), **args)
            var[n] = vdriz.out_img ** 2
        if weight_type == "ivm":
            ok = (var["var_rnoise"] > 0) & np.isfinite(var["var_rnoise"])
            weight = np.zeros(shape)
            weight[ok] = np.reciprocal(var["var_rnoise"][ok])
        else:
            weight = np.full(shape, e.exptime)
        for n in NAMES:
            ok = (var[n] >= 0) & np.isfinite(var[n]) & (weight > 0)
            wsum[n][ok] = np.nansum([wsum[n][ok], var[n][ok] * weight[ok] * weight[ok]], axis=0)
            wt[n][ok] += weight[ok]
    with np.errstate(invalid="ignore", divide="ignore"):
        variances = {n: (wsum[n] / ratio**2 / wt[n] / wt[n]).astype(np.float32) for n in NAMES}
    return driz.out_img, driz.out_wht, driz.out_ctx, variances


def n_covering(con) -> np.ndarray:
    """Number of inputs that contributed to each output pixel (set context bits)."""
    bits = con.view(np.uint32)
    return sum(((bits >> k) & 1).astype(int) for k in range(32)).sum(axis=0)


# ------------------------------------------------------------------ weights


def test_weight_map_as_the_reference():
    dq = np.array([[0, 1, 512, 4]], dtype=np.uint32)
    var = np.array([[0.25, 0.25, 0.25, 0.5]], dtype=np.float32)
    good = "~DO_NOT_USE+NON_SCIENCE"
    np.testing.assert_array_equal(R.weight_map(dq, var, good, "ivm", 10.0), [[4, 0, 0, 2]])
    bad_var = np.array([[0.0, np.nan, np.inf, -1.0]], dtype=np.float32)
    np.testing.assert_array_equal(R.weight_map(np.zeros_like(dq), bad_var, good, "ivm", 1.0),
                                  [[0, 0, 0, -1]])
    np.testing.assert_array_equal(R.weight_map(dq, None, good, "ivm", 10.0), [[1, 0, 0, 1]])
    np.testing.assert_array_equal(R.weight_map(dq, var, good, "exptime", 10.0), [[10, 0, 0, 10]])
    np.testing.assert_array_equal(R.weight_map(dq, var, 0, None, 10.0), [[1, 0, 0, 0]])
    assert R.weight_map(dq, var, good, "ivm", 1.0).dtype == np.float32
    with pytest.raises(ConfigError):
        R.weight_map(dq, var, good, "ivm-sky", 1.0)


# ------------------------------------------------------------------ drizzle


@pytest.mark.parametrize(("kernel", "pixfrac"), [
    ("square", 1.0), ("square", 0.8), ("turbo", 1.0), ("point", 1.0), ("gaussian", 1.0),
    ("lanczos3", 1.0),
])
def test_constant_image_drizzles_to_the_same_constant(scene, kernel, pixfrac):
    _, grid, pixmaps = scene
    ones = np.ones((N, N), dtype=np.float32)
    exposures = [Exposure(7.5 * ones, {}, ones, p, 1.0) for p in pixmaps]
    result = R.combine_partials(drizzle_all(exposures, grid, kernel=kernel, pixfrac=pixfrac),
                                grid.array_shape)
    covered = result.wht > 1e-3 * np.max(result.wht)
    assert covered.sum() > 0.5 * N * N
    np.testing.assert_allclose(result.sci[covered], 7.5, rtol=2e-6)


@pytest.mark.parametrize(("pixfrac", "tolerance"), [(1.0, 1e-6), (0.8, 5e-3)])
def test_point_source_flux_is_conserved(nircam, scene, pixfrac, tolerance):
    """Sum(SB x pixel area) in = out. Exact at pixfrac 1; at pixfrac < 1 drizzle conserves flux
    only on average over dithers (3 dithers here: measured -0.23% at 0.8)."""
    wcs, _ = nircam
    wcss, grid, pixmaps = scene
    ra, dec = wcs(64.3, 61.6)
    fluxes, exposures = [], []
    for w, pixmap in zip(wcss, pixmaps, strict=True):
        sx, sy = w.invert(ra, dec)
        y, x = np.mgrid[0:N, 0:N]
        star = np.exp(-((x - sx) ** 2 + (y - sy) ** 2) / (2 * 2.5**2)).astype(np.float32)
        # input pixel area in output pixels: Jacobian of the pixel map
        gx, gy = np.gradient(pixmap, axis=1), np.gradient(pixmap, axis=0)
        area = np.abs(gx[..., 0] * gy[..., 1] - gx[..., 1] * gy[..., 0])
        fluxes.append(np.sum(star * area))
        exposures.append(Exposure(star, {}, np.ones((N, N), dtype=np.float32), pixmap, 1.0))
    result = R.combine_partials(drizzle_all(exposures, grid, pixfrac=pixfrac), grid.array_shape)
    assert np.nansum(result.sci) == pytest.approx(np.mean(fluxes), rel=tolerance)


@pytest.mark.parametrize(("kernel", "pixfrac", "weight_type", "ratio", "output_shape"), [
    ("square", 1.0, "ivm", 1.0, None),
    ("square", 0.7, "exptime", 0.7, None),
    ("square", 1.0, "ivm", 1.0, [100, 90]),  # grid smaller than the exposures: clipped cutouts
    ("turbo", 0.8, "ivm", 1.0, None),
    ("point", 1.0, "ivm", 1.0, None),
    ("gaussian", 1.0, "ivm", 1.0, None),
    ("lanczos3", 1.0, "exptime", 1.0, [100, 90]),
])
def test_combined_partials_equal_serial_drizzle(nircam, kernel, pixfrac, weight_type, ratio,
                                                output_shape):
    """Float32 rounding apart (measured <= 1.1e-6 relative), the join is the serial drizzle."""
    _, grid, pixmaps = make_scene(nircam, pixel_scale_ratio=ratio, output_shape=output_shape)
    exposures = random_exposures(pixmaps, weight_type)
    partials = drizzle_all(exposures, grid, weight_type=weight_type, kernel=kernel,
                           pixfrac=pixfrac, ratio=ratio)
    if output_shape is None:  # cutouts, not the mosaic
        assert all(p.data_sum.shape[0] < grid.array_shape[0] for p in partials)
    result = R.combine_partials(partials, grid.array_shape)
    sci, wht, ctx, variances = serial_reference(
        exposures, grid.array_shape, weight_type=weight_type, kernel=kernel, pixfrac=pixfrac,
        ratio=ratio)
    np.testing.assert_array_equal(result.con, ctx)
    assert result.con.dtype == np.int32 and result.con.shape == (1, *grid.array_shape)
    np.testing.assert_array_equal(np.isnan(result.sci), np.isnan(sci))
    strong = np.abs(wht) > 1e-3 * np.max(wht)  # lanczos: sums near 0 amplify rounding
    np.testing.assert_allclose(result.sci[strong], sci[strong], rtol=1e-5)
    np.testing.assert_allclose(result.wht, wht, rtol=1e-5, atol=1e-6 * np.max(wht))
    for name in NAMES:
        np.testing.assert_array_equal(np.isnan(getattr(result, name)), np.isnan(variances[name]))
        np.testing.assert_allclose(getattr(result, name), variances[name], rtol=1e-5)
    for array in (result.sci, result.wht, result.err, result.var_rnoise):
        assert array.dtype == np.float32


@pytest.mark.parametrize("zero_rnoise", [False, True])
def test_variances_drizzled_in_pairs_equal_separate_drizzles(nircam, zero_rnoise):
    """VAR_RNOISE carries VAR_POISSON through one drizzle (linear weights); where its sigma is
    0 on a weighted pixel (exptime weighting) each variance is drizzled alone. Both give the
    reference's separate drizzles, float32 rounding apart."""
    _, grid, pixmaps = make_scene(nircam)
    exposures = random_exposures(pixmaps, "exptime", seed=4)
    if zero_rnoise:
        exposures[1].variances["var_rnoise"][10:20, 30:40] = 0.0
    assert all(np.all(e.weight[10:20, 30:40] > 0) for e in exposures)
    result = R.combine_partials(drizzle_all(exposures, grid, weight_type="exptime"),
                                grid.array_shape)
    _, _, _, variances = serial_reference(exposures, grid.array_shape, weight_type="exptime")
    for name in NAMES:
        np.testing.assert_array_equal(np.isnan(getattr(result, name)), np.isnan(variances[name]))
        np.testing.assert_allclose(getattr(result, name), variances[name], rtol=2e-6)


def test_partials_round_trip_through_files(tmp_path, scene):
    _, grid, pixmaps = scene
    partials = drizzle_all(random_exposures(pixmaps), grid)
    paths = []
    for k, partial in enumerate(partials):
        paths.append(tmp_path / f"exposure{k}.partial")  # the name is kept as given
        with R.PartialWriter(paths[-1]) as writer:
            writer.finish(partial)
    assert all(p.exists() for p in paths)
    from_files = R.combine_partials(iter(paths), grid.array_shape)  # lazily, one at a time
    in_memory = R.combine_partials(partials, grid.array_shape)
    for name in ("sci", "wht", "con", "var_poisson", "var_rnoise", "var_flat", "err"):
        np.testing.assert_array_equal(getattr(from_files, name), getattr(in_memory, name))
    assert from_files.n_inputs == 3


def test_planes_streamed_to_the_file_equal_the_in_memory_partial(tmp_path, scene):
    """sink + consume (the flag job's way: each plane written as made, the variances handed
    over) write exactly the arrays the whole Partial written at once has."""
    _, grid, pixmaps = scene
    e = random_exposures(pixmaps)[0]
    whole = drizzle_all([e], grid)[0]
    with R.PartialWriter(tmp_path / "whole.npz") as writer:
        writer.finish(whole)
    handed_over = {name: v.copy() for name, v in e.variances.items()}
    with R.PartialWriter(tmp_path / "streamed.npz") as writer:
        streamed = R.drizzle_exposure(e.data, handed_over, e.weight, e.pixmap,
                                      grid.array_shape, weight_type="ivm", kernel="square",
                                      pixfrac=1.0, pixel_scale_ratio=1.0, exptime=e.exptime,
                                      sink=writer, consume=True)
        assert streamed.variance_sums == {} and streamed.data_sum.size == 0
        assert streamed.bbox == whole.bbox
        writer.finish(streamed)
    assert handed_over == {}
    with np.load(tmp_path / "whole.npz") as a, np.load(tmp_path / "streamed.npz") as b:
        assert sorted(a.files) == sorted(b.files)
        assert {f"{n}_wsum" for n in NAMES} <= set(b.files)
        for key in a.files:
            np.testing.assert_array_equal(a[key], b[key])


def test_a_failed_partial_write_leaves_no_file(tmp_path):
    with pytest.raises(RuntimeError), R.PartialWriter(tmp_path / "p.npz") as writer:
        writer.add("data_sum", np.zeros((4, 4), np.float32))
        raise RuntimeError("drizzle failed")
    assert list(tmp_path.iterdir()) == []


def test_var_rnoise_of_k_identical_exposures_is_sigma2_over_k(scene):
    _, grid, pixmaps = scene
    ones = np.ones((N, N), dtype=np.float32)
    sigma2 = 0.04
    exposures = [Exposure(ones, {"var_rnoise": sigma2 * ones}, ones / sigma2, p, 1.0)
                 for p in pixmaps]
    result = R.combine_partials(drizzle_all(exposures, grid), grid.array_shape)
    k = n_covering(result.con)
    assert set(np.unique(k)) == {0, 1, 2, 3}
    for n in (1, 2, 3):
        np.testing.assert_allclose(result.var_rnoise[k == n], sigma2 / n, rtol=1e-5)
    assert np.all(np.isnan(result.var_rnoise[k == 0])) and np.all(np.isnan(result.var_poisson))


@pytest.mark.parametrize(("weight_type", "ratio"), [("ivm", 1.0), ("exptime", 0.8)])
def test_variance_follows_the_reference_formula(nircam, weight_type, ratio):
    """var = sum(W_i^2 s_i^2) / (sum W_i)^2 / ratio^2 with W_i = 1/s_rnoise,i^2 or t_i;
    ERR = sqrt(sum of the three)."""
    _, grid, pixmaps = make_scene(nircam, pixel_scale_ratio=ratio)
    ones = np.ones((N, N), dtype=np.float32)
    rnoise, poisson, flat = [0.01, 0.02, 0.04], [0.3, 0.1, 0.2], [0.001, 0.003, 0.002]
    times = [100, 200, 400]
    exposures = []
    for p, r, q, f, t in zip(pixmaps, rnoise, poisson, flat, times, strict=True):
        weight = ones / r if weight_type == "ivm" else ones * t
        variances = {"var_rnoise": r * ones, "var_poisson": q * ones, "var_flat": f * ones}
        exposures.append(Exposure(ones, variances, weight, p, float(t)))
    result = R.combine_partials(drizzle_all(exposures, grid, weight_type=weight_type, ratio=ratio),
                                grid.array_shape)
    bits = result.con[0].view(np.uint32)
    for mask in range(1, 8):  # every combination of covering exposures
        where = bits == mask
        if not where.any():
            continue
        used = [i for i in range(3) if mask & (1 << i)]
        w = np.array([1 / rnoise[i] if weight_type == "ivm" else times[i] for i in used])
        total = 0.0
        for name, values in (("var_rnoise", rnoise), ("var_poisson", poisson), ("var_flat", flat)):
            sigma2 = np.array([values[i] for i in used])
            expected = np.sum(w**2 * sigma2) / np.sum(w) ** 2 / ratio**2
            np.testing.assert_allclose(getattr(result, name)[where], expected, rtol=2e-5)
            total += expected
        np.testing.assert_allclose(result.err[where], np.sqrt(total), rtol=2e-5)


def test_empty_output_pixels_are_fill_and_nan(scene):
    _, grid, pixmaps = scene
    partials = drizzle_all(random_exposures(pixmaps), grid)
    result = R.combine_partials(partials, grid.array_shape, fillval=0.0)
    empty = result.wht == 0
    assert empty.any() and not np.any(result.con[:, empty])
    assert np.all(result.sci[empty] == 0.0)
    for array in (result.var_rnoise, result.var_poisson, result.var_flat, result.err):
        assert np.all(np.isnan(array[empty])) and not np.any(np.isnan(array[~empty]))


def test_exposure_off_the_grid_contributes_nothing_but_keeps_its_context_slot(nircam, scene):
    wcs, _ = nircam
    _, grid, pixmaps = scene
    far = W.pixel_map(dithered(wcs, 60.0, 0.0), (N, N), grid, stepsize=1, order=1)
    exposures = random_exposures([pixmaps[0], far, pixmaps[1]])
    partials = drizzle_all(exposures, grid)
    assert partials[1].data_sum.size == 0
    result = R.combine_partials(partials, grid.array_shape)
    bits = result.con[0].view(np.uint32)
    assert np.any(bits & 1) and not np.any(bits & 2) and np.any(bits & 4)


def test_context_grows_past_32_inputs(scene):
    _, grid, pixmaps = scene
    ones = np.ones((N, N), dtype=np.float32)
    partial = drizzle_all([Exposure(ones, {}, ones, pixmaps[0], 1.0)], grid)[0]
    result = R.combine_partials([partial] * 33, grid.array_shape)
    assert result.con.shape == (2, *grid.array_shape)
    covered = result.wht > 0
    assert np.all(result.con[0][covered] == -1)  # 32 bits set (int32)
    assert np.all(result.con[1][covered] == 1)


# ------------------------------------------------------------------ DQ


def shifted_pixmap(dx: float, dy: float, n: int = 16) -> np.ndarray:
    """The pixel map of an n x n exposure moved by (dx, dy) output pixels."""
    y, x = np.indices((n, n), dtype=np.float64)
    return np.dstack([x + dx, y + dy])


def test_propagated_dq_is_the_or_of_contributing_input_pixels_and_no_data_elsewhere(tmp_path):
    """Two 16² exposures on a 40² grid (square kernel, pixfrac 1), A moved by (10, 5) output
    pixels, B by (10.5, 5). A's JUMP_DET (4) at input (y, x) = (2, 3) lands on output (7, 13)
    alone (its drop is that pixel); B's JUMP_DET|HOT (4|2048) at (2, 3) on (7, 13) and
    (7, 14) (half of its drop each); (7, 13) is their OR, 2052 (a sum would be 2056). B's
    DROPOUT (8) on a zero-weight pixel contributes nothing. Every other covered pixel is 0 and
    every pixel without weight exactly DO_NOT_USE|NON_SCIENCE (513). The same through saved
    contributions and in a window (a tile); none without propagate_dq."""
    ones = np.ones((16, 16), dtype=np.float32)
    dq_a = np.zeros((16, 16), dtype=np.uint32)
    dq_a[2, 3] = 4
    dq_b = np.zeros((16, 16), dtype=np.uint32)
    dq_b[2, 3] = 4 | 2048
    dq_b[9, 9] = 8
    weight_b = ones.copy()
    weight_b[9, 9] = 0.0
    args = {"weight_type": "exptime", "kernel": "square", "pixfrac": 1.0,
            "pixel_scale_ratio": 1.0}
    inputs = [(ones, shifted_pixmap(10, 5), dq_a), (weight_b, shifted_pixmap(10.5, 5), dq_b)]
    partials = [R.drizzle_exposure(ones, {}, w, pixmap, (40, 40), dq=dq, **args)
                for w, pixmap, dq in inputs]
    result = R.combine_partials(partials, (40, 40), propagate_dq=True)
    assert result.dq.dtype == np.uint32 and R.NO_DATA_DQ == 513
    expected = np.where(result.wht == 0, 513, 0).astype(np.uint32)
    expected[7, 13], expected[7, 14] = 4 | 2048, 4 | 2048
    np.testing.assert_array_equal(result.dq, expected)
    assert (result.wht == 0).sum() == 40 * 40 - 16 * 17  # B reaches one column past A

    paths = []
    for k, (w, pixmap, dq) in enumerate(inputs):
        paths.append(tmp_path / f"{k}.npz")
        with R.PartialWriter(paths[-1]) as writer:
            writer.finish(R.drizzle_exposure(ones, {}, w, pixmap, (40, 40), dq=dq, sink=writer,
                                             **args))
    np.testing.assert_array_equal(R.combine_partials(paths, (40, 40), propagate_dq=True).dq,
                                  expected)
    window = R.combine_partials(paths, (40, 40), window=(4, 20, 12, 30), propagate_dq=True)
    np.testing.assert_array_equal(window.dq, expected[4:20, 12:30])

    plain = R.drizzle_exposure(ones, {}, ones, shifted_pixmap(10, 5), (40, 40), **args)
    assert plain.dq is None and R.combine_partials([plain], (40, 40)).dq is None


# ------------------------------------------------------------------ blot


def test_blot_samples_the_mosaic_on_the_exposure_grid(scene):
    _, grid, pixmaps = scene
    ny, nx = grid.array_shape
    yy, xx = np.mgrid[0:ny, 0:nx]
    mosaic = (0.5 * xx + 0.25 * yy).astype(np.float32)  # bilinear interpolation is exact on it
    pixmap = pixmaps[1].copy()
    pixmap[:3] = np.nan  # off the bounding box
    blotted = R.blot(mosaic, pixmap, (N, N))
    assert blotted.dtype == np.float32 and blotted.shape == (N, N)
    assert np.all(np.isnan(blotted[:3]))
    inside = np.isfinite(pixmap[..., 0])
    inside &= (pixmap[..., 0] > 1) & (pixmap[..., 0] < nx - 2)
    inside &= (pixmap[..., 1] > 1) & (pixmap[..., 1] < ny - 2)
    expected = 0.5 * pixmap[..., 0] + 0.25 * pixmap[..., 1]
    np.testing.assert_allclose(blotted[inside], expected[inside], rtol=1e-5)


def test_a_damaged_partial_is_one_input_error(tmp_path, scene):
    """A truncated contribution file stops the join with InputFileError naming the file."""
    _, grid, pixmaps = scene
    path = tmp_path / "c.npz"
    with R.PartialWriter(path) as writer:
        writer.finish(drizzle_all(random_exposures(pixmaps)[:1], grid)[0])
    path.write_bytes(path.read_bytes()[:5000])
    with pytest.raises(InputFileError, match="c.npz: not a drizzle partial"):
        R.combine_partials([path], grid.array_shape)
