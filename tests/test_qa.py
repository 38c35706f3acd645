"""QA plot functions (image3.qa) on small made-up arrays and tables: each PNG has the figure's
size in pixels and shows what it was given (one outline per member, one arrow per matched star,
one bar per member). The jobs' functions (``qa.write_*``, one per rule of rules/qa.smk) on
small files written here, two 256² synthetic exposures for the ones that read exposures: each
writes a valid PNG (or the HTML table) and returns the summary the job logs, with the numbers
of what the test wrote."""

import json
import re
import shutil

import astropy.units as u
import numpy as np
import pytest
from astropy.coordinates import SkyCoord
from astropy.io import fits
from astropy.table import Table
from astropy.wcs import WCS
from matplotlib.collections import PathCollection
from matplotlib.image import imread
from matplotlib.patches import Polygon
from matplotlib.quiver import Quiver

from image3 import qa, synth
from image3.config import schema_defaults
from image3.datamodel import SkyRecord
from image3.dqflags import DO_NOT_USE, OUTLIER
from image3.grid import MemberFiles, write_footprints, write_output_grid
from image3.median import write_median
from image3.parameters import OutputGrid
from image3.skymatch import write_sky_stats
from image3.tweakreg import RESIDUAL_COLUMNS

MEMBERS = ["jw99999001001_02101_00001_nrcb1", "jw99999001001_02101_00001_nrcb2",
           "jw99999001001_02101_00002_nrcb1"]
GROUPS = {m: m.rsplit("_", 1)[0] for m in MEMBERS}


def png_pixels(path, kind):
    """Check ``path`` is a PNG of FIGURE_INCHES[kind] × DPI pixels, written atomically (no
    temporary file left beside it); return its pixel array."""
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not list(path.parent.glob(".tmp-*"))
    pixels = imread(path)
    width, height = qa.FIGURE_INCHES[kind]
    assert pixels.shape[:2] == (round(height * qa.DPI), round(width * qa.DPI))
    return pixels


def saved(fig, kind, tmp_path):
    """Save ``fig``; check the PNG (:func:`png_pixels`); return its pixel array."""
    path = tmp_path / f"{kind}.png"
    qa.save_figure(fig, path)
    return png_pixels(path, kind)


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


def _report():
    """A tweakreg report of three group fits, the second applied."""
    return Table({"stage": ["relative"] * 3, "group_id": ["g1", "g2", "g3"],
                  "status": ["REFERENCE", "SUCCESS", "FAILED: not enough matches"],
                  "applied": [False, True, False], "rms_arcsec": [np.nan, 0.004, np.nan],
                  "shift_x_arcsec": [np.nan, 0.1, np.nan],
                  "shift_y_arcsec": [np.nan, -0.05, np.nan],
                  "rotation_deg": [np.nan, 0.01, np.nan]})


def test_tweakreg_draws_every_matched_star_and_every_group(tmp_path):
    report = _report()
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


# --------------------------------------------------------------------------------------------
# The jobs: one qa.write_* call each, on files written here

GRID = OutputGrid.from_config(schema_defaults()["resample"])


@pytest.fixture(scope="module")
def exposures(tmp_path_factory):
    """Two 256² synthetic exposures (one group each), their footprints file and output grid."""
    folder = tmp_path_factory.mktemp("qa_exposures")
    asn = synth.make_association(folder, n=2, size=256, seed=23)
    cals = sorted(asn.parent.glob("*_cal.fits"))
    members = [MemberFiles(cal.name[:-len("_cal.fits")], f"g{k}", cal)
               for k, cal in enumerate(cals)]
    write_footprints(folder / "footprints.json", members, stepsize=None)
    grid = write_output_grid(folder / "grid.pkl", members, GRID, folder / "grid_shape.json")
    return members, folder / "footprints.json", folder / "grid.pkl", grid


def _write_i2d(path, shape, footprints):
    """A mosaic-like file: a SCI extension of ``shape`` (ny, nx) with a TAN header at
    0.031 arcsec/pixel centred on the footprints' vertices."""
    vertices = np.concatenate([e["polygon"] for e in json.loads(footprints.read_text()).values()])
    wcs = WCS(naxis=2)
    wcs.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    wcs.wcs.crval = vertices.mean(axis=0)
    wcs.wcs.crpix = [shape[1] / 2, shape[0] / 2]
    wcs.wcs.cdelt = [-0.031 / 3600, 0.031 / 3600]
    data = np.random.default_rng(4).normal(0.2, 0.01, shape).astype(np.float32)
    sci = fits.ImageHDU(data, wcs.to_header(), name="SCI")
    fits.HDUList([fits.PrimaryHDU(), sci]).writeto(path)


def test_mosaic_job_writes_the_figure_and_reports_its_scale(exposures, tmp_path):
    """A 600 × 1100 mosaic is shown at 1/2 scale (550 × 300) with both footprints."""
    _write_i2d(tmp_path / "m_i2d.fits", (600, 1100), exposures[1])
    out = tmp_path / "qa" / "mosaic.png"
    summary = qa.write_mosaic_figure(tmp_path / "m_i2d.fits", exposures[1], out)
    assert summary == (f"wrote {out}: mosaic shown at 1/2 scale (550 x 300) with 2 member "
                       "footprints")
    png_pixels(out, "mosaic")


def test_tweakreg_job_writes_the_figure_of_its_report_and_residuals(tmp_path):
    _report().write(tmp_path / "report.ecsv", format="ascii.ecsv")
    _residuals().write(tmp_path / "residuals.ecsv", format="ascii.ecsv")
    out = tmp_path / "tweakreg.png"
    summary = qa.write_tweakreg_figure(tmp_path / "report.ecsv", tmp_path / "residuals.ecsv",
                                       out)
    assert summary == f"wrote {out}: 3 group fits (1 applied), 40 matched-star residuals"
    png_pixels(out, "tweakreg")


def test_skymatch_job_reports_the_range_of_the_sky_after_matching(tmp_path):
    """Own sky 0.30, 0.35, 0.41 MJy/sr less levels 0, 0.02, 0.05: after, 0.30 to 0.36."""
    stats, sky = [], []
    for member, before, level in zip(MEMBERS, (0.30, 0.35, 0.41), (0.0, 0.02, 0.05)):
        stats.append(tmp_path / f"{member}_skystats.json")
        write_sky_stats(stats[-1], {member: {"group": GROUPS[member], "local": {"sky": before}}})
        sky.append(tmp_path / f"{member}_sky.json")
        SkyRecord(level, "match", subtracted=False).write(sky[-1])
    out = tmp_path / "skymatch.png"
    summary = qa.write_skymatch_figure(stats, sky, MEMBERS, out)
    assert summary == f"wrote {out}: sky after skymatch from 0.3 to 0.36 MJy/sr over 3 members"
    png_pixels(out, "skymatch")


def _flag(source, path, new=(), unusable=(), outliers=()):
    """Copy ``source`` to ``path`` with DQ pixels (y, x) changed: ``new`` made usable,
    ``unusable`` given DO_NOT_USE, ``outliers`` given OUTLIER | DO_NOT_USE."""
    shutil.copy(source, path)
    with fits.open(path, mode="update") as hdul:
        dq = hdul["DQ"].data
        for y, x in new:
            dq[y, x] = 0
        for y, x in unusable:
            dq[y, x] |= DO_NOT_USE
        for y, x in outliers:
            dq[y, x] |= OUTLIER | DO_NOT_USE


def test_outlier_job_counts_the_pixels_flagged_in_each_crf(exposures, tmp_path):
    """The counts are the pixels the test flagged OUTLIER in each _crf where its _cal had no
    DO_NOT_USE (7 and 3); a pixel already unusable in the _cal and a DO_NOT_USE without
    OUTLIER are not counted."""
    members, footprints, grid_path, grid = exposures
    new = [[(10 + 20 * k, 30 + 15 * k) for k in range(7)], [(200, 40), (5, 250), (128, 128)]]
    rows = []
    for member, pixels in zip(members, new):
        assert not (fits.getdata(member.cal, "DQ") & OUTLIER).any()
        cal, crf = tmp_path / f"{member.name}_cal.fits", tmp_path / f"{member.name}_crf.fits"
        _flag(member.cal, cal, new=pixels, unusable=[(50, 50)])
        _flag(cal, crf, unusable=[(60, 60)], outliers=[*pixels, (50, 50)])
        rows.append({"member": member.name, "cal": str(cal), "crf": str(crf)})
    median = tmp_path / "median.fits"
    write_median(median, np.random.default_rng(5).normal(size=grid.shape).astype(np.float32),
                 np.full(grid.shape, 2, dtype=np.uint8), "median", 2)
    out = tmp_path / "outliers.png"
    summary = qa.write_outlier_figure(median, grid_path, footprints, rows, out)
    assert summary == (f"wrote {out}: 10 outlier pixels flagged in 2 members "
                       f"({members[0].name}: 7, {members[1].name}: 3)")
    png_pixels(out, "outliers")


def test_catalog_job_reports_its_sources_and_the_extended_ones(exposures, tmp_path):
    _write_i2d(tmp_path / "c_i2d.fits", (300, 400), exposures[1])
    catalog = Table({"label": [1, 2, 3], "xcentroid": [10.0, 200.0, 350.0],
                     "ycentroid": [5.0, 150.0, 290.0],
                     "aper_total_abmag": [22.0, 24.5, np.nan], "CI_70_30": [3.0, 4.5, 3.1],
                     "is_extended": [False, True, False]})
    catalog.write(tmp_path / "c_cat.ecsv", format="ascii.ecsv")
    out = tmp_path / "catalog.png"
    summary = qa.write_catalog_figure(tmp_path / "c_i2d.fits", tmp_path / "c_cat.ecsv",
                                      (30, 50, 70), out)
    assert summary == f"wrote {out}: 3 sources (1 extended)"
    png_pixels(out, "catalog")


def test_parameter_table_lists_every_row_and_names_those_not_at_their_default(tmp_path):
    rows = [("tweakreg", "kernel_fwhm", "2.2", "parameter table"),
            ("skymatch", "skymethod", "match", "default"),
            ("resample", "pixfrac", "0.8", "user")]
    out = tmp_path / "qa" / "parameters.html"
    summary = qa.write_parameter_table(rows, out)
    assert summary == (f"wrote {out}: 3 parameters, 2 not the default: "
                       "tweakreg.kernel_fwhm=2.2 (parameter table), resample.pixfrac=0.8 (user)")
    html = out.read_text()
    cells = [tuple(re.findall(r"<td>(.*?)</td>", row))
             for row in re.findall(r"<tr>(.*?)</tr>", html, re.S)]
    assert cells == [(), *rows]  # the header row (<th>), then one row per parameter
    assert "border-collapse" in html and not list(out.parent.glob(".tmp-*"))
    assert qa.write_parameter_table(rows[1:2], tmp_path / "p.html").endswith(
        "1 parameters, 0 not the default: none")


def test_the_tiled_mosaic_figure_is_the_mosaic_with_its_tiles(exposures, tmp_path):
    """Truth: a 600 × 1100 mosaic cut into 2 × 3 tiles of 300 × 400 (margin 40). Required: the
    display image composed from the tiles' own regions equals the whole mosaic's, the WCS
    moved back to the whole grid, and the figure's summary names the tiles; without the
    first column of tiles (room for members added later), the display starts at the second."""
    from image3.tiles import tile_layout, write_tiles

    _write_i2d(tmp_path / "m_i2d.fits", (600, 1100), exposures[1])
    tiles = tile_layout((600, 1100), 400, 40)
    write_tiles(tmp_path / "tiles.json", tiles)
    with fits.open(tmp_path / "m_i2d.fits") as mosaic:
        data, header = mosaic["SCI"].data, mosaic["SCI"].header
        paths = []
        for tile in tiles:
            y0, y1, x0, x1 = tile.window
            part = header.copy()
            part["CRPIX1"] -= x0
            part["CRPIX2"] -= y0
            paths.append(tmp_path / f"{tile.name}_i2d.fits")
            fits.HDUList([fits.PrimaryHDU(), fits.ImageHDU(data[y0:y1, x0:x1], part, name="SCI")]
                         ).writeto(paths[-1])
    image, factor, moved = qa.read_tiled_display_image(paths, tiles)
    whole, whole_factor, _ = qa.read_display_image(tmp_path / "m_i2d.fits")
    assert factor == whole_factor == 2
    np.testing.assert_array_equal(image, whole)
    assert moved["CRPIX1"] == header["CRPIX1"] and moved["CRPIX2"] == header["CRPIX2"]
    right = [k for k, t in enumerate(tiles) if t.inner[2] > 0]
    image, factor, moved = qa.read_tiled_display_image([paths[k] for k in right],
                                                       [tiles[k] for k in right])
    assert factor == 1  # 700 columns fit the display
    np.testing.assert_array_equal(image, fits.getdata(tmp_path / "m_i2d.fits", "SCI")[:, 400:])
    assert moved["CRPIX1"] == header["CRPIX1"] - 400
    out = tmp_path / "mosaic.png"
    summary = qa.write_tiled_mosaic_figure(paths, tmp_path / "tiles.json", exposures[1], out)
    assert summary == (f"wrote {out}: mosaic of 6 tiles shown at 1/2 scale (550 x 300) with 2 "
                       "member footprints")
    png_pixels(out, "mosaic")


def test_band_offsets_recover_a_shift_between_two_bands():
    """Two bands' catalogues, the second's sources moved by (+30, -20) mas: the median offset
    is that shift (within 0.01 mas), counted over the sources above the S/N limit only."""
    rng = np.random.default_rng(2)
    n = 40
    sky = SkyCoord((150 + rng.uniform(0, 0.01, n)) * u.deg, (2 + rng.uniform(0, 0.01, n)) * u.deg)
    flux = np.where(np.arange(n) < 30, 1000.0, 10.0)  # 30 sources at S/N 100, 10 at S/N 1
    first = Table({"sky_centroid": sky, "isophotal_flux": flux, "isophotal_flux_err": flux / 100,
                   "is_extended": np.zeros(n, bool)})
    first["isophotal_flux_err"][30:] = 10.0
    moved = sky.spherical_offsets_by(30 * u.mas, -20 * u.mas)
    second = Table(first, copy=True)
    second["sky_centroid"] = moved
    row = qa.band_offsets({"F150W": first, "F200W": second})[0]
    assert row["band"] == "F200W" and row["n"] == 30
    assert row["dra_mas"] == pytest.approx(30, abs=0.01)
    assert row["ddec_mas"] == pytest.approx(-20, abs=0.01)
    assert row["scatter_mas"] < 0.01
