"""Sky tiles (image3/tiles.py, rules/tiles.smk): the layout, a tiled run against an untiled
one of the same association — tile pixels are the mosaic's, the merged catalogue lists each
source once — and members added to a finished tiled run (image3/kept.py)."""

import json
import sys
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits
from astropy.table import Table
from astropy.wcs import WCS
from scipy.spatial import cKDTree

from image3 import synth
from image3.asn import read_association
from image3.datamodel import SkyRecord, read_wcs
from image3.footprints import estimated_grid_pixels, parse_s_region
from image3.inspect import inspect_file
from image3.tiles import assign_members, read_tiles, tile_layout
from truth import truth_error_px
from workflow import jobs_run, snakemake

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
import compare  # noqa: E402


def test_tiles_cover_the_grid_once_and_their_windows_add_the_margin():
    tiles = tile_layout((250, 330), 100, 20)
    assert [t.name for t in tiles[:4]] == ["t00-00", "t00-01", "t00-02", "t00-03"]
    assert len(tiles) == 3 * 4
    owner = np.zeros((250, 330), int)
    for t in tiles:
        y0, y1, x0, x1 = t.inner
        owner[y0:y1, x0:x1] += 1
        wy0, wy1, wx0, wx1 = t.window
        assert (wy0, wx0) == (max(0, y0 - 20), max(0, x0 - 20))
        assert (wy1, wx1) == (min(250, y1 + 20), min(330, x1 + 20))
    assert (owner == 1).all()
    assert tiles[-1].inner == (200, 250, 300, 330)


def test_a_tile_lists_the_members_that_meet_its_window_and_empty_tiles_are_left_out():
    """Boxes (y0, y1, x0, x1) on a 250 x 330 grid of 100² tiles, margin 20: "a" in the first
    tile's inner region only, "b" 5 pixels beyond the first row's windows (met with the 8-pixel
    pad, not without), nothing in the last two columns of tiles; t00-01 and the last row, whose
    margins only "b" meets, are not made (their inner regions, where their sources would be,
    are empty)."""
    tiles = tile_layout((250, 330), 100, 20)
    boxes = {"a": (10, 60, 10, 60), "b": (125, 200, 10, 150)}
    kept = {t.name: t.members for t in assign_members(tiles, boxes)}
    assert kept == {"t00-00": ("a", "b"), "t01-00": ("b",), "t01-01": ("b",)}
    assert assign_members(tiles, boxes, pad=0)[0].members == ("a",)


@pytest.mark.workflow
def test_a_tiled_run_gives_the_mosaics_pixels_and_one_catalogue(tmp_path):
    """Truth: the untiled run of the same 2 x 2 mosaic (512², 1 dither), background boxes of
    250 pixels (they straddle the 300-pixel tiles). Required: the grid's size estimated from
    S_REGION within 5 %, and the run tiled when it exceeds tiles.above_pixels, not otherwise
    (dry runs); one median job per tile, the _crf's DQ equal to the untiled run's; every tile's
    SCI, ERR, WHT equal to the mosaic's in its window (the same contributions summed); a tile's
    pixel (0, 0) at the mosaic's (x0, y0) on the sky (< 1e-6"); the merged catalogue without two
    entries within 0.1", labels 1..N, each entry's tile, every untiled source matched once
    within 0.1" and nothing else (the tiles detect on the mosaic's background mesh), their
    isophotal fluxes equal to 1e-5, and against the true stars the same completeness at
    S/N >= 10."""
    asn = synth.make_program(tmp_path / "data", n=1, size=512, seed=4, layout="mosaic:2x2")[0]
    product = "jw99999-o001_t001_nircam_clear-f200w"
    untiled = tmp_path / "untiled"
    boxes = "{bkg_boxsize: 250}"
    snakemake(tmp_path, "--cores", "2",
              config={"asn": asn, "output_dir": untiled, "source_catalog": boxes})
    # the size the run estimates before any job (from S_REGION) against the grid it made
    with fits.open(untiled / f"{product}_i2d.fits") as mosaic:
        grid_pixels = mosaic["SCI"].data.size
    facts = [inspect_file(m.path) for m in read_association(asn).members]
    estimate = estimated_grid_pixels([parse_s_region(f["s_region"])[0] for f in facts],
                                     [f["shape"] for f in facts])
    print(f"\nFIGURE estimated grid {estimate:.0f} pixels, made {grid_pixels}")
    assert abs(estimate / grid_pixels - 1) < 0.05
    # a mosaic estimated larger than tiles.above_pixels is tiled, with one line saying so
    plan = snakemake(tmp_path, "-n", config={"asn": asn, "output_dir": tmp_path / "auto",
                                             "tiles": f"{{above_pixels: {grid_pixels // 2}}}"})
    assert "made as sky tiles of 4096² pixels" in plan.stderr and "checkpoint tiles" in plan.stdout
    plan = snakemake(tmp_path, "-n", config={"asn": asn, "output_dir": tmp_path / "auto",
                                             "tiles": f"{{above_pixels: {grid_pixels * 2}}}"})
    assert "sky tiles" not in plan.stderr and "checkpoint tiles" not in plan.stdout
    tiled = tmp_path / "tiled"
    # reserve 0: the tiled grid is the untiled one (with room it is shifted by whole tiles)
    snakemake(tmp_path, "--cores", "2", config={
        "asn": asn, "output_dir": tiled, "source_catalog": boxes,
        "tiles": "{size: 300, margin: 50, above_pixels: 0, reserve: 0}"})
    tiles = read_tiles(tiled / "work" / "tiles.json")
    assert len(tiles) >= 4
    logs = tiled / "work" / "logs"
    for rule in ("resample_tile", "background_boxes", "source_catalog_tile", "median"):
        assert len(list((logs / rule).glob("t*.log"))) == len(tiles)
    assert not (logs / "resample.log").exists() and not (logs / "source_catalog.log").exists()
    assert not (logs / "median" / "all.log").exists()
    # the median in pieces flags the same pixels
    for crf in sorted(untiled.glob("*_crf.fits")):
        np.testing.assert_array_equal(fits.getdata(tiled / crf.name, "DQ"), fits.getdata(crf, "DQ"))
    with fits.open(untiled / f"{product}_i2d.fits") as mosaic:
        full_wcs = WCS(mosaic["SCI"].header)
        for tile in tiles:
            y0, y1, x0, x1 = tile.window
            with fits.open(tiled / f"{product}_{tile.name}_i2d.fits") as part:
                for ext in ("SCI", "ERR", "WHT"):
                    np.testing.assert_array_equal(part[ext].data, mosaic[ext].data[y0:y1, x0:x1])
                sky = WCS(part["SCI"].header).pixel_to_world_values(0.0, 0.0)
            np.testing.assert_allclose(sky, full_wcs.pixel_to_world_values(x0, y0), rtol=0,
                                       atol=1e-6 / 3600)
    one = Table.read(untiled / f"{product}_cat.ecsv")
    merged = Table.read(tiled / f"{product}_cat.ecsv")
    assert list(merged["label"]) == list(range(1, len(merged) + 1))
    assert set(merged["tile"]) <= {t.name for t in tiles}
    ra, dec = merged["sky_centroid"].ra.deg, merged["sky_centroid"].dec.deg
    xy = compare._tangent_arcsec(ra, dec, float(np.median(dec)))
    assert not cKDTree(xy).query_pairs(0.1)
    i, j, _ = compare.match_sky(one["sky_centroid"].ra.deg, one["sky_centroid"].dec.deg, ra, dec)
    truth = Path(asn).parent / "truth"
    stars = compare.completeness_of_runs(
        Table.read(truth / "sources.ecsv"), json.loads((truth / "psf.json").read_text()),
        untiled / f"{product}_i2d.fits",
        {run: compare._catalogue(d / f"{product}_cat.ecsv") for run, d in (("untiled", untiled),
                                                                            ("tiled", tiled))})
    print(f"\nFIGURE tiles {len(tiles)}: untiled {len(one)} sources, merged {len(merged)}, "
          f"matched {len(i)}; stars S/N >= 10 found: untiled "
          f"{stars['untiled']['completeness']:.4f}, tiled {stars['tiled']['completeness']:.4f} "
          f"of {stars['tiled']['stars']}")
    assert len(i) == len(one) == len(merged)
    np.testing.assert_allclose(merged["isophotal_flux"][j], one["isophotal_flux"][i], rtol=1e-5)
    assert stars["tiled"]["completeness"] == stars["untiled"]["completeness"]


@pytest.mark.workflow
def test_members_added_to_a_finished_tiled_run_redo_only_the_tiles_they_touch(tmp_path):
    """Truth: the generator's true gwcs and sky level of each exposure. A 2 x 2 mosaic (512²,
    one exposure per pointing) made as tiles of 300² (margin 50) from its first three
    pointings, then again with the fourth added. Required on the second run: one find_sources,
    sky_statistics, single and flag job (the new member's); median and resample jobs only for
    the tiles whose window the new member meets, and every other tile's _i2d untouched
    (mtime); catalogues made again for those tiles and where the background moved, the others
    untouched; the kept members' gwcs and sky records byte for byte the first run's; the new
    member's gwcs within 0.15 pixel RMS of its true one at the true stars (measured 0.070; the
    kept members' 0.059 and 0.122 from the first run: few stars in a mosaic's overlaps) and
    its sky level, relative to a kept member's, within 0.002 MJy/sr of the true difference
    (measured 2e-4; the sky noise is 0.016 MJy/sr a pixel)."""
    data = tmp_path / "data"
    asn = synth.make_program(data, n=1, size=512, seed=4, layout="mosaic:2x2")[0]
    whole = json.loads(Path(asn).read_text())
    first = json.loads(Path(asn).read_text())
    first["products"][0]["members"] = first["products"][0]["members"][:3]
    three = data / "three_asn.json"
    three.write_text(json.dumps(first))
    out, product = tmp_path / "out", whole["products"][0]["name"]
    config = {"output_dir": out, "tiles": "{size: 300, margin: 50, above_pixels: 0}"}
    snakemake(tmp_path, "--cores", "2", config={"asn": three, **config})
    work = out / "work"
    kinds = ("i2d.fits", "cat.ecsv")
    before = {(t.name, kind): (out / f"{product}_{t.name}_{kind}").stat().st_mtime_ns
              for t in read_tiles(work / "tiles.json") for kind in kinds}
    members = [m["expname"].removesuffix("_cal.fits") for m in whole["products"][0]["members"]]
    kept = {m: ((work / m / "wcs.pkl").read_bytes(), (work / m / "sky.json").read_bytes())
            for m in members[:3]}

    proc = snakemake(tmp_path, "--cores", "2", config={"asn": asn, **config})
    ran = jobs_run(proc)
    tiles = read_tiles(work / "tiles.json")
    touched = {t.name for t in tiles if members[3] in t.members}
    print(f"\nFIGURE added one pointing: {len(tiles)} tiles, {len(touched)} touched by it; "
          f"jobs that ran: {dict(sorted(ran.items()))}")
    assert ran["find_sources"] == ran["sky_statistics"] == ran["single"] == ran["flag"] == 1
    assert ran["median"] == ran["resample_tile"] == len(touched)
    assert 0 < len(touched) < len(tiles)
    first_tiles = {name for name, _ in before}
    changed = {kind: {name for (name, k), mtime in before.items() if k == kind and (
        out / f"{product}_{name}_{kind}").stat().st_mtime_ns != mtime} for kind in kinds}
    assert changed["i2d.fits"] == touched & first_tiles
    # a catalogue is made again where the tile is touched or the mosaic's background moved
    # (here everywhere: the mosaic is smaller than a background box; unit-tested elsewhere)
    assert changed["i2d.fits"] <= changed["cat.ecsv"]
    assert ran["source_catalog_tile"] == len(changed["cat.ecsv"]) + len(
        {t.name for t in tiles} - first_tiles)
    for m, (wcs_bytes, sky_bytes) in kept.items():
        assert (work / m / "wcs.pkl").read_bytes() == wcs_bytes
        assert (work / m / "sky.json").read_bytes() == sky_bytes
    new = members[3]
    error = truth_error_px(Path(asn), new, read_wcs(work / new / "wcs.pkl"))
    truth = {row["member"]: row["sky_mjysr"]
             for row in Table.read(data / "truth" / "exposures.ecsv")}
    levels = {m: SkyRecord.read(work / m / "sky.json").level for m in members}
    sky_error = (levels[new] - levels[members[0]]) - (truth[new] - truth[members[0]])
    print(f"FIGURE new member: alignment {error:.4f} px RMS from truth, sky level "
          f"{sky_error:+.2e} MJy/sr off the true difference")
    assert error < 0.15
    assert abs(sky_error) < 0.002
