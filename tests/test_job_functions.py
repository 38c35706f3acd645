"""Each rule's one call into image3, chained without Snakemake on three dithered 256² exposures,
in the order the workflow runs them; each test checks one job's files against the generator's
truth or against the same science computed directly."""

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits
from astropy.table import Table
from astropy.wcs import WCS
from stdatamodels.jwst import datamodels

from image3 import synth
from image3.asn import pair_partners
from image3.catalog import write_source_catalog
from image3.config import schema_defaults
from image3.datamodel import MemberFiles, read_exposure
from image3.dqflags import DO_NOT_USE, OUTLIER
from image3.flag import flag_member
from image3.grid import write_footprints, write_output_grid
from image3.median import read_single, write_median_of_singles
from image3.mosaic import drizzle_member, member_pixels, write_i2d
from image3.outlier import write_group_single
from image3.parameters import (AlignmentFit, CatalogParameters, FinalDrizzle, FlagComparison,
                               OutputGrid, ReferenceStars, SingleDrizzle, SipApproximation,
                               SkySolve, SkyStatistics, SourceFinding)
from image3.resample import PartialWriter
from image3.skymatch import read_sky_stats, write_member_sky_stats, write_sky_records
from image3.tweakreg import align_members, find_exposure_sources, read_sources, write_saved_catalog
from image3.wcs import read_grid

from truth import match_to_truth, truth_sources

DEFAULTS = schema_defaults()


def _defaults(cls, section):
    return cls.from_config(DEFAULTS[section])


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """The jobs of a default run, each called as its script calls it."""
    root = tmp_path_factory.mktemp("jobs")
    asn = synth.make_association(root / "data", n=3, size=256, seed=33)
    work = root / "work"
    names = synth.member_names(3)
    members = []
    for name in names:
        (work / name).mkdir(parents=True)
        cal = asn.parent / synth.cal_filename(name)
        find_exposure_sources(cal, work / name / "sources.ecsv", work / name / "geometry.pkl",
                              _defaults(SourceFinding, "tweakreg"))
        members.append(MemberFiles(name, synth.group_id(name), cal, work / name / "geometry.pkl",
                                   work / name / "wcs.pkl", work / name / "sky.json"))
    align_members([{"member": m.name, "group_id": m.group_id, "cal": m.cal,
                    "geometry": m.geometry, "sources": work / m.name / "sources.ecsv"}
                   for m in members], _defaults(AlignmentFit, "tweakreg"), "",
                  _defaults(ReferenceStars, "tweakreg"), [m.wcs for m in members],
                  work / "residuals.ecsv", work / "refcat.ecsv", work / "report.ecsv")
    layout = [MemberFiles(m.name, m.group_id, m.cal, m.geometry, m.wcs) for m in members]
    write_footprints(work / "footprints.json", layout, DEFAULTS["skymatch"]["stepsize"])
    write_output_grid(work / "grid.pkl", layout, _defaults(OutputGrid, "resample"),
                      work / "grid_shape.json")
    by_name = {m.name: m for m in layout}
    lines = {"sky": [write_member_sky_stats(work / m.name / "skystats.json", m,
                                            [by_name[p] for p in pair_partners(list(by_name), m.name)],
                                            DEFAULTS["skymatch"]["stepsize"],
                                            _defaults(SkyStatistics, "skymatch"))
                     for m in layout]}
    write_sky_records({m.name: m.sky for m in members},
                      [work / m.name / "skystats.json" for m in members],
                      {m.group_id: [m.name] for m in members}, _defaults(SkySolve, "skymatch"))
    singles = [work / f"{m.group_id}_single.fits" for m in members]
    lines["single"] = [write_group_single(path, [m], work / "grid.pkl",
                                          _defaults(SingleDrizzle, "outlier_detection"), m.group_id)
                       for m, path in zip(members, singles)]
    lines["median"] = write_median_of_singles(work / "median.fits", singles, "image3")
    out = root / "out"
    out.mkdir()
    crfs = [out / f"{m.name}_crf.fits" for m in members]
    lines["flag"] = [flag_member(m, grid_path=work / "grid.pkl", median_path=work / "median.fits",
                                 single_path=single, compare=_defaults(FlagComparison,
                                                                       "outlier_detection"),
                                 sip=_defaults(SipApproximation, "tweakreg"), crf_path=crf,
                                 final_grid_path=work / "grid.pkl",
                                 final=_defaults(FinalDrizzle, "resample"),
                                 contribution_path=work / m.name / "contribution.npz")
                     for m, single, crf in zip(members, singles, crfs)]
    crf_members = [MemberFiles(m.name, m.group_id, crf) for m, crf in zip(members, crfs)]
    final = _defaults(FinalDrizzle, "resample")
    lines["i2d"] = write_i2d(out / "i2d.fits", crf_members, work / "grid.pkl", final,
                             [work / m.name / "contribution.npz" for m in members])
    write_i2d(out / "i2d_from_crfs.fits", crf_members, work / "grid.pkl", final)
    lines["catalog"] = write_source_catalog(
        out / "i2d.fits", _defaults(CatalogParameters, "source_catalog"), out / "cat.ecsv",
        out / "segm.fits")
    return {"asn": asn, "work": work, "out": out, "members": members, "crfs": crfs,
            "singles": singles, "lines": lines}


def test_sky_records_follow_the_true_sky_differences_within_0_0005_mjysr(run):
    """skymatch's default (match, not subtracted): each member's level minus the lowest one
    equals the true sky offset between the exposures (truth exposures.ecsv)."""
    truth = Table.read(run["asn"].parent / "truth" / "exposures.ecsv")
    true_sky = {row["member"]: float(row["sky_mjysr"]) for row in truth}
    levels = {m.name: json.loads(Path(m.sky).read_text())["level"] for m in run["members"]}
    lowest = min(true_sky[m] for m in levels)
    for name, level in levels.items():
        assert level - min(levels.values()) == pytest.approx(true_sky[name] - lowest, abs=5e-4)
    stats = read_sky_stats([run["work"] / m.name / "skystats.json" for m in run["members"]])
    assert all(f"{name}: local sky {stats[name]['local']['sky']}" in line
               for name, line in zip(levels, run["lines"]["sky"]))


def test_singles_and_median_cover_the_grid_from_every_member(run):
    """Each single is its member's cutout (finite over >= 90% of it); the median of three
    singles equals numpy's median where all three cover, to float32 rounding."""
    singles = [read_single(p) for p in run["singles"]]
    assert all(np.isfinite(s.sci).mean() > 0.9 for s in singles)
    assert all("1 member(s) drizzled" in line for line in run["lines"]["single"])
    with fits.open(run["work"] / "median.fits") as hdul:
        median, count = hdul["SCI"].data, hdul["NCOMBINE"].data
    full = np.full((3, *median.shape), np.nan, np.float32)
    for k, s in enumerate(singles):
        y0, x0 = s.origin
        full[k, y0:y0 + s.sci.shape[0], x0:x0 + s.sci.shape[1]] = s.sci
    where = count == 3
    assert where.mean() > 0.5
    np.testing.assert_allclose(median[where], np.median(full[:, where], axis=0), rtol=1e-6)
    assert run["lines"]["median"].startswith("median of 3 singles")


def test_flag_jobs_flag_the_true_cosmic_rays_above_10_sigma_with_recall_0_95(run):
    """Each _crf flags (DO_NOT_USE | OUTLIER) >= 95% of the injected cosmic-ray pixels whose
    amplitude is >= 10 ERR, and its summary counts exactly the pixels it newly flagged."""
    truth = run["asn"].parent / "truth"
    for member, crf, line in zip(run["members"], run["crfs"], run["lines"]["flag"]):
        cr = fits.getdata(truth / f"{member.name}_cr.fits")
        cal_dq = fits.getdata(member.cal, "DQ")
        err = fits.getdata(member.cal, "ERR")
        crf_dq = fits.getdata(crf, "DQ")
        strong = (cr >= 10 * err) & ((cal_dq & DO_NOT_USE) == 0)
        assert strong.sum() > 20
        flagged = (crf_dq & (DO_NOT_USE | OUTLIER)) == DO_NOT_USE | OUTLIER
        assert flagged[strong].mean() >= 0.95
        new = int(((crf_dq & DO_NOT_USE) != 0).sum() - ((cal_dq & DO_NOT_USE) != 0).sum())
        assert line.startswith(f"{member.name}: {new} outlier pixels flagged")
        with datamodels.ImageModel(str(crf)) as model:
            assert model.meta.cal_step.outlier_detection == "COMPLETE"
            assert model.meta.cal_step.tweakreg == "COMPLETE"


def test_the_i2d_from_the_flag_jobs_contributions_equals_drizzling_the_crfs(run):
    """The contributions the flag jobs drizzled (with the comparison's pixel map) make the
    same _i2d as drizzling every _crf in the resample job: SCI, WHT and ERR to 1e-5
    relative, CON exactly."""
    with datamodels.ImageModel(str(run["out"] / "i2d.fits")) as a, \
            datamodels.ImageModel(str(run["out"] / "i2d_from_crfs.fits")) as b:
        np.testing.assert_array_equal(a.con, b.con)
        for name in ("data", "wht", "err"):
            np.testing.assert_allclose(getattr(a, name), getattr(b, name), rtol=1e-5,
                                       atol=1e-6, equal_nan=True)
        assert a.meta.exposure.effective_exposure_time == pytest.approx(
            3 * read_exposure(run["members"][0].cal, arrays=()).meta.times[
                "effective_exposure_time"])
    assert run["lines"]["i2d"].startswith(f"wrote {run['out'] / 'i2d.fits'} (")


def test_the_catalog_finds_every_true_star_above_0_1_ujy_within_0_05_arcsec(run):
    """Stars of >= 0.1 uJy (S/N > 50) inside the mosaic are all found within 0.05"; the
    segmentation map's labels are the catalogue's."""
    catalog = Table.read(run["out"] / "cat.ecsv")
    assert run["lines"]["catalog"] == f"{len(catalog)} sources in {run['out'] / 'cat.ecsv'}"
    sources = truth_sources(run["asn"])
    with datamodels.ImageModel(str(run["out"] / "i2d.fits")) as i2d:
        x, y = i2d.meta.wcs.invert(np.asarray(sources["ra"]), np.asarray(sources["dec"]))
        shape = i2d.data.shape
    inside = (x > 10) & (y > 10) & (x < shape[1] - 10) & (y < shape[0] - 10)
    bright = sources[inside & (sources["kind"] == "star") & (sources["flux_ujy"] >= 0.1)]
    assert len(bright) >= 2
    idx, _, _ = match_to_truth(catalog["sky_centroid"].ra.deg, catalog["sky_centroid"].dec.deg,
                               bright, 0.05)
    assert np.isin(np.arange(len(bright)), idx).all()
    segm = fits.getdata(run["out"] / "segm.fits", "SCI")
    assert set(np.unique(segm[segm > 0])) == set(catalog["label"])


def test_a_saved_catalog_is_the_found_source_list_in_the_reference_columns(run, tmp_path):
    """save_catalogs' file: the found sources with xcentroid/ycentroid as x/y, exactly."""
    member = run["members"][0]
    sources = run["work"] / member.name / "sources.ecsv"
    write_saved_catalog(sources, tmp_path / "cat.ecsv", member.name)
    saved, found = Table.read(tmp_path / "cat.ecsv"), read_sources(sources)
    np.testing.assert_array_equal(saved["x"], found["xcentroid"])
    np.testing.assert_array_equal(saved["y"], found["ycentroid"])
    assert saved.meta["name"] == member.name


def test_a_tile_of_the_i2d_is_the_same_part_of_the_mosaic(run, tmp_path):
    """A window of the grid (a sky tile) made from the contributions and, without them, by
    drizzling the _crfs onto the window: its SCI, ERR and WHT are the mosaic's there (float32
    rounding), its edge pixels included, and its WCS puts its pixel (0, 0) on the mosaic's
    (x0, y0)."""
    members = [MemberFiles(m.name, m.group_id, crf) for m, crf in zip(run["members"], run["crfs"])]
    final = _defaults(FinalDrizzle, "resample")
    contributions = [run["work"] / m.name / "contribution.npz" for m in run["members"]]
    window = (40, 170, 55, 230)
    y0, y1, x0, x1 = window
    with fits.open(run["out"] / "i2d.fits") as mosaic:
        whole = {ext: mosaic[ext].data[y0:y1, x0:x1] for ext in ("SCI", "ERR", "WHT")}
        corner = WCS(mosaic["SCI"].header).pixel_to_world_values(x0, y0)
    for name, parts in (("contributions", contributions), ("crfs", ())):
        path = tmp_path / f"tile_{name}.fits"
        write_i2d(path, members, run["work"] / "grid.pkl", final, parts, window)
        with fits.open(path) as tile:
            for ext, expected in whole.items():
                np.testing.assert_allclose(tile[ext].data, expected, rtol=1e-5, atol=1e-7,
                                           err_msg=f"{name} {ext}")
            np.testing.assert_allclose(WCS(tile["SCI"].header).pixel_to_world_values(0, 0),
                                       corner, rtol=0, atol=1e-9)


def test_the_i2d_hdrtab_holds_each_members_header_keywords(run, tmp_path):
    """blendheaders (the default): HDRTAB has one row per member, in member order, read by
    stdatamodels (``hdrtab``) and astropy: FILENAME, FILTER, EFFEXPTM (primary header) and
    PHOTMJSR, CRVAL1 (SCI header) are each input's header values exactly; S_OUTLIR and
    BKGLEVEL those of the _crf (BKGLEVEL = the sky record's level). Drizzled from the _cals
    with their sidecars, S_SKYMAT and BKGLEVEL (absent from the _cal headers) come from the
    sky records. A tile of two members lists those two; blendheaders false: no HDRTAB."""
    final = _defaults(FinalDrizzle, "resample")
    levels = [json.loads(Path(m.sky).read_text())["level"] for m in run["members"]]
    with datamodels.ImageModel(str(run["out"] / "i2d.fits")) as model:
        table = model.hdrtab
    with fits.open(run["out"] / "i2d.fits") as hdul:
        assert hdul["HDRTAB"].data["FILENAME"].tolist() == [c.name for c in run["crfs"]]
    assert table["FILENAME"].tolist() == [c.name for c in run["crfs"]]
    for row, crf, level in zip(table, run["crfs"], levels, strict=True):
        primary, sci = fits.getheader(crf, 0), fits.getheader(crf, "SCI")
        assert (row["FILTER"], row["EFFEXPTM"]) == (primary["FILTER"], primary["EFFEXPTM"])
        assert (row["PHOTMJSR"], row["CRVAL1"]) == (sci["PHOTMJSR"], sci["CRVAL1"])
        assert row["S_OUTLIR"] == "COMPLETE" and row["BKGLEVEL"] == pytest.approx(level, 1e-9)

    members = run["members"]
    assert all("BKGLEVEL" not in fits.getheader(m.cal, 0) for m in members)
    write_i2d(tmp_path / "cals.fits", members, run["work"] / "grid.pkl", final)
    with datamodels.ImageModel(str(tmp_path / "cals.fits")) as model:
        table = model.hdrtab
    assert table["FILENAME"].tolist() == [Path(m.cal).name for m in members]
    assert table["S_SKYMAT"].tolist() == ["COMPLETE"] * 3
    np.testing.assert_allclose(table["BKGLEVEL"], levels, rtol=1e-9)

    two = [MemberFiles(m.name, m.group_id, crf) for m, crf in zip(members, run["crfs"])][1:]
    write_i2d(tmp_path / "tile.fits", two, run["work"] / "grid.pkl", final,
              [run["work"] / m.name / "contribution.npz" for m in members[1:]], (40, 170, 55, 230))
    with fits.open(tmp_path / "tile.fits") as hdul:
        assert hdul["HDRTAB"].data["FILENAME"].tolist() == [c.name for c in run["crfs"][1:]]
    write_i2d(tmp_path / "plain.fits", two, run["work"] / "grid.pkl",
              replace(final, blendheaders=False))
    with fits.open(tmp_path / "plain.fits") as hdul:
        assert "HDRTAB" not in hdul


def test_propagate_dq_gives_the_i2d_the_inputs_dq_and_marks_pixels_without_data(run, tmp_path):
    """propagate_dq: the _i2d's DQ (uint32, ImageModel.dq) carries a JUMP_DET (4) set on a 2 x 2
    block of the first _crf onto the output pixels holding those pixels' centres and within
    1.5 pixel of them only; DQ is DO_NOT_USE|NON_SCIENCE (513) exactly where WHT is 0, and 0
    elsewhere (the inputs' other flags are DO_NOT_USE: they do not contribute). A tile made
    from contributions drizzled with DQ (as the flag jobs do) has the mosaic's DQ in its
    window."""
    final = replace(_defaults(FinalDrizzle, "resample"), propagate_dq=True)
    members = [MemberFiles(m.name, m.group_id, crf) for m, crf in zip(run["members"], run["crfs"])]
    jumped = tmp_path / run["crfs"][0].name
    with fits.open(run["crfs"][0]) as hdul:
        assert not (hdul["DQ"].data[100:102, 120:122] & DO_NOT_USE).any()
        hdul["DQ"].data[100:102, 120:122] |= np.uint32(4)
        hdul.writeto(jumped)
    members[0] = replace(members[0], cal=jumped)
    write_i2d(tmp_path / "i2d.fits", members, run["work"] / "grid.pkl", final)
    with datamodels.ImageModel(str(tmp_path / "i2d.fits")) as model:
        dq, wht, grid_wcs = model.dq.copy(), model.wht.copy(), model.meta.wcs
        assert dq.dtype == np.uint32
    with datamodels.ImageModel(str(jumped)) as crf:
        y, x = np.mgrid[100:102, 120:122]
        cx, cy = grid_wcs.invert(*crf.meta.wcs(x.ravel(), y.ravel()))
    assert (dq[np.round(cy).astype(int), np.round(cx).astype(int)] & 4).all()
    by, bx = np.nonzero(dq & 4)
    distance = np.hypot(bx[:, None] - cx[None], by[:, None] - cy[None]).min(axis=1)
    assert 4 <= len(by) and distance.max() < 1.5
    np.testing.assert_array_equal(dq & ~np.uint32(4), np.where(wht == 0, 513, 0))

    contributions = []
    for member in members:
        contributions.append(tmp_path / f"{member.name}.npz")
        pixels = member_pixels(member.read(("data", "dq", "var_poisson", "var_rnoise",
                                            "var_flat")), member.group_id, final)
        with PartialWriter(contributions[-1]) as writer:
            writer.finish(drizzle_member(pixels, read_grid(run["work"] / "grid.pkl"), final,
                                         sink=writer))
    window = (40, 170, 55, 230)
    write_i2d(tmp_path / "tile.fits", members, run["work"] / "grid.pkl", final, contributions,
              window)
    with datamodels.ImageModel(str(tmp_path / "tile.fits")) as tile:
        np.testing.assert_array_equal(tile.dq, dq[40:170, 55:230])
