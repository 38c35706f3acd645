"""QA plot functions (image3.qa) on small made-up arrays and tables: each PNG has the figure's
size in pixels and shows what it was given (one outline per member, one arrow per matched star,
one bar per member)."""

import numpy as np
import pytest
from astropy.table import Table
from matplotlib.collections import PathCollection
from matplotlib.image import imread
from matplotlib.patches import Polygon
from matplotlib.quiver import Quiver

from image3 import qa
from image3.tweakreg import RESIDUAL_COLUMNS

MEMBERS = ["jw99999001001_02101_00001_nrcb1", "jw99999001001_02101_00001_nrcb2",
           "jw99999001001_02101_00002_nrcb1"]
GROUPS = {m: m.rsplit("_", 1)[0] for m in MEMBERS}


def saved(fig, kind, tmp_path):
    """Save ``fig``; check the PNG is FIGURE_INCHES × DPI pixels; return its pixel array."""
    path = tmp_path / f"{kind}.png"
    qa.save_figure(fig, path)
    pixels = imread(path)
    width, height = qa.FIGURE_INCHES[kind]
    assert pixels.shape[:2] == (round(height * qa.DPI), round(width * qa.DPI))
    return pixels


def squares(n=3, size=40.0):
    """n overlapping square outlines (display positions), one per member."""
    return {m: np.array([[0, 0], [size, 0], [size, size], [0, size]]) + 5.0 * i
            for i, m in enumerate(MEMBERS[:n])}


def test_block_mean_reads_bands_and_averages_finite_pixels():
    """Block means of finite values; a partial edge block averages what it has; an all-NaN
    block is NaN; rows are asked for in bands (never the whole image at once)."""
    image = np.arange(7 * 5, dtype=float).reshape(7, 5)
    image[0, 0] = np.nan
    image[4:6, 4] = np.nan
    bands = []

    def read_rows(y0, y1):
        bands.append((y0, y1))
        return image[y0:y1]

    out = qa.block_mean(read_rows, image.shape, 2)
    assert out.shape == (4, 3)
    assert out[0, 0] == pytest.approx(np.mean([1, 5, 6]))
    assert out[3, 1] == pytest.approx(np.mean([32, 33]))
    assert np.isnan(out[2, 2])
    assert out[1, 2] == pytest.approx(np.mean([14, 19]))
    assert bands == [(0, 7)]  # 64-row bands: one band for a small image
    big = qa.block_mean(lambda y0, y1: np.ones((y1 - y0, 10)), (300, 10), 4)
    assert big.shape == (75, 3) and np.all(big == 1)


def test_display_geometry():
    assert qa.display_factor((4096, 2048)) == 4 and qa.display_factor((100, 50)) == 1
    x, y = qa.to_display([0.0, 3.0, 1.5], [0.0, 7.0, 1.5], 4)
    assert np.allclose(x, [-0.375, 0.375, 0.0]) and np.allclose(y, [-0.375, 1.375, 0.0])
    assert qa.short_names(MEMBERS) == ["00001_nrcb1", "00001_nrcb2", "00002_nrcb1"]
    assert qa.short_names(["solo"]) == ["solo"]


def test_polygons_to_display_use_the_given_wcs():
    polygons = {"a": np.array([[10.0, 1.0], [10.1, 1.0], [10.1, 1.1]])}
    out = qa.polygons_to_display(polygons, lambda ra, dec: (ra * 100, dec * 100), 2)
    assert np.allclose(out["a"], [[499.75, 49.75], [504.75, 49.75], [504.75, 54.75]])


def test_mosaic_draws_one_outline_per_member(tmp_path):
    fig = qa.new_figure("mosaic")
    ax = qa.plot_mosaic(fig, np.random.default_rng(1).normal(size=(60, 80)), squares(),
                        GROUPS)
    outlines = [p for p in ax.patches if isinstance(p, Polygon)]
    assert len(outlines) == len(MEMBERS)
    # members of one exposure share its colour: 2 colours, 2 legend entries
    assert len({p.get_edgecolor() for p in outlines}) == 2
    assert len(ax.get_legend().get_texts()) == 2
    saved(fig, "mosaic", tmp_path)


def _residuals(n=40, seed=2):
    rng = np.random.default_rng(seed)
    rows = [("relative", "g2", "m2", *rng.uniform(-10, 10, 2), *rng.normal(0, 0.004, 2))
            for _ in range(n)]
    table = Table(rows=rows, names=RESIDUAL_COLUMNS,
                  dtype=(str, str, str, float, float, float, float))
    table["clipped"] = np.zeros(n, dtype=bool)
    table["clipped"][0] = True
    return table


def test_tweakreg_draws_every_matched_star_and_every_group(tmp_path):
    report = Table({"stage": ["relative"] * 3, "group_id": ["g1", "g2", "g3"],
                    "status": ["REFERENCE", "SUCCESS", "FAILED: not enough matches"],
                    "applied": [False, True, False], "rms_arcsec": [np.nan, 0.004, np.nan],
                    "shift_x_arcsec": [np.nan, 0.1, np.nan],
                    "shift_y_arcsec": [np.nan, -0.05, np.nan],
                    "rotation_deg": [np.nan, 0.01, np.nan]})
    fig = qa.new_figure("tweakreg")
    ax_res, ax_shift, ax_rot = qa.plot_tweakreg(fig, report, _residuals())
    quiver = next(c for c in ax_res.collections if isinstance(c, Quiver))
    assert quiver.N == 40
    assert "1 clipped" in ax_res.get_title(loc="left")
    assert len(ax_rot.patches) == 3  # one rotation bar per group fit
    assert [t.get_text() for t in ax_rot.texts] == ["REFERENCE", "RMS 4.0 mas", "FAILED"]
    saved(fig, "tweakreg", tmp_path)
    # an empty residual table and no applied fit still make the figure
    fig = qa.new_figure("tweakreg")
    qa.plot_tweakreg(fig, report[:1], _residuals()[:0])
    saved(fig, "tweakreg", tmp_path)


def test_sky_before_after_and_its_plot(tmp_path):
    stats = {m: {"group": GROUPS[m], "local": {"sky": 0.3 + 0.01 * i}}
             for i, m in enumerate(MEMBERS)}
    stats[MEMBERS[2]]["local"]["sky"] = None
    records = {m: {"level": 0.01 * i, "method": "match", "status": "COMPLETE"}
               for i, m in enumerate(MEMBERS)}
    table = qa.sky_before_after(stats, records)
    assert list(table["member"]) == MEMBERS
    assert np.allclose(table["after"][:2], [0.30, 0.30]) and np.isnan(table["after"][2])
    fig = qa.new_figure("skymatch")
    ax = qa.plot_sky_levels(fig, table)
    assert len(ax.patches) == 2 * len(MEMBERS)  # a before and an after bar per member
    saved(fig, "skymatch", tmp_path)


def test_outlier_positions_are_the_newly_flagged_pixels():
    """OUTLIER (16) in the _crf where the _cal lacked DO_NOT_USE (1); pixels mapped through
    both WCSs."""
    cal = np.zeros((5, 6), dtype=np.uint32)
    crf = cal.copy()
    crf[1, 2] = crf[3, 4] = 16 | 1
    cal[3, 4] = 1  # already unusable: not new
    crf[0, 5] = 1  # DO_NOT_USE without OUTLIER (e.g. a NaN): not an outlier
    x, y = qa.outlier_positions(cal, crf, lambda x, y: (x + 100, y + 200),
                                lambda ra, dec: (ra * 2, dec * 2))
    assert list(x) == [204.0] and list(y) == [402.0]
    x, y = qa.outlier_positions(cal, cal, None, None)
    assert x.size == y.size == 0


def test_outliers_bar_per_member_and_points_on_the_map(tmp_path):
    counts = {m: n for m, n in zip(MEMBERS, (5, 0, 12))}
    rng = np.random.default_rng(3)
    positions = {m: tuple(rng.uniform(0, 50, (2, n))) for m, n in counts.items()}
    fig = qa.new_figure("outliers")
    ax_bar, ax_map = qa.plot_outliers(fig, counts, positions, rng.normal(size=(50, 60)),
                                      squares(), GROUPS)
    assert [p.get_height() for p in ax_bar.patches] == [5, 0, 12]
    points = [c for c in ax_map.collections if isinstance(c, PathCollection)]
    assert sum(len(c.get_offsets()) for c in points) == 17
    assert len([p for p in ax_map.patches if isinstance(p, Polygon)]) == len(MEMBERS)
    saved(fig, "outliers", tmp_path)


def test_catalog_quantities_and_plot(tmp_path):
    catalog = Table({"label": [1, 2, 3], "xcentroid": [10.0, 20.0, 30.0],
                     "ycentroid": [5.0, 15.0, 25.0], "aper_total_abmag": [22.0, 24.5, np.nan],
                     "CI_70_30": [3.0, 4.5, 3.1], "is_extended": [False, True, False]})
    found = qa.catalog_quantities(catalog, (30, 50, 70))
    assert found["concentration_name"] == "CI_70_30"
    assert list(found["extended"]) == [False, True, False]
    fig = qa.new_figure("catalog")
    ax_map, ax_hist, ax_ci = qa.plot_catalog(
        fig, np.zeros((40, 40)), found["x"], found["y"], found["magnitude"],
        found["concentration"], found["extended"])
    assert sum(len(c.get_offsets()) for c in ax_map.collections
               if isinstance(c, PathCollection)) == 3
    saved(fig, "catalog", tmp_path)
    # a catalogue without sources (the workflow writes a `label` column only)
    empty = qa.catalog_quantities(Table({"label": np.zeros(0, dtype=int)}))
    assert all(len(empty[k]) == 0 for k in ("x", "y", "magnitude", "concentration"))
    fig = qa.new_figure("catalog")
    qa.plot_catalog(fig, np.zeros((10, 10)), empty["x"], empty["y"], empty["magnitude"],
                    empty["concentration"], empty["extended"])
    saved(fig, "catalog", tmp_path)
