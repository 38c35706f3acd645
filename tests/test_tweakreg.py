"""tweakreg against truth: source lists, relative and absolute alignment, failure paths, SIP.

Data: 4 dithered 512² synthetic NIRCam exposures (seed 3, default density 0.5 per arcsec²,
cosmic rays on) whose written pointings carry injected errors (0.05-0.3" shifts, up to
±0.02° rolls) except exposure 1, which is exact. The error of a member's WCS is measured on
the truth: every true source's pixel position (true gwcs) is mapped through the member's
corrected gwcs and compared with its true RA/Dec.
"""

import json
import logging
import math
from dataclasses import replace
from pathlib import Path

import asdf
import numpy as np
import pytest
from astropy.coordinates import SkyCoord
from astropy.io import fits
from astropy.table import QTable, Table

from image3 import synth, tweakreg
from image3.asn import read_association
from image3.config import schema_defaults
from image3.datamodel import (open_exposure, read_exposure_model, read_wcs, read_wcs_status, sci_shape,
                              save_model, write_wcs)
from image3.errors import ConfigError, InputFileError
from image3.parameters import AlignmentFit, ReferenceStars, SipApproximation, SourceFinding
from image3.refcat import (
    check_abs_refcat,
    custom_catalogs,
    parse_catfile,
    read_reference_catalog,
    read_source_list,
)
from image3.sip import apply_sip, sip_pixel_error
from image3.tweakreg import (ExposureCatalog, ProductAlignment, align_exposures, align_members,
                             align_products, describe_residuals, exposure_sources,
                             find_exposure_sources, match_residuals, read_exposure_catalog,
                             read_sources, report_table)
from truth import truth_error_px

ROOT = Path(__file__).resolve().parents[1]
# The workflow's defaults (the reference's parameter values), so tests follow the schema.
DEFAULTS = schema_defaults()["tweakreg"]
FINDING = SourceFinding.from_config(DEFAULTS)
FIT = AlignmentFit.from_config(DEFAULTS)
STARS = ReferenceStars.from_config(DEFAULTS)


def _exposures(asn: Path) -> list[ExposureCatalog]:
    out = []
    for member in map(str, Table.read(asn.parent / "truth" / "exposures.ecsv")["member"]):
        with open_exposure(asn.parent / synth.cal_filename(member)) as model:
            info = {k: getattr(model.meta.wcsinfo, k) for k in ("v2_ref", "v3_ref", "roll_ref")}
            out.append(ExposureCatalog(member, synth.group_id(member), model.meta.wcs, info,
                                       exposure_sources(model, FINDING)))
    return out


@pytest.fixture(scope="module")
def dithers(tmp_path_factory):
    asn = synth.make_association(tmp_path_factory.mktemp("dithers"), n=4, size=512, seed=3)
    return asn, _exposures(asn)


def _with_sources(exposure: ExposureCatalog, sources: Table) -> ExposureCatalog:
    return ExposureCatalog(exposure.name, exposure.group_id, exposure.wcs, exposure.wcsinfo,
                           sources)


# --------------------------------------------------------------------------------------------
# Relative and absolute alignment against truth


def test_relative_alignment_reaches_0_03_pixel_with_reference_defaults(dithers):
    asn, exposures = dithers
    before = [truth_error_px(asn, e.name, e.wcs) for e in exposures[1:]]
    result = align_exposures(exposures, FIT)
    after = [truth_error_px(asn, e.name, result.wcs[e.name]) for e in exposures[1:]]
    assert result.status == "COMPLETE"
    assert min(before) > 1.0  # the injected errors are several pixels
    # The first exposure is exact and the reference: relative error = absolute error here.
    assert math.sqrt(np.mean(np.square(after))) <= 0.03, after
    assert result.wcs[exposures[0].name] is exposures[0].wcs
    assert result.corrected == {e.name for e in exposures[1:]}
    report = report_table(result)
    assert list(report["status"]) == ["REFERENCE", "SUCCESS", "SUCCESS", "SUCCESS"]
    assert np.all(report["n_matched"][1:] >= FIT.minobj)
    assert np.all(report["rms_arcsec"][1:] < 0.01)


def test_matched_star_residuals_shrink_to_centroid_errors(dithers):
    """The QA sidecar: pairs between each group and the groups before it, through the final
    WCSs. Truth: before alignment the injected 0.05-0.3" errors dominate the offsets of the
    pairs found within the tolerance; after it their RMS is the fit's (< 0.01")."""
    _, exposures = dithers
    result = align_exposures(exposures, FIT)
    after = match_residuals(exposures, result.wcs, FIT)
    before = match_residuals(exposures, {e.name: e.wcs for e in exposures}, FIT)

    def rms(t):
        t = t[~t["clipped"]]
        return math.sqrt(np.mean(np.square(t["d_east_arcsec"]) + np.square(t["d_north_arcsec"])))

    groups = [e.group_id for e in exposures]
    assert set(after["stage"]) == {"relative"} and set(after["group_id"]) == set(groups[1:])
    assert np.count_nonzero(~after["clipped"]) >= 3 * FIT.minobj
    print(f"\nFIGURE residual RMS before {rms(before):.4f}\" after {rms(after):.4f}\" "
          f"({np.count_nonzero(after['clipped'])} of {len(after)} pairs clipped)")
    assert rms(after) < 0.01 < 0.05 < rms(before)
    assert describe_residuals(after).startswith(f"{len(after)} relative pairs, RMS ")


def test_matched_star_residuals_against_a_reference_catalogue(dithers):
    """Absolute rows pair each source with the nearest reference star: a catalogue made of
    the first group's own sources shifted by 0.1" north gives residuals of -0.1" north."""
    _, exposures = dithers
    first = exposures[0]
    ra, dec = first.wcs(first.sources["xcentroid"], first.sources["ycentroid"])
    refcat = Table({"RA": ra, "DEC": dec + 0.1 / 3600.0})
    wcs = {e.name: e.wcs for e in exposures}
    table = match_residuals(exposures[:1], wcs, replace(FIT, abs_tolerance=0.3), refcat)
    assert set(table["stage"]) == {"absolute"} and len(table) == len(first.sources)
    assert not table["clipped"].any()
    # tolerance 10 µas: north on the tangent plane turns slightly across the field
    assert np.allclose(table["d_north_arcsec"], -0.1, atol=1e-5)
    assert np.allclose(table["d_east_arcsec"], 0.0, atol=1e-5)


def test_absolute_alignment_to_truth_stars_within_0_05_pixel(dithers, tmp_path):
    asn, exposures = dithers
    sources = Table.read(asn.parent / "truth" / "sources.ecsv")
    stars = sources[(sources["kind"] == "star") & (sources["flux_ujy"] > 0.1)]
    Table({"ra": stars["ra"], "Dec": stars["dec"]}).write(tmp_path / "ref.ecsv")  # mixed case
    refcat = read_reference_catalog(tmp_path / "ref.ecsv")
    result = align_exposures(exposures, FIT, refcat)
    errors = [truth_error_px(asn, e.name, result.wcs[e.name]) for e in exposures]
    assert result.status == "COMPLETE"
    assert math.sqrt(np.mean(np.square(errors))) <= 0.05, errors
    absolute = [f for f in result.fits if f.stage == "absolute"]
    assert len(absolute) == 1 and absolute[0].applied
    assert all(result.wcs[e.name].name == "FIT-LVL3-ref.ecsv" for e in exposures)


def test_two_detector_exposures_move_as_one_body(tmp_path):
    asn = synth.make_association(tmp_path, n=2, size=512, seed=5, detectors=2)
    exposures = _exposures(asn)
    result = align_exposures(exposures, FIT)
    relative = [f for f in result.fits if f.stage == "relative"]
    assert [len(f.members) for f in relative] == [2, 2]
    assert [f.status for f in relative] == ["REFERENCE", "SUCCESS"]
    moved = [e for e in exposures if e.group_id == relative[1].group_id]
    errors = {e.name: truth_error_px(asn, e.name, result.wcs[e.name]) for e in moved}
    assert max(errors.values()) <= 0.05, errors  # two exposures: ~110 matched sources
    # One rigid motion on the sky explains both detectors' corrections to 1e-4 pixel.
    before, after = [], []
    for e in moved:
        xs, ys = (g.ravel() for g in np.meshgrid(np.linspace(0, 511, 9), np.linspace(0, 511, 9)))
        before.append(np.column_stack(e.wcs(xs, ys)))
        after.append(np.column_stack(result.wcs[e.name](xs, ys)))
    before, after = np.vstack(before), np.vstack(after)
    ra0, dec0 = before.mean(axis=0)
    p = np.column_stack(synth._tangent_offsets(*before.T, ra0, dec0))
    q = np.column_stack(synth._tangent_offsets(*after.T, ra0, dec0))
    design = np.column_stack([p, np.ones(len(p))])
    coeffs, *_ = np.linalg.lstsq(design, q, rcond=None)
    residual_arcsec = np.abs(design @ coeffs - q).max()
    assert residual_arcsec < 1e-4 * 0.031


# --------------------------------------------------------------------------------------------
# Groups that cannot be aligned keep their WCS; the run goes on


def test_group_with_too_few_matches_keeps_its_wcs_with_one_warning(dithers, caplog):
    _, exposures = dithers
    starved = exposures[2]
    inputs = list(exposures)
    inputs[2] = _with_sources(starved, starved.sources[:5])
    with caplog.at_level(logging.INFO):
        result = align_exposures(inputs, FIT)
    assert result.status == "COMPLETE"
    assert result.wcs[starved.name] is starved.wcs
    assert [f.status for f in result.fits] == [
        "REFERENCE", "SUCCESS", "FAILED: not enough matches", "SUCCESS"]
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1 and starved.group_id in warnings[0] and "minobj" in warnings[0]


def test_exposure_without_sources_keeps_its_wcs(dithers, caplog):
    _, exposures = dithers
    inputs = list(exposures)
    inputs[1] = _with_sources(exposures[1], exposures[1].sources[:0])
    with caplog.at_level(logging.WARNING):
        result = align_exposures(inputs, FIT)
    assert result.wcs[exposures[1].name] is exposures[1].wcs
    assert result.fits[1].status.startswith("FAILED")
    assert result.fits[2].applied and result.fits[3].applied
    assert [r.getMessage() for r in caplog.records if exposures[1].group_id in r.getMessage()]


def test_fit_with_rms_above_max_rms_is_not_applied(dithers, caplog):
    _, exposures = dithers
    with caplog.at_level(logging.WARNING):
        result = align_exposures(exposures, replace(FIT, max_rms=1e-4))
    assert all(result.wcs[e.name] is e.wcs for e in exposures)
    assert all(f.status.startswith("REJECTED: RMS") for f in result.fits[1:])
    assert len([r for r in caplog.records if "max_rms" in r.getMessage()]) == 3


def test_whole_relative_result_rejected_when_a_wcs_moves_too_far(dithers, monkeypatch, caplog):
    """The reference's sanity check: any footprint moved by >= 2 (searchrad + tolerance)
    rejects every group's fit (here the limit is lowered below the true corrections)."""
    _, exposures = dithers
    monkeypatch.setattr(tweakreg, "_largest_allowed_move", lambda params: 0.01)
    with caplog.at_level(logging.WARNING):
        result = align_exposures(exposures, FIT)
    assert result.status == "SKIPPED"
    assert all(result.wcs[e.name] is e.wcs for e in exposures)
    assert len(caplog.records) == 1 and "moved by" in caplog.records[0].getMessage()
    assert all(f.status.startswith("REJECTED: whole relative result") for f in result.fits[1:])


def test_single_group_skips_relative_alignment(dithers):
    _, exposures = dithers
    result = align_exposures(exposures[:1], FIT)
    assert result.status == "SKIPPED" and result.fits == []
    assert result.wcs[exposures[0].name] is exposures[0].wcs


def test_absolute_fit_keeps_the_first_members_copy_of_a_repeated_source(dithers):
    """The members' lists are concatenated in the one-body fit: a source seen again by a later
    member is dropped there, so the copy used does not depend on its centroid error."""
    _, exposures = dithers
    first, second = tweakreg._without_repeats(exposures[:2], 0.5)
    assert len(first.sources) == len(exposures[0].sources)
    assert 10 < len(second.sources) < len(exposures[1].sources)
    xy1 = tweakreg._tangent_arcsec(*tweakreg._sky(first), 53.16, -27.78)
    xy2 = tweakreg._tangent_arcsec(*tweakreg._sky(second), 53.16, -27.78)
    assert np.min(np.hypot(*(xy2[:, None, :] - xy1[None, :, :]).transpose(2, 0, 1))) > 0.5


def test_too_few_reference_stars_skips_the_step(dithers):
    _, exposures = dithers
    refcat = Table({"RA": [53.16], "DEC": [-27.78]})
    result = align_exposures(exposures, FIT, refcat)
    assert result.status == "SKIPPED"
    assert all(result.wcs[e.name] is e.wcs for e in exposures)
    # the relative fits were thrown away with it, and the report says so
    assert not any(f.applied for f in result.fits)
    assert sum(f.status == "REJECTED: absolute alignment not done" for f in result.fits) == 3


@pytest.mark.parametrize("prefix", ["", "abs_"])
def test_separation_must_exceed_sqrt2_tolerance(prefix):
    """The reference's rule, checked when the fit parameters are made (once, at parse time in
    the workflow), for both stages."""
    with pytest.raises(ConfigError, match=f"tweakreg.{prefix}separation"):
        AlignmentFit.from_config({**DEFAULTS, f"{prefix}separation": 0.9})


# --------------------------------------------------------------------------------------------
# Source lists


def test_sources_avoid_flagged_pixels_and_stay_inside_the_bounding_box(dithers):
    asn, _ = dithers
    with open_exposure(asn.parent / synth.cal_filename(synth.member_names(1)[0])) as model:
        all_sources = exposure_sources(model, FINDING)
        dq = model.dq.copy()
        model.dq[:, :256] |= 1  # DO_NOT_USE on the left half
        right = exposure_sources(model, FINDING)
        model.dq = dq
        model.meta.wcs.bounding_box = ((99.5, 399.5), (99.5, 399.5))
        boxed = exposure_sources(model, FINDING)
    assert list(all_sources.colnames) == ["id", "xcentroid", "ycentroid", "flux"]
    assert len(right) > 10 and right["xcentroid"].min() > 255
    assert (all_sources["xcentroid"] < 250).sum() > 10
    assert len(boxed) > 5
    for axis in ("xcentroid", "ycentroid"):
        assert boxed[axis].min() > 99.5 and boxed[axis].max() < 399.5


def test_custom_source_lists_and_catfile(tmp_path):
    Table({"x_centroid": [1.5, 2.5], "y_centroid": [3.0, 4.0]}).write(tmp_path / "a.ecsv")
    Table({"x": [7.0], "y": [8.0], "flux": [2.0], "weight": [0.5]}).write(tmp_path / "b.fits")
    a = read_source_list(tmp_path / "a.ecsv")
    assert list(a["id"]) == [1, 2] and list(a["xcentroid"]) == [1.5, 2.5]
    assert np.isnan(a["flux"]).all()
    b = read_source_list(tmp_path / "b.fits")
    assert list(b.colnames) == ["id", "xcentroid", "ycentroid", "flux", "weight"]
    Table({"ra": [1.0]}).write(tmp_path / "bad.ecsv")
    with pytest.raises(InputFileError, match="column"):
        read_source_list(tmp_path / "bad.ecsv")

    cats = tmp_path / "cats"
    cats.mkdir()
    (cats / "c1.ecsv").write_text((tmp_path / "a.ecsv").read_text())
    catfile = tmp_path / "catfile.txt"
    catfile.write_text("# exposure catalogue\nx1_cal.fits cats/c1.ecsv\n\nx2_cal.fits\n")
    assert parse_catfile(catfile) == {"x1_cal.fits": tmp_path / "cats" / "c1.ecsv",
                                      "x2_cal.fits": None}
    members = [("x1", Path("/d/x1_cal.fits"), None), ("x2", Path("/d/x2_cal.fits"), cats / "nope"),
               ("x3", Path("/d/x3_cal.fits"), None)]
    # A catfile decides alone (the ASN's tweakreg_catalog of x2 is ignored).
    assert custom_catalogs(members, str(catfile)) == {
        "x1": tmp_path / "cats" / "c1.ecsv", "x2": None, "x3": None}
    with pytest.raises(InputFileError, match="x2"):
        custom_catalogs(members)
    catfile.write_text("x1_cal.fits a b\n")
    with pytest.raises(ConfigError, match="two columns"):
        parse_catfile(catfile)


def test_reference_catalogue_files(tmp_path):
    Table({"RA": [10.0, np.nan], "dec": [20.0, 21.0]}).write(tmp_path / "r.csv")
    table = read_reference_catalog(tmp_path / "r.csv")
    assert list(table["RA"]) == [10.0] and list(table["DEC"]) == [20.0]
    cat = QTable({"label": [1], "sky_centroid": SkyCoord([30.0], [-5.0], unit="deg")})
    cat.write(tmp_path / "x_cat.ecsv")
    table = read_reference_catalog(tmp_path / "x_cat.ecsv")
    assert table["RA"][0] == pytest.approx(30.0) and table["DEC"][0] == pytest.approx(-5.0)
    Table({"x": [1.0]}).write(tmp_path / "none.fits")
    with pytest.raises(InputFileError, match="neither RA/Dec"):
        read_reference_catalog(tmp_path / "none.fits")
    Table({"ra": [1.0], "RA": [1.0], "dec": [2.0]}).write(tmp_path / "two.ecsv")
    with pytest.raises(InputFileError, match="several"):
        read_reference_catalog(tmp_path / "two.ecsv")


@pytest.mark.parametrize("name", ["GAIADR3", "gaiadr2", "GAIAREFCAT"])
def test_network_catalogues_are_refused_with_one_line(name):
    with pytest.raises(ConfigError) as error:
        check_abs_refcat(name)
    message = str(error.value)
    assert "\n" not in message and "not available offline" in message and "file" in message
    assert check_abs_refcat("") is None


# --------------------------------------------------------------------------------------------
# FITS SIP approximation of the corrected gwcs


def test_sip_in_saved_sci_header_matches_corrected_gwcs_within_0_01_pixel(dithers, tmp_path):
    asn, exposures = dithers
    member = exposures[1].name
    result = align_exposures(exposures, FIT)
    write_wcs(tmp_path / "wcs.pkl", result.wcs[member], status=result.status)
    model = read_exposure_model(asn.parent / synth.cal_filename(member), wcs=tmp_path / "wcs.pkl")
    header = apply_sip(model, SipApproximation.from_config(DEFAULTS))
    assert header["CTYPE1"] == "RA---TAN-SIP" and header["A_ORDER"] >= 1
    saved = save_model(model, tmp_path / f"{member}_cal.fits")
    model.close()
    sci = fits.getheader(saved, "SCI")
    assert "PC1_1" not in sci and "CDELT1" not in sci and sci["CTYPE2"] == "DEC--TAN-SIP"
    error = sip_pixel_error(result.wcs[member], sci, (512, 512))
    assert error < 0.01, error


def test_find_sources_job_writes_the_found_list_and_the_geometry_the_join_reads(tmp_path):
    """find_exposure_sources (the find_sources job): its list equals exposure_sources' on the
    same _cal, its geometry sidecar gives the join the _cal's gwcs (same sky position to
    1e-12 deg) and wcsinfo; a user catalogue is cut to the detector (one row outside dropped)."""
    asn = synth.make_association(tmp_path / "data", n=1, size=256, seed=3)
    cal = next(asn.parent.glob("*_cal.fits"))
    count, origin = find_exposure_sources(cal, tmp_path / "s.ecsv", tmp_path / "g.pkl", FINDING)
    with open_exposure(cal) as model:
        expected = exposure_sources(model, FINDING)
        wcs, v2_ref = model.meta.wcs, model.meta.wcsinfo.v2_ref
    found = read_sources(tmp_path / "s.ecsv")
    assert count == len(found) == len(expected) > 10 and origin == "iraf star finder"
    np.testing.assert_array_equal(found["xcentroid"], expected["xcentroid"])
    joined = read_exposure_catalog(cal, tmp_path / "g.pkl", tmp_path / "s.ecsv", "m", "g")
    assert joined.wcsinfo["v2_ref"] == v2_ref
    np.testing.assert_allclose(joined.wcs(100.0, 50.0), wcs(100.0, 50.0), rtol=0, atol=1e-12)

    catalog = tmp_path / "mine.ecsv"
    Table({"x": [10.0, 120.5, 400.0], "y": [20.0, 30.0, 40.0]}).write(catalog)
    count, origin = find_exposure_sources(cal, tmp_path / "u.ecsv", tmp_path / "g2.pkl", FINDING,
                                          catalog)
    assert count == 2 and origin == f"user catalogue {catalog}"
    assert list(read_sources(tmp_path / "u.ecsv")["xcentroid"]) == [10.0, 120.5]


def test_tweakreg_job_writes_aligned_wcs_sidecars_and_the_report_last(dithers, tmp_path):
    """align_members (the tweakreg job) on find_exposure_sources' files: every later member's
    sidecar gwcs puts the true sources within 0.03 px RMS (the injected errors are > 1 px),
    the first stays the reference, and the report lists the four groups."""
    asn, _ = dithers
    members = []
    for k, cal in enumerate(sorted(asn.parent.glob("*_cal.fits"))):
        row = {"member": cal.name[:-len("_cal.fits")], "group_id": f"g{k}", "cal": cal,
               "geometry": tmp_path / f"{k}.pkl", "sources": tmp_path / f"{k}.ecsv"}
        find_exposure_sources(cal, row["sources"], row["geometry"], FINDING)
        members.append(row)
    wcs_paths = [tmp_path / f"{k}_wcs.pkl" for k in range(len(members))]
    summary = align_members(members, FIT, "", STARS, wcs_paths, tmp_path / "res.ecsv",
                            tmp_path / "refcat.ecsv", tmp_path / "report.ecsv")
    assert summary.startswith("tweakreg COMPLETE: 4 groups, 3 fits applied")
    statuses = [read_wcs_status(path) for path in wcs_paths]
    assert [s["corrected"] for s in statuses] == [False, True, True, True]
    after = [truth_error_px(asn, row["member"], read_wcs(path))
             for row, path in zip(members[1:], wcs_paths[1:])]
    assert math.sqrt(np.mean(np.square(after))) <= 0.03, after
    assert list(Table.read(tmp_path / "report.ecsv")["status"]) == ["REFERENCE", "SUCCESS",
                                                                    "SUCCESS", "SUCCESS"]


def test_bands_of_one_target_share_one_correction_per_exposure(tmp_path):
    """align_products on three bands (issue 28): F200W and F444W taken together (SW and LW of
    the same four exposures: one group id each), F150W in four exposures of its own. One
    correction per exposure (8 groups, not 12 members): the LW member of an exposure moves
    with its SW member, and lands on truth within 5 mas RMS (LW pixels 63 mas; the
    injected pointing errors are > 1 SW pixel, 31 mas)."""
    asns = synth.make_program(tmp_path / "data", n=4, size=512, seed=3,
                              bands=("F200W+F444W", "F150W"), cosmic_rays=False)
    products = []
    for k, asn in enumerate(asns):
        rows = []
        for m in read_association(asn).members:
            row = {"member": m.name, "group_id": m.group_id, "cal": m.path,
                   "geometry": tmp_path / f"{m.name}.pkl", "sources": tmp_path / f"{m.name}.ecsv"}
            find_exposure_sources(m.path, row["sources"], row["geometry"], FINDING)
            rows.append(row)
        products.append(ProductAlignment(rows, [tmp_path / f"{r['member']}_wcs.pkl" for r in rows],
                                         tmp_path / f"res{k}.ecsv", tmp_path / f"ref{k}.ecsv",
                                         tmp_path / f"report{k}.ecsv",
                                         read_association(asn).product[-5:]))
    summary = align_products(products, FIT, "", STARS)
    assert summary.startswith("tweakreg COMPLETE: 3 products, 8 groups, 7 fits applied"), summary
    report = Table.read(tmp_path / "report0.ecsv")
    together = [set(row["members"].split(",")) for row in report if "_02101_" in row["group_id"]]
    assert len(report) == 8 and len(together) == 4  # F200W+F444W exposures: both members each
    assert all({m.split("_")[-1] for m in names} == {"nrcb1", "nrcblong"} for names in together)
    assert sorted(set(report["products"])) == ["f150w", "f200w,f444w"]  # bands of each fit
    lw = dict(zip([r["member"] for r in products[1].members], products[1].wcs_paths))
    errors_mas = [63.0 * truth_error_px(asns[1], name, read_wcs(path)) for name, path in lw.items()]
    assert math.sqrt(np.mean(np.square(errors_mas))) <= 5.0, errors_mas  # measured 1.2 mas


# ------------------------------------------------------------------------------------------
# Mosaics: the joint fit (relative_method auto)


def _truth_residual_mas(asn: Path, wcs: dict) -> dict[str, float]:
    """Per group, the RMS [mas] over a 9 x 9 grid of its members' pixels of (fitted - true)
    sky position, after removing the offset and rotation common to all members."""
    true, fitted, groups = [], [], []
    for name in wcs:
        ny, nx = sci_shape(asn.parent / synth.cal_filename(name))
        x, y = (a.ravel() for a in np.meshgrid(np.linspace(0, nx - 1, 9),
                                               np.linspace(0, ny - 1, 9)))
        with asdf.open(asn.parent / "truth" / f"{name}_wcs.asdf") as af:
            true.append(np.column_stack(af["wcs"](x, y)))
        fitted.append(np.column_stack(wcs[name](x, y)))
        groups += [synth.group_id(name)] * len(x)
    true, fitted, groups = np.vstack(true), np.vstack(fitted), np.array(groups)
    ra0, dec0 = true[0]
    t = np.column_stack(_tangent(true, ra0, dec0))
    f = np.column_stack(_tangent(fitted, ra0, dec0))
    design = np.zeros((2 * len(t), 3))
    design[0::2, 0], design[1::2, 1] = 1.0, 1.0
    design[0::2, 2], design[1::2, 2] = -f[:, 1], f[:, 0]
    common = np.linalg.lstsq(design, (t - f).ravel(), rcond=None)[0]
    left = f + common[:2] + common[2] * np.column_stack([-f[:, 1], f[:, 0]]) - t
    return {g: 1000.0 * float(np.sqrt(np.mean(np.sum(left[groups == g] ** 2, axis=1))))
            for g in dict.fromkeys(groups)}


def _tangent(radec: np.ndarray, ra0: float, dec0: float):
    ra, dec = np.deg2rad(radec.T)
    ra0, dec0 = np.deg2rad(ra0), np.deg2rad(dec0)
    c = np.sin(dec0) * np.sin(dec) + np.cos(dec0) * np.cos(dec) * np.cos(ra - ra0)
    east = np.cos(dec) * np.sin(ra - ra0) / c
    north = (np.cos(dec0) * np.sin(dec) - np.sin(dec0) * np.cos(dec) * np.cos(ra - ra0)) / c
    return np.rad2deg(east) * 3600.0, np.rad2deg(north) * 3600.0


@pytest.fixture(scope="module")
def small_mosaic(tmp_path_factory):
    """A 2 x 2 NIRCam mosaic of 512² pointings, 2 dithers each (8 groups), overlaps of ~10%
    where 5-16 sources are found in both (fewer than minobj = 15), and its source lists."""
    out = tmp_path_factory.mktemp("mosaic")
    asn = synth.make_association(out / "data", n=2, size=512, seed=12, layout="mosaic:2x2",
                                 density=0.5)
    return asn, _catalogs(asn, out)


def _catalogs(asn: Path, out: Path) -> list[ExposureCatalog]:
    exposures = []
    for row in json.loads(asn.read_text())["products"][0]["members"]:
        member = row["expname"][:-len("_cal.fits")]
        cal = asn.parent / synth.cal_filename(member)
        find_exposure_sources(cal, out / f"{member}.ecsv", out / f"{member}.pkl", FINDING)
        exposures.append(read_exposure_catalog(cal, out / f"{member}.pkl", out / f"{member}.ecsv",
                                               member, synth.group_id(member)))
    return exposures


def test_a_mosaic_aligns_every_pointing_to_2_mas_with_the_joint_fit(small_mosaic):
    """Default settings on the 2 x 2 mosaic: the joint fit aligns all 8 groups; each group's
    residual against the true WCS, after the mosaic's common offset and rotation, <= 2 mas
    RMS; the reference's sequential fit aligns one group and leaves the others with errors
    of tens to hundreds of mas."""
    asn, exposures = small_mosaic
    joint = align_exposures(exposures, FIT)
    assert all(f.status in ("SUCCESS", "REFERENCE") for f in joint.fits), \
        [f.status for f in joint.fits]
    residual = _truth_residual_mas(asn, joint.wcs)
    assert max(residual.values()) <= 2.0, residual
    sequential = align_exposures(exposures, replace(FIT, relative_method="sequential"))
    assert max(_truth_residual_mas(asn, sequential.wcs).values()) > 20.0
