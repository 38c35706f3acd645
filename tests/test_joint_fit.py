"""The joint fit of rigid corrections (image3.joint_fit) on a known mosaic: 3 x 3 pointings of
100" with 10" overlaps, 6 common stars per overlap, each pointing displaced by up to 0.3" and
rotated by up to 0.02 deg; positions measured with 2 mas noise (a bright star's centroid on
NIRCam short-wave)."""

import math

import numpy as np
import pytest

from image3.joint_fit import Correction, PairMatches, connected_bodies, solve_corrections

NOISE_ARCSEC = 0.002


def _area(group: str) -> np.ndarray:
    """A grid of points over a pointing (100" square centred 90" from its neighbours)."""
    i, j = int(group[1]), int(group[2])
    u = np.linspace(-50.0, 50.0, 11)
    x, y = np.meshgrid(90.0 * j + u, 90.0 * i + u)
    return np.column_stack([x.ravel(), y.ravel()])


def _rms_mas(correction: Correction, error: Correction, xy: np.ndarray) -> float:
    moved = correction.apply(_inverse(error).apply(xy))
    return 1000.0 * float(np.sqrt(np.mean(np.sum((moved - xy) ** 2, axis=1))))


def _mosaic(seed=0, stars_per_overlap=6, outliers=0, noise=NOISE_ARCSEC):
    """The pairs a 3 x 3 mosaic gives, measured through each group's error (the inverse of
    the correction it needs); returns (groups, pairs, true errors)."""
    rng = np.random.default_rng(seed)
    groups = [f"p{i}{j}" for i in range(3) for j in range(3)]
    errors = {g: Correction((float(rng.uniform(-0.3, 0.3)), float(rng.uniform(-0.3, 0.3))),
                            math.radians(rng.uniform(-0.02, 0.02))) for g in groups}
    errors["p00"] = Correction()  # the reference pointing is right
    pairs = []
    for i in range(3):
        for j in range(3):
            for di, dj in ((0, 1), (1, 0)):
                if i + di > 2 or j + dj > 2:
                    continue
                a, b = f"p{i}{j}", f"p{i + di}{j + dj}"
                # the overlap strip between the two pointings (centres 90" apart)
                centre = np.array([90.0 * (j + dj / 2), 90.0 * (i + di / 2)])
                half = np.array([5.0, 45.0]) if dj else np.array([45.0, 5.0])
                true = centre + rng.uniform(-1, 1, (stars_per_overlap, 2)) * half
                seen = [_inverse(errors[g]).apply(true)
                        + rng.normal(0, noise, true.shape) for g in (a, b)]
                if outliers:
                    seen[1][:outliers] += 1.0  # mismatched sources
                pairs.append(PairMatches(a, b, seen[0], seen[1]))
    return groups, pairs, errors


def _inverse(c: Correction) -> Correction:
    shift = -(Correction((0.0, 0.0), -c.theta).matrix @ np.asarray(c.shift))
    return Correction((float(shift[0]), float(shift[1])), -c.theta)


@pytest.mark.parametrize("seed", range(3))
def test_without_noise_every_pointing_is_recovered_exactly(seed):
    """Exact matches: each fitted correction undoes its pointing's error to 1e-6 mas over
    the pointing (the linearised fit, iterated, is exact)."""
    groups, pairs, errors = _mosaic(seed, noise=0.0)
    solution = solve_corrections(pairs, groups)
    assert solution.fitted == set(groups) - {"p00"}
    for g in groups:
        assert _rms_mas(solution.corrections[g], errors[g], _area(g)) < 1e-6, g


def test_with_2_mas_noise_the_error_grows_as_a_random_walk_from_the_reference():
    """2 mas per star, 6 stars per overlap (strips of 10" x 90"): a neighbour of the
    reference is right to 2.5 mas RMS over its area, the farthest pointings to 7 mas (each
    overlap ties the rotation to ~4e-5 rad); the fit's residual RMS is that of the noise."""
    groups, pairs, errors = _mosaic(seed=0)
    solution = solve_corrections(pairs, groups)
    rms = {g: _rms_mas(solution.corrections[g], errors[g], _area(g)) for g in groups}
    assert rms["p01"] < 2.5 and rms["p10"] < 2.5
    assert max(rms.values()) < 7.0
    for g in groups:
        # a match's offset is the difference of two 2-D errors: RMS length 2 x noise
        assert solution.rms_arcsec[g] == pytest.approx(2 * NOISE_ARCSEC, rel=0.35)


def test_mismatched_sources_are_clipped():
    """One wrong match (1" off) in each overlap of 8, without noise: clipped, and every
    pointing exact to 1e-6 mas."""
    groups, pairs, errors = _mosaic(seed=1, stars_per_overlap=8, outliers=1, noise=0.0)
    solution = solve_corrections(pairs, groups, nclip=3, sigma=3.0)
    for g in groups:
        assert _rms_mas(solution.corrections[g], errors[g], _area(g)) < 1e-6, g
    assert solution.n_fit["p11"] == 4 * 7  # four overlaps of 8, one mismatch each


def test_fixed_and_shared_corrections():
    """A group fixed at its true correction anchors the rest (the reference group is then
    fitted too; exact without noise); two groups sharing one body get one correction."""
    groups, pairs, errors = _mosaic(seed=2, noise=0.0)
    errors_fixed = {"p11": errors["p11"]}
    solution = solve_corrections(pairs, groups, fixed=errors_fixed)
    assert "p11" not in solution.fitted and "p00" in solution.fitted
    for g in groups:
        assert _rms_mas(solution.corrections[g], errors[g], _area(g)) < 1e-6, g
    shared = solve_corrections(pairs, groups, shared={"p01": "row0", "p02": "row0"})
    assert shared.corrections["p01"] == shared.corrections["p02"]


def test_a_pointing_without_overlap_keeps_its_wcs():
    groups, pairs, _ = _mosaic(seed=3)
    kept = [p for p in pairs if "p22" not in (p.a, p.b)]
    solution = solve_corrections(kept, groups)
    assert "p22" not in solution.fitted
    assert solution.corrections["p22"] == Correction()
    assert connected_bodies(kept, {g: g for g in groups}, {"p00"}) == set(groups) - {"p22"}


@pytest.mark.parametrize("theta_deg", [0.0, 0.05])
def test_shift_only_fit_leaves_rotation_zero(theta_deg):
    groups = ["a", "b"]
    rng = np.random.default_rng(4)
    xy = rng.uniform(0, 100, (10, 2))
    error = Correction((0.2, -0.1), math.radians(theta_deg))
    pairs = [PairMatches("a", "b", xy, _inverse(error).apply(xy))]
    solution = solve_corrections(pairs, groups, rotation=False)
    assert solution.corrections["b"].theta == 0.0
    if theta_deg == 0.0:
        assert solution.corrections["b"].shift == pytest.approx((0.2, -0.1), abs=1e-9)
