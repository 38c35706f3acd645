"""Tests of image3.skymatch: per-member sky statistics (overall, and offsets from partners by
registered pixel differences) and the solve.

The scene: dithered copies of a synthetic NRCB1 gwcs (SIAF distortion) (the pointing moved by
perturbing the RotationSequence3D angles of its v2v3 -> world part, :func:`dithers.moved_wcs`),
seen through 512 x 512 subarrays, with unit Gaussian noise, compact sources at fixed sky
positions and known per-exposure sky levels.
What the reference's 'mode' predicts for an image is the peak of its pixel-value distribution:
the noise-free image's values convolved with the noise (:func:`distribution_peak`).
Relative levels come from registered differences, which the sources cancel from, so they are
the injected sky offsets. Sky levels must come out within 1 % of the per-pixel noise sigma. A
512 x 512 'mode' is itself good to 0.45 % sigma rms, so where one such value decides alone (an
absolute 512^2 level, a single pair) the check is against 3 x its rms, and absolute levels are
also checked on full 2048 x 2048 frames. A nebula filling the overlaps (20 sigma, 5" wide)
must not move the relative levels.
"""

import json
import logging
from dataclasses import dataclass

import numpy as np
import pytest
from scipy import stats

from dithers import moved_wcs
from image3.config import schema_defaults
from image3.asn import pair_partners
from image3.datamodel import SkyRecord
from image3.errors import ConfigError
from image3.footprints import overlap_mask, sky_footprint
from image3.parameters import SkySolve, SkyStatistics
from image3.skymatch import good_pixels, member_sky_stats, solve_sky, usable_pixels

#: The sky statistics' parameters: the workflow's defaults (the schema's).
STATISTICS = SkyStatistics.from_config(schema_defaults()["skymatch"])


def solve(**changes) -> SkySolve:
    """The solve's parameters: the schema's defaults with ``changes``."""
    return SkySolve.from_config({**schema_defaults()["skymatch"], **changes})


SIGMA = 1.0  # per-pixel noise (data units)
TOLERANCE = 0.01 * SIGMA
SIZE = 512
BASE_SKY = 10.0
PSF_SIGMA_PIX = 1.2

# member: (group, pointing move in detector pixels (dx, dy), roll change (deg),
#          subarray origin on the 2048^2 detector (x, y), sky offset above BASE_SKY)
EXPOSURES = {
    "a": ("A", (0, 0), 0.0, (768, 768), 0.0),
    "b": ("B", (60, 40), 0.0, (768, 768), 3.0),
    "c": ("C", (-50, 70), 2.0, (768, 768), 5.5),
    "d": ("D", (30, -80), 0.0, (768, 768), 1.7),
    # one exposure, two detectors side by side: one group, one sky level
    "g1": ("G", (90, 20), 0.0, (512, 768), 2.2),
    "g2": ("G", (90, 20), 0.0, (1024, 768), 2.2),
    # far from everything
    "e": ("E", (4000, 0), 0.0, (768, 768), 6.0),
    # a pair overlapping each other only
    "k": ("K", (-4000, 0), 0.0, (768, 768), 4.0),
    "l": ("L", (-3950, 60), 0.0, (768, 768), 1.0),
    # overlapping the main set, every pixel DO_NOT_USE
    "f": ("F", (20, 20), 0.0, (768, 768), 0.0),
}
ALL_GROUPS = tuple(dict.fromkeys(spec[0] for spec in EXPOSURES.values()))
MAIN = ("A", "B", "C", "D", "G")
MASKED = {"f"}


def render(wcs, sources, size):
    """Noise-free surface brightness of Gaussian sources (ra, dec, peak) on a size^2 image."""
    image = np.zeros((size, size))
    x, y = wcs.invert(sources[:, 0], sources[:, 1], with_bounding_box=False)
    half = int(6 * PSF_SIGMA_PIX) + 1
    for xc, yc, peak in zip(x, y, sources[:, 2], strict=True):
        x0, x1 = max(0, int(xc) - half), min(size, int(xc) + half + 1)
        y0, y1 = max(0, int(yc) - half), min(size, int(yc) + half + 1)
        if x0 >= x1 or y0 >= y1:
            continue
        yy, xx = np.mgrid[y0:y1, x0:x1]
        image[y0:y1, x0:x1] += peak * np.exp(-0.5 * ((xx - xc) ** 2 + (yy - yc) ** 2)
                                            / PSF_SIGMA_PIX**2)
    return image


def distribution_peak(noiseless, sigma=SIGMA):
    """Peak of the distribution of ``noiseless + N(0, sigma^2)`` values (exact to 5e-4 sigma)."""
    sky = float(np.median(noiseless))
    width = 0.005 * sigma  # the pure-sky value sits on a bin centre
    counts, edges = np.histogram(noiseless - sky, bins=4000,
                                 range=(-0.5 * width, 3999.5 * width))
    centres = 0.5 * (edges[1:] + edges[:-1])
    used = counts > 0
    grid = np.arange(-0.3, 0.3, 0.0005) * sigma
    density = (counts[used] * stats.norm.pdf(grid[:, None], centres[used], sigma)).sum(axis=1)
    return sky + grid[np.argmax(density)]


@dataclass
class Scene:
    exposures: dict
    wcs: dict
    peak: dict  # predicted 'mode' of each member
    offset: dict  # true sky above BASE_SKY, per group
    stats: dict
    footprints: dict  # per member

    def pair(self, a, b):
        """The offset sky_a - sky_b as measured (by a's job or b's) and its uncertainty."""
        if b in self.stats[a]["pairs"]:
            entry = self.stats[a]["pairs"][b]
            return entry["offset"], entry["uncertainty"]
        entry = self.stats[b]["pairs"][a]
        return -entry["offset"], entry["uncertainty"]

    def groups(self, names):
        return {g: [m for m, spec in self.exposures.items() if spec[0] == g] for g in names}


def nebula(wcs, size, peak, width_arcsec, centre):
    """A round Gaussian cloud of ``peak`` and FWHM-free width ``width_arcsec`` (its sigma)
    about ``centre`` (ra, dec), on a size^2 image."""
    yy, xx = np.mgrid[0:size, 0:size]
    ra, dec = wcs(xx, yy)
    dx = (ra - centre[0]) * np.cos(np.deg2rad(centre[1])) * 3600.0
    dy = (dec - centre[1]) * 3600.0
    return peak * np.exp(-0.5 * (dx ** 2 + dy ** 2) / width_arcsec ** 2)


def build_scene(base, exposures, size, sources_per_pointing, seed, cloud=0.0):
    """Render, add noise and measure every member (offsets from partners included) of
    ``exposures``; ``cloud``: the peak of a nebula 5" wide centred on member a."""
    rng = np.random.default_rng(seed)
    wcs = {m: moved_wcs(base, move, roll, origin, size)
           for m, (_, move, roll, origin, _) in exposures.items()}
    footprints = {m: sky_footprint(wcs[m], (size, size)) for m in exposures}
    # sources over each cluster of pointings (the main one, the far pair), peaks 3-60 sigma
    sources = []
    for anchor in [m for m in ("a", "k") if m in exposures]:
        near = [f for f in footprints.values()
                if np.abs(f.mean(axis=0) - footprints[anchor].mean(axis=0)).max() < 0.05]
        low, high = np.min(near, axis=(0, 1)), np.max(near, axis=(0, 1))
        n = sources_per_pointing
        sources.append(np.column_stack([rng.uniform(low[0], high[0], n),
                                        rng.uniform(low[1], high[1], n),
                                        SIGMA * np.exp(rng.uniform(np.log(3), np.log(60), n))]))
    sources = np.concatenate(sources)
    centre = wcs["a"](size / 2, size / 2)
    data, dq, peak, offset = {}, {}, {}, {}
    for m, (group, _, _, _, sky_offset) in exposures.items():
        noiseless = BASE_SKY + sky_offset + render(wcs[m], sources, size)
        if cloud:
            noiseless += nebula(wcs[m], size, cloud, 5.0, centre)
        data[m] = (noiseless + rng.normal(0.0, SIGMA, noiseless.shape)).astype(np.float32)
        dq[m] = np.full(noiseless.shape, 1 if m in MASKED else 0, dtype=np.uint32)
        peak[m] = distribution_peak(noiseless)
        offset[group] = sky_offset
    names = list(exposures)
    member_stats = {
        m: member_sky_stats(data[m], dq[m], wcs[m], params=STATISTICS,
                            partners=[(p, data[p], dq[p], wcs[p]) for p in pair_partners(names, m)])
        for m in exposures
    }
    return Scene(exposures, wcs, peak, offset, member_stats, footprints)


@pytest.fixture(scope="module")
def scene(nircam):
    """EXPOSURES on 512 x 512 subarrays."""
    return build_scene(nircam[0], EXPOSURES, SIZE, 60, seed=20260101)


@pytest.fixture(scope="module")
def full_frame(nircam):
    """Three dithered full 2048 x 2048 NRCB1 exposures: a single 512 x 512 image's 'mode' is
    only good to 0.45 % sigma rms, so absolute levels are checked where that is 0.12 %."""
    exposures = {
        "a": ("A", (0, 0), 0.0, (0, 0), 0.0),
        "b": ("B", (300, 200), 0.0, (0, 0), 3.0),
        "c": ("C", (-250, 350), 2.0, (0, 0), 5.5),
    }
    return build_scene(nircam[0], exposures, 2048, 960, seed=7)


@pytest.fixture(scope="module")
def nebulous(nircam):
    """The main set under a nebula of 20 sigma peak, 5" (160 px) wide, across the overlaps."""
    exposures = {m: EXPOSURES[m] for m in ("a", "b", "c", "d", "g1", "g2")}
    return build_scene(nircam[0], exposures, SIZE, 60, seed=11, cloud=20.0 * SIGMA)


# --------------------------------------------------------------------------------------------
# Solve


def test_match_recovers_relative_sky_within_one_percent_sigma(scene):
    groups = scene.groups(MAIN)
    records = solve_sky(scene.stats, groups, solve(skymethod="match"))
    lowest = min(scene.offset[g] for g in MAIN)
    for group, members in groups.items():
        for m in members:
            assert records[m].status == "COMPLETE"
            assert records[m].method == "match" and records[m].subtracted is False
            assert records[m].level == pytest.approx(scene.offset[group] - lowest, abs=TOLERANCE)
    # one exposure, one level
    assert records["g1"].level == records["g2"].level


def test_match_up_anchors_the_highest_sky_at_zero(scene):
    params = solve(skymethod="match", match_down=False)
    records = solve_sky(scene.stats, scene.groups(MAIN), params)
    highest = max(scene.offset[g] for g in MAIN)
    assert max(r.level for r in records.values()) == 0.0
    for m, record in records.items():
        assert record.level == pytest.approx(scene.offset[EXPOSURES[m][0]] - highest, abs=TOLERANCE)


def test_global_plus_match_keeps_matched_levels_and_adds_the_reference_anchor(scene):
    """Relative levels as 'match'; the anchor is the reference's min over groups of
    (group sky - delta), where a group's sky is its lowest member's local sky."""
    groups = scene.groups(MAIN)
    matched = solve_sky(scene.stats, groups, solve(skymethod="match"))
    records = solve_sky(scene.stats, groups, solve(skymethod="global+match", subtract=True))
    local = {g: min(scene.stats[m]["local"]["sky"] for m in groups[g]) for g in MAIN}
    anchor = min(local[g] - matched[groups[g][0]].level for g in MAIN)
    for m, record in records.items():
        assert record.subtracted is True and record.status == "COMPLETE"
        assert record.level == pytest.approx(matched[m].level + anchor, abs=1e-9)


def test_absolute_levels_are_the_distribution_peaks_full_frame(full_frame):
    """2048^2: 'local', 'global' and 'global+match' levels within 1 % sigma of the peaks of
    the pixel-value distributions, 'match' within 1 % sigma of the injected differences."""
    scene = full_frame
    names = tuple(scene.offset)
    groups = scene.groups(names)
    peak = {g: scene.peak[groups[g][0]] for g in names}
    lowest = min(scene.offset.values())
    delta = {g: scene.offset[g] - lowest for g in names}
    solved = {method: solve_sky(scene.stats, groups, solve(skymethod=method))
              for method in ("local", "global", "match", "global+match")}
    anchor = min(peak[g] - delta[g] for g in names)
    for g in names:
        m = groups[g][0]
        assert solved["local"][m].level == pytest.approx(peak[g], abs=TOLERANCE)
        assert solved["global"][m].level == pytest.approx(min(peak.values()), abs=TOLERANCE)
        assert solved["match"][m].level == pytest.approx(delta[g], abs=TOLERANCE)
        assert solved["global+match"][m].level == pytest.approx(delta[g] + anchor, abs=TOLERANCE)


def test_local_gives_each_group_its_lowest_member_sky(scene):
    groups = scene.groups(MAIN)
    local = solve_sky(scene.stats, groups, solve(skymethod="local"))
    overall = solve_sky(scene.stats, groups, solve(skymethod="global"))
    lowest_member = min(scene.stats[m]["local"]["sky"] for m in ("g1", "g2"))
    assert local["g1"].level == local["g2"].level == lowest_member
    assert {r.level for r in overall.values()} == {min(r.level for r in local.values())}
    # each 512^2 level is within 3 x its 0.45 % sigma rms of its distribution peak
    for group, members in groups.items():
        predicted = min(scene.peak[m] for m in members)
        assert local[members[0]].level == pytest.approx(predicted, abs=3 * 0.0045 * SIGMA)


def test_disjoint_exposures_are_skipped_and_the_rest_matched(scene, caplog):
    groups = scene.groups(ALL_GROUPS)
    with caplog.at_level(logging.WARNING, logger="image3.skymatch"):
        records = solve_sky(scene.stats, groups, solve(skymethod="match"))
    for m in ("e", "f"):
        assert records[m] == SkyRecord(None, "match", False, "SKIPPED")
    text = caplog.text
    assert "no usable overlap with any other exposure for group(s) E, F" in text
    assert "no good pixel in f" in text
    assert "2 disconnected sets" in text and "[K, L]" in text
    # the main set is matched internally to 1 % sigma
    for a, b in (("a", "b"), ("a", "c"), ("d", "g2")):
        truth = scene.offset[EXPOSURES[a][0]] - scene.offset[EXPOSURES[b][0]]
        assert records[a].level - records[b].level == pytest.approx(truth, abs=TOLERANCE)
    # the far pair by its one equation: its measured offset, within 3 of its uncertainties
    k_minus_l, uncertainty = scene.pair("k", "l")
    assert records["k"].level - records["l"].level == pytest.approx(k_minus_l, abs=1e-9)
    assert k_minus_l == pytest.approx(scene.offset["K"] - scene.offset["L"], abs=3 * uncertainty)


def test_global_plus_match_gives_unmatched_exposures_the_global_level(scene, caplog):
    """As in the reference: a group in no pair enters 'global' with a zero delta."""
    groups = scene.groups(MAIN + ("E",))
    with caplog.at_level(logging.WARNING, logger="image3.skymatch"):
        records = solve_sky(scene.stats, groups, solve(skymethod="global+match"))
    assert "for group(s) E:" in caplog.text
    assert records["e"].status == "COMPLETE"
    assert records["e"].level == pytest.approx(min(r.level for r in records.values()), abs=1e-12)


def test_member_without_good_pixels_warns_and_gets_no_level(scene, caplog):
    stats = scene.stats["f"]
    assert stats["good_pixels"] == 0 and stats["local"] == {"sky": None, "npix": 0}
    with caplog.at_level(logging.WARNING, logger="image3.skymatch"):
        records = solve_sky(scene.stats, scene.groups(MAIN + ("F",)), solve(skymethod="local"))
    assert "no good pixel in f" in caplog.text
    assert records["f"] == SkyRecord(None, "local", False, "SKIPPED")
    assert all(records[m].level is not None for m in records if m != "f")


def test_member_without_good_pixels_shares_its_groups_level(scene, caplog):
    groups = {**scene.groups(("A", "B", "C", "D")), "G": ["g1", "g2", "f"]}
    with caplog.at_level(logging.WARNING, logger="image3.skymatch"):
        records = solve_sky(scene.stats, groups, solve(skymethod="match"))
    assert "no good pixel in f" in caplog.text
    assert records["f"] == records["g1"] == records["g2"]


def test_user_levels_come_from_the_skylist(scene, tmp_path):
    groups = scene.groups(("A", "B"))
    skylist = tmp_path / "sky.txt"
    skylist.write_text("# name level\na_cal.fits 1.5\nb_cal.fits -0.25\n")
    records = solve_sky({}, groups, solve(skymethod="user", skylist=str(skylist)))
    assert records == {"a": SkyRecord(1.5, "user", False), "b": SkyRecord(-0.25, "user", False)}
    skylist.write_text("a_cal.fits 1.5\n")
    with pytest.raises(ConfigError, match="1 entries for 2 exposures"):
        solve_sky({}, groups, solve(skymethod="user", skylist=str(skylist)))


# --------------------------------------------------------------------------------------------
# Per-member statistics


def test_member_stats_are_json_and_hold_each_overlapping_pair_once(scene):
    assert json.loads(json.dumps(scene.stats["a"])) == scene.stats["a"]
    measured = [frozenset((m, p)) for m, entry in scene.stats.items() for p in entry["pairs"]]
    assert len(measured) == len(set(measured))
    overlapping = {frozenset((m, p)) for m in EXPOSURES for p in EXPOSURES
                   if m < p and "f" not in (m, p)
                   and overlap_mask(scene.wcs[m], (SIZE, SIZE), scene.footprints[p]).any()}
    assert set(measured) == overlapping
    assert {"e", "f"}.isdisjoint(m for pair in measured for m in pair)
    assert frozenset(("k", "l")) in overlapping and frozenset(("a", "g2")) in overlapping


def test_pair_offsets_are_the_sky_offsets_within_their_uncertainties(scene):
    """sky_a - sky_b from the differences: within 3 uncertainties each, the uncertainties
    from 0.3 to 3 times the scatter (rms of error / uncertainty within 0.3 ... 3)."""
    z = []
    for m, entry in scene.stats.items():
        for p, pair in entry["pairs"].items():
            truth = scene.offset[EXPOSURES[m][0]] - scene.offset[EXPOSURES[p][0]]
            assert pair["offset"] == pytest.approx(truth, abs=3 * pair["uncertainty"])
            assert pair["npix"] >= 100
            z.append((pair["offset"] - truth) / pair["uncertainty"])
    assert 0.3 < np.sqrt(np.mean(np.square(z))) < 3


def test_a_nebula_across_the_overlaps_does_not_move_the_relative_levels(nebulous):
    """A 20 sigma cloud, 5" wide, over the overlaps: where each member's own mode in the
    overlap would follow the cloud, the differences cancel it."""
    scene = nebulous
    names = ("A", "B", "C", "D", "G")
    records = solve_sky(scene.stats, scene.groups(names), solve(skymethod="match"))
    lowest = min(scene.offset[g] for g in names)
    for m, record in records.items():
        assert record.level == pytest.approx(scene.offset[EXPOSURES[m][0]] - lowest, abs=TOLERANCE)


def test_usable_pixels_apply_the_value_limits():
    data = np.array([-1.0, 0.5, 2.0, np.nan], dtype=np.float32)
    params = SkyStatistics.from_config({**schema_defaults()["skymatch"], "lower": 0.0, "upper": 1.0})
    assert usable_pixels(data, None, params).tolist() == [0, 1, 0, 0]


def test_good_pixels_follow_dqbits():
    data = np.array([1.0, 1.0, 1.0, 1.0, np.nan], dtype=np.float32)
    dq = np.array([0, 1, 512, 2, 0], dtype=np.uint32)  # -, DO_NOT_USE, NON_SCIENCE, SATURATED
    assert good_pixels(data, dq, "~DO_NOT_USE+NON_SCIENCE").tolist() == [1, 0, 0, 1, 0]
    assert good_pixels(data, dq, 0).tolist() == [1, 0, 0, 0, 0]
    assert good_pixels(data, dq, None).tolist() == [1, 1, 1, 1, 0]


def test_a_pair_offset_that_disagrees_with_the_others_is_left_out(caplog):
    """Truth: four groups at levels 0, 1, 2, 3 measured in all six pairs to 0.001, one pair
    (b - d) off by 0.5: it is left out with a warning and the levels come out exact."""
    levels = {"a": 0.0, "b": 1.0, "c": 2.0, "d": 3.0}
    names = list(levels)
    stats = {m: {"good_pixels": 1, "local": {"sky": 10.0 + levels[m], "npix": 1}, "pairs": {}}
             for m in names}
    for m in names:
        for p in pair_partners(names, m):
            offset = levels[m] - levels[p] + (0.5 if {m, p} == {"b", "d"} else 0.0)
            stats[m]["pairs"][p] = {"offset": offset, "uncertainty": 0.001, "npix": 1000}
    groups = {m.upper(): [m] for m in names}
    with caplog.at_level(logging.WARNING, logger="image3.skymatch"):
        records = solve_sky(stats, groups, solve(skymethod="match"))
    assert "disagrees with the other overlaps" in caplog.text
    assert ("B" in caplog.text.split("disagrees")[0]) and ("D" in caplog.text.split("disagrees")[0])
    for m in names:
        assert records[m].level == pytest.approx(levels[m], abs=1e-9)


@pytest.mark.parametrize("method", ["match", "global+match", "global", "local"])
def test_kept_levels_stay_and_new_groups_are_solved_against_them(method, caplog):
    """Truth: groups a, b, c at 0.0, 1.0, 2.0 (local skies 10 + level), kept from an earlier
    run at those levels plus 5 (what an earlier 'global+match' anchor might have given); new
    groups d (3.0, overlapping b and c) and e (no overlap). Required: a, b, c keep their levels;
    d at 3.0 + 5 from its offsets ('match' kinds), the kept groups' lowest level ('global') or
    its own local sky ('local'); e SKIPPED with a warning for the 'match' kinds."""
    levels = {"a": 0.0, "b": 1.0, "c": 2.0, "d": 3.0, "e": 9.0}
    stats = {m: {"good_pixels": 1, "local": {"sky": 10.0 + v, "npix": 1}, "pairs": {}}
             for m, v in levels.items()}
    for m, p in (("a", "b"), ("b", "c"), ("d", "b"), ("c", "d")):
        stats[m]["pairs"][p] = {"offset": levels[m] - levels[p], "uncertainty": 0.001,
                                "npix": 1000}
    groups = {m.upper(): [m] for m in levels}
    kept = {g: levels[g.lower()] + 5.0 for g in "ABC"}
    with caplog.at_level(logging.WARNING, logger="image3.skymatch"):
        records = solve_sky(stats, groups, solve(skymethod=method), kept)
    if method != "local":
        for g, level in kept.items():
            assert records[g.lower()].level == level
    expected = {"match": 8.0, "global+match": 8.0, "global": 5.0, "local": 13.0}[method]
    assert records["d"].level == pytest.approx(expected, abs=1e-9)
    if method in ("match", "global+match"):
        assert records["e"].status == "SKIPPED" and "E" in caplog.text
