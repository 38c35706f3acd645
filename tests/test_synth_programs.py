"""The synthetic sky for whole programs (issue 24): every SIAF aperture, mosaics, bands that share
exposures, and the troubles (misregistration, nebula, variable and moving sources), each checked
against the truth it writes.

Small sizes (256², MIRI's 1032 × 1024 full frame once) and few members keep the file at seconds.
"""

import functools
import json

import asdf
import numpy as np
import pytest
from astropy import units as u
from astropy.coordinates import SkyCoord
from astropy.io import fits
from astropy.table import Table
from stdatamodels.jwst import datamodels

from image3 import synth
from image3.datamodel import check_exposure, open_exposure
from image3.errors import ConfigError
from image3.inspect import inspect_file
from image3.synth import siaf
from workflow import snakemake

SIZE = 256
NIRCAM = [f"NRC{m}{k}" for m in "AB" for k in range(1, 5)] + ["NRCALONG", "NRCBLONG"]


def _truth(asn):
    truth = asn.parent / "truth"
    return Table.read(truth / "sources.ecsv"), Table.read(truth / "exposures.ecsv")


def _true_wcs(asn, member):
    with asdf.open(asn.parent / "truth" / f"{member}_wcs.asdf") as af:
        return af["wcs"]


def _model(asn, member, what="model"):
    return fits.getdata(asn.parent / "truth" / f"{member}_{what}.fits").astype(float)


@pytest.fixture(scope="module")
def program(tmp_path_factory):
    """Both NIRCam modules, one pointing: F150W alone, then F200W + F444W taken together (18 members)."""
    out = tmp_path_factory.mktemp("program")
    return synth.make_program(out, n=1, size=SIZE, seed=3, detectors="AB", bands=("F150W", "F200W+F444W"),
                              truth_images=True, cosmic_rays=False)


@pytest.fixture(scope="module")
def miri(tmp_path_factory):
    """One MIRI F770W full frame (1032 × 1024)."""
    out = tmp_path_factory.mktemp("miri")
    return synth.make_association(out, n=1, size=1024, seed=4, instrument="MIRI", bands=("F770W",),
                                  truth_images=True, cosmic_rays=False)


@pytest.fixture(scope="module")
def niriss(tmp_path_factory):
    """One NIRISS F444W (the pupil CLEARP, filter F444W) 256² exposure."""
    out = tmp_path_factory.mktemp("niriss")
    return synth.make_association(out, n=1, size=SIZE, seed=5, instrument="NIRISS", bands=("F444W",),
                                  truth_images=True, cosmic_rays=False)


def _windowed_centroid(image, x, y, sigma=1.5, iterations=40):
    """Gaussian-weighted centroid iterated to the point of symmetry (unbiased for symmetric sources)."""
    for _ in range(iterations):
        j0, i0 = int(round(y)), int(round(x))
        yy, xx = np.mgrid[j0 - 8 : j0 + 9, i0 - 8 : i0 + 9]
        weight = np.exp(-((xx - x) ** 2 + (yy - y) ** 2) / (2 * sigma**2)) * image[j0 - 8 : j0 + 9, i0 - 8 : i0 + 9]
        x, y = (weight * xx).sum() / weight.sum(), (weight * yy).sum() / weight.sum()
    return x, y


@functools.cache
def _plans(asn):
    """The plans of a program's members, by member, from its settings (truth meta)."""
    meta = Table.read(asn.parent / "truth" / "exposures.ecsv").meta
    plans = synth.plan_members(meta["n"], meta["size"], meta["seed"], meta["wcs_errors"], meta["sky_offsets"],
                               meta["detectors"], layout=synth.parse_layout(meta["layout"]),
                               instrument=meta["instrument"], bands=meta["bands"],
                               misregister=tuple(meta["misregister"]) if meta["misregister"] else None)
    return {p.member: p for p in plans}


def _member_plan(asn, member):
    return _plans(asn)[member]


def _render(asn, member, sources):
    """Noise-free image of ``sources`` as ``member`` saw them (band, time, true wcs)."""
    plan = _member_plan(asn, member)
    return synth.render_sources(synth.seen_by(sources, plan), _true_wcs(asn, member), plan.geometry.shape,
                                synth.psf.band_components(plan.band.pivot_um),
                                plan.geometry.detector.pixel_scale_arcsec)


def _peak_offsets(asn, row, most=8):
    """The noise-free image is the render of the sources; offsets [px] between the true positions
    (true wcs) of up to ``most`` bright stars on the detector and their rendered centroids."""
    sources, _ = _truth(asn)
    member = row["member"]
    model = _model(asn, member) - row["sky_mjysr"]
    assert np.abs(model - _render(asn, member, sources)).max() < 1e-5 * max(1, np.abs(model).max())
    ny, nx = model.shape
    x, y = _true_wcs(asn, member).world_to_pixel_values(np.asarray(sources["ra"]), np.asarray(sources["dec"]))
    flux = np.asarray(sources["flux_ujy"])
    bright = (sources["kind"] == "star") & (flux > np.percentile(flux, 40))
    bright &= (x > 12) & (x < nx - 13) & (y > 12) & (y < ny - 13)
    offsets = []
    for i in np.nonzero(bright)[0][:most]:
        star = _render(asn, member, sources[i : i + 1])
        cx, cy = _windowed_centroid(star, x[i] + 0.3, y[i] - 0.3)
        offsets.append(np.hypot(cx - x[i], cy - y[i]))
    return np.array(offsets)


# --------------------------------------------------------------------------- apertures ---


@pytest.mark.parametrize("detector", NIRCAM + ["MIRIMAGE", "NIS"])
def test_true_positions_land_on_the_rendered_peaks_within_0_02_pixel(detector, program, miri, niriss):
    """Per SIAF aperture: the noise-free image is the render of the truth (1e-5), and the centroids of
    bright stars rendered alone are at their true WCS positions (measured max 1e-4 px)."""
    asn = {"MIRIMAGE": miri, "NIS": niriss}.get(detector, program[0])
    _, exposures = _truth(asn)
    offsets = np.concatenate([_peak_offsets(asn, row) for row in exposures[exposures["detector"] == detector]])
    assert len(offsets) >= 5
    assert offsets.max() < 0.02


def _ref_points(asn, exposures, which):
    """Sky positions of each member's reference pixel through its true or written wcs."""
    points = []
    for row in exposures:
        if which == "true":
            wcs = _true_wcs(asn, row["member"])
        else:
            wcs = datamodels.open(asn.parent / synth.cal_filename(row["member"])).meta.wcs
        geometry = synth.detector_geometry(row["detector"], SIZE)
        points.append(SkyCoord(*wcs(*geometry.ref_pixel), unit="deg"))
    return points


def test_detectors_of_one_exposure_keep_the_siaf_placement_to_0_1_mas(program):
    """For every exposure (true and written wcs): separations of all pairs of the detectors' reference
    points = the SIAF V2Ref/V3Ref separations, and the position angles from the first detector = the
    SIAF's + one rotation, to < 0.1 mas (measured < 1e-6 mas)."""
    _, exposures = _truth(program[0])
    worst = 0.0
    for group in np.unique(exposures["group_id"]):
        rows = exposures[exposures["group_id"] == group]
        assert sorted(rows["detector"]) == sorted(NIRCAM) or sorted(rows["detector"]) == sorted(NIRCAM[:8])
        v = [siaf.aperture(d) for d in rows["detector"]]
        frame = SkyCoord([e["V2Ref"] for e in v], [e["V3Ref"] for e in v], unit="arcsec")
        for which in ("true", "written"):
            sky = _ref_points(program[0], rows, which)
            turns = []
            for i in range(len(rows)):
                for j in range(i + 1, len(rows)):
                    separation = sky[i].separation(sky[j]).to_value(u.mas)
                    expected = frame[i].separation(frame[j]).to_value(u.mas)
                    worst = max(worst, abs(separation - expected))
                    if i == 0:  # angles at one vertex: elsewhere meridians converge differently
                        turn = (sky[0].position_angle(sky[j]) - frame[0].position_angle(frame[j])).wrap_at(180 * u.deg)
                        turns.append((turn.rad, separation))
            turns = np.array(turns)
            # one rotation for all pairs: its spread, as a displacement at each pair's separation
            spread = np.abs(turns[:, 0] - np.median(turns[:, 0])) * turns[:, 1]
            worst = max(worst, spread.max())
    assert worst < 0.1, worst


def test_headers_are_those_of_each_instrument_and_pass_image3s_checks(program, miri, niriss):
    expected = {
        "NRCA1": ("NIRCAM", "F150W", "CLEAR", "NRC_IMAGE", "A", "SHORT"),
        "NRCBLONG": ("NIRCAM", "F444W", "CLEAR", "NRC_IMAGE", "B", "LONG"),
        "MIRIMAGE": ("MIRI", "F770W", None, "MIR_IMAGE", None, None),
        "NIS": ("NIRISS", "F444W", "CLEARP", "NIS_IMAGE", None, None),
    }
    for asn, detector in ((program[0], "NRCA1"), (program[2], "NRCBLONG"), (miri, "MIRIMAGE"), (niriss, "NIS")):
        members = [m["expname"] for m in json.loads(asn.read_text())["products"][0]["members"]]
        _, exposures = _truth(asn)
        row = exposures[[synth.cal_filename(m) in members and d == detector
                         for m, d in zip(exposures["member"], exposures["detector"], strict=True)]][0]
        path = asn.parent / synth.cal_filename(row["member"])
        assert inspect_file(path)["problem"] is None
        with open_exposure(path) as cal:
            check_exposure(cal, path)
            cal.validate()
            meta = cal.meta
            got = (meta.instrument.name, meta.instrument.filter, meta.instrument.pupil, meta.exposure.type,
                   meta.instrument.module, meta.instrument.channel)
            assert got == expected[row["detector"]]
            assert meta.instrument.detector == row["detector"]
            assert meta.wcsinfo.v3yangle == siaf.aperture(row["detector"])["V3IdlYAngle"]
            assert meta.photometry.pixelarea_steradians == pytest.approx(
                cal.meta.wcsinfo.cdelt1**2 * (np.pi / 180) ** 2, rel=2e-3)


def test_miri_full_frame_flags_reference_and_coronagraph_columns(miri):
    """1032 × 1024; columns 0-3 and 1028-1031 REFERENCE_PIXEL|DO_NOT_USE, 4-359 NON_SCIENCE|DO_NOT_USE,
    NaN there; the reference pixel is the SIAF's (692.5, 511.5); sky 8-12 MJy/sr ± a few σ."""
    _, exposures = _truth(miri)
    cal = datamodels.open(miri.parent / synth.cal_filename(exposures["member"][0]))
    assert cal.data.shape == (1024, 1032) and cal.meta.subarray.name == "FULL"
    ref = synth.DQ_REFERENCE_PIXEL | synth.DQ_DO_NOT_USE
    assert np.all(cal.dq[:, :4] & ref == ref) and np.all(cal.dq[:, -4:] & ref == ref)
    assert np.all(cal.dq[:, 4:360] & (synth.DQ_NON_SCIENCE | 1) == synth.DQ_NON_SCIENCE | 1)
    assert np.all(np.isnan(cal.data[:, :360])) and np.isfinite(cal.data[:, 360:1028]).mean() > 0.999
    assert (cal.meta.wcsinfo.crpix1, cal.meta.wcsinfo.crpix2) == (693.5, 512.5)
    assert 7 < exposures["sky_mjysr"][0] < 13


# ------------------------------------------------------------------------------ mosaic ---


@pytest.fixture(scope="module")
def mosaic(tmp_path_factory):
    """A 2 × 2 mosaic of 256² NRCB1 pointings, one exposure each, at 2.5 sources per arcsec²."""
    out = tmp_path_factory.mktemp("mosaic")
    return synth.make_association(out, n=1, size=SIZE, seed=6, layout="mosaic:2x2", density=2.5,
                                  cosmic_rays=False)


def _seen(wcs, ra, dec, shape):
    x, y = wcs.world_to_pixel_values(ra, dec)
    ny, nx = shape
    return (x > -0.5) & (x < nx - 0.5) & (y > -0.5) & (y < ny - 0.5)


def test_mosaic_neighbours_overlap_by_10_percent_holding_5_to_10_stars(mosaic):
    """Side neighbours share 9-11% of their pixels (measured 9.4%); the diagonal ones ~1%;
    at 2.5 sources per arcsec² each side overlap holds 5-10 true stars (fewer than tweakreg's minobj 15)."""
    sources, exposures = _truth(mosaic)
    assert list(exposures["visit"]) == [1, 2, 3, 4]
    wcs = [_true_wcs(mosaic, m) for m in exposures["member"]]
    yy, xx = (v.ravel() for v in np.mgrid[0:SIZE:2, 0:SIZE:2])
    stars = sources[sources["kind"] == "star"]
    ra, dec = np.asarray(stars["ra"]), np.asarray(stars["dec"])
    for a, b in ((0, 1), (2, 3), (0, 2), (1, 3)):
        fraction = _seen(wcs[b], *wcs[a](xx, yy), (SIZE, SIZE)).mean()
        assert 0.09 <= fraction <= 0.11, (a, b, fraction)
        common = (_seen(wcs[a], ra, dec, (SIZE, SIZE)) & _seen(wcs[b], ra, dec, (SIZE, SIZE))).sum()
        assert 5 <= common <= 10, (a, b, common)
    assert _seen(wcs[3], *wcs[0](xx, yy), (SIZE, SIZE)).mean() < 0.02


@pytest.mark.workflow
def test_workflow_runs_a_mosaic_to_its_products(mosaic, tmp_path):
    """The real Snakefile on the 2 × 2 mosaic (overlaps below tweakreg's minobj): the _i2d covers the four
    pointings (≥ 95% of its pixels finite: 2 × 0.9 × 256 pixels a side) and the catalogue has sources."""
    snakemake(tmp_path, "--cores", "2", config={"asn": mosaic, "output_dir": "out"})
    product = json.loads(mosaic.read_text())["products"][0]["name"]
    with datamodels.open(tmp_path / "out" / f"{product}_i2d.fits") as i2d:
        assert np.isfinite(i2d.data).mean() >= 0.95
        assert min(i2d.data.shape) >= 1.8 * SIZE
    assert len(Table.read(tmp_path / "out" / f"{product}_cat.ecsv")) > 50


# ----------------------------------------------------------------------------- program ---


def _attitude_error(row):
    """(east, north) [arcsec] and roll [deg] of written − true attitude at NRCA1's reference point."""
    a = siaf.aperture("NRCA1")
    out = []
    for which in ("true", "written"):
        here = synth.Pointing(row[f"ra_ref_{which}"], row[f"dec_ref_{which}"], row[f"roll_ref_{which}"])
        out.append(synth.pointing_at(a["V2Ref"], a["V3Ref"], row["v2_ref"], row["v3_ref"], here))
    true, written = (SkyCoord(p.ra_ref, p.dec_ref, unit="deg") for p in out)
    east, north = (d.to_value(u.arcsec) for d in true.spherical_offsets_to(written))
    return np.array([east, north, out[1].roll_ref - out[0].roll_ref])


def test_bands_share_pointing_errors_exactly_when_they_share_exposures(program):
    """The 10 F200W and F444W members of their exposure share one attitude error (1e-6", 1e-6°), not
    zero; F150W's exposure (the program's first) at the same pointing: same true attitude, no error."""
    _, exposures = _truth(program[0])
    first, second = (exposures[exposures["activity"] == a] for a in (1, 2))
    assert set(first["band"]) == {"F150W"} and set(second["band"]) == {"F200W", "F444W"}
    assert len(first) == 8 and len(second) == 10
    assert len(set(first["group_id"])) == len(set(second["group_id"])) == 1
    errors = {a: np.array([_attitude_error(r) for r in rows]) for a, rows in ((1, first), (2, second))}
    for each in errors.values():
        assert np.abs(each - each[0]).max() < 1e-6
    assert np.abs(errors[1]).max() < 1e-9 and np.hypot(*errors[2][0][:2]) >= 0.05
    a1, a2 = (rows[rows["detector"] == "NRCA1"][0] for rows in (first, second))
    assert (a1["ra_ref_true"], a1["dec_ref_true"]) == pytest.approx((a2["ra_ref_true"], a2["dec_ref_true"]), abs=1e-12)


def test_one_asn_per_band_with_the_reference_product_name(program):
    names = [p.name for p in program]
    assert names == [f"jw99999-o001_image3_{i:05d}_asn.json" for i in (1, 2, 3)]
    _, exposures = _truth(program[0])
    for path, band, element in zip(program, ("F150W", "F200W", "F444W"),
                                   ("clear-f150w", "clear-f200w", "clear-f444w"), strict=True):
        asn = json.loads(path.read_text())
        assert asn["asn_id"] == "o001"
        assert asn["products"][0]["name"] == f"jw99999-o001_t001_nircam_{element}"
        members = [m["expname"] for m in asn["products"][0]["members"]]
        assert members == [synth.cal_filename(m) for m in exposures["member"][exposures["band"] == band]]


def test_reference_files_and_fluxes_cover_every_band(program):
    truth = program[0].parent / "truth"
    table = datamodels.NrcImgApcorrModel(truth / "apcorr.fits").apcorr_table
    assert set(table["filter"]) == {"F200W", "F444W", "F150W"}
    radius_90 = {f: table["radius"][(table["filter"] == f) & np.isclose(table["eefraction"], 0.9)][0]
                 for f in ("F150W", "F200W", "F444W")}
    # radii in native pixels: F444W's PSF is 2.2x wider than F200W's on pixels 2.05x larger
    assert radius_90["F150W"] < radius_90["F200W"] < 1.2 * radius_90["F444W"]
    offsets = datamodels.ABVegaOffsetModel(truth / "abvegaoffset.asdf").abvega_offset
    assert list(offsets["filter"]) == ["F150W", "F200W", "F444W"]
    sources, _ = _truth(program[0])
    assert np.all(sources["flux_ujy"] == sources["flux_f150w_ujy"])
    ratio = synth.sources.noise_ratio(synth.band("NIRCAM", "F200W")) / synth.sources.noise_ratio(
        synth.band("NIRCAM", "F150W"))
    colour = np.log10(sources["flux_f200w_ujy"] / sources["flux_f150w_ujy"] / ratio)
    assert 0.1 < np.std(colour) < 0.2
    for band in ("f200w", "f444w", "f150w"):
        assert json.loads((truth / f"psf_{band}.json").read_text())["filter"] == band.upper()


def test_bad_program_arguments_are_config_errors(tmp_path):
    for kwargs, match in (({"bands": ("F770W",)}, "unknown band"),
                          ({"bands": ("F200W+F150W",)}, "one band per channel"),
                          ({"layout": "mosaic:2"}, "layout"),
                          ({"instrument": "MIRI", "bands": ("F770W",), "detectors": "AB"}, "modules"),
                          ({"misregister": (9, 1.0, 0.1)}, "misregister")):
        with pytest.raises(ConfigError, match=match):
            synth.make_program(tmp_path, n=1, size=SIZE, **kwargs)


# ---------------------------------------------------------------------------- troubles ---


@pytest.fixture(scope="module")
def troubles(tmp_path_factory):
    """3 dithers of 256² NRCB1 F200W: exposure 2 misregistered by 1" and 0.1°, a nebula of 5 σ, two
    variable stars and one mover."""
    out = tmp_path_factory.mktemp("troubles")
    return synth.make_association(out, n=3, size=SIZE, seed=8, misregister=(2, 1.0, 0.1), nebula=5.0,
                                  variables=2, movers=1, truth_images=True, cosmic_rays=False)


def test_misregistered_member_keeps_the_chosen_error(troubles):
    """Written − true at its reference pixel: 1.000" (1 mas) and 0.1° (2e-5°), flagged; others ≤ 0.3"."""
    _, exposures = _truth(troubles)
    centre = (SIZE - 1) / 2
    for row in exposures:
        written = datamodels.open(troubles.parent / synth.cal_filename(row["member"])).meta.wcs
        true = _true_wcs(troubles, row["member"])
        a, b = (SkyCoord(*w(centre, centre), unit="deg") for w in (true, written))
        shift = a.separation(b).to_value(u.arcsec)
        turn = (b.position_angle(SkyCoord(*written(centre, centre + 100), unit="deg"))
                - a.position_angle(SkyCoord(*true(centre, centre + 100), unit="deg"))).wrap_at(180 * u.deg).deg
        if row["exposure"] == 2:
            assert row["misregistered"]
            assert shift == pytest.approx(1.0, abs=1e-3) and turn == pytest.approx(0.1, abs=2e-5)
            assert np.hypot(row["wcs_dx_arcsec"], row["wcs_dy_arcsec"]) == pytest.approx(1.0, abs=1e-3)
        else:
            assert not row["misregistered"] and shift <= 0.3


def _isolated(asn, row, sources, source_id):
    """The member's noise-free image less its sky, nebula and every source but ``source_id``."""
    others = _render(asn, row["member"], sources[sources["id"] != source_id])
    return _model(asn, row["member"]) - row["sky_mjysr"] - _model(asn, row["member"], "nebula") - others


def test_nebula_is_in_the_pixels_with_its_amplitude_and_power_law(troubles):
    """model − sky − sources = the member's nebula (1e-5 MJy/sr); the grid pattern has unit rms and
    minimum 0, the member's nebula is 5 σ × pattern; the power spectrum falls as k^-3 (slope ± 0.15)."""
    sources, exposures = _truth(troubles)
    row = exposures[0]
    nebula = _model(troubles, row["member"], "nebula")
    rest = _model(troubles, row["member"]) - row["sky_mjysr"] - _render(troubles, row["member"], sources)
    assert np.abs(rest - nebula).max() < 1e-5
    assert row["nebula_mjysr"] == pytest.approx(5 * synth.nominal_noise_sigma(0.2, synth.band("NIRCAM", "F200W")))
    pattern = fits.getdata(troubles.parent / "truth" / "nebula.fits").astype(float)
    assert pattern.std() == pytest.approx(1.0, abs=1e-3) and pattern.min() == pytest.approx(0.0, abs=1e-6)
    assert nebula.std() > 0.5 * row["noise_sigma_mjysr"]
    n = pattern.shape[0]
    power = np.abs(np.fft.fft2(pattern - pattern.mean())) ** 2
    k = np.hypot(*np.meshgrid(np.fft.fftfreq(n), np.fft.fftfreq(n)))
    bins = np.geomspace(4 / n, 0.25, 12)
    which = np.digitize(k, bins)
    kk = [k[which == i].mean() for i in range(1, len(bins))]
    pp = [power[which == i].mean() for i in range(1, len(bins))]
    slope = np.polyfit(np.log(kk), np.log(pp), 1)[0]
    assert slope == pytest.approx(-3.0, abs=0.15)


def test_variable_star_changes_flux_between_exposures_as_recorded(troubles):
    """The epochs' fluxes differ between exposures (> 5%); Σ (model − sky − nebula − other sources) × Ω
    around the star = the recorded flux of that exposure (0.5%)."""
    sources, exposures = _truth(troubles)
    epochs = Table.read(troubles.parent / "truth" / "epochs.ecsv")
    variable = sources[sources["variable"]]
    assert len(variable) == 2
    checked = 0
    for star in variable:
        rows = epochs[epochs["id"] == star["id"]]
        assert np.ptp(rows["flux_ujy"]) / np.mean(rows["flux_ujy"]) > 0.05
        for epoch in rows:
            if not (40 < epoch["x"] < SIZE - 41 and 40 < epoch["y"] < SIZE - 41):
                continue
            row = exposures[exposures["member"] == epoch["member"]][0]
            alone = _isolated(troubles, row, sources, star["id"])
            cal = datamodels.open(troubles.parent / synth.cal_filename(row["member"]))
            yy, xx = np.mgrid[:SIZE, :SIZE]
            aperture = np.hypot(xx - epoch["x"], yy - epoch["y"]) < 40
            flux = (alone * cal.area * cal.meta.photometry.pixelarea_steradians)[aperture].sum() * 1e12
            assert flux == pytest.approx(epoch["flux_ujy"], rel=5e-3)
            checked += 1
    assert checked >= 2


def test_mover_moves_along_its_track_between_exposures(troubles):
    """Recorded mid-exposure positions advance by rate × Δt along the direction (1 mas); the trail's
    flux-weighted centroid in the pixels is the recorded position (0.05 px)."""
    sources, exposures = _truth(troubles)
    epochs = Table.read(troubles.parent / "truth" / "epochs.ecsv")
    mover = sources[sources["moving"]][0]
    rows = epochs[epochs["id"] == mover["id"]]
    points = SkyCoord(rows["ra"], rows["dec"], unit="deg")
    for i in range(1, len(rows)):
        hours = (rows["mid_mjd"][i] - rows["mid_mjd"][0]) * 24
        assert points[0].separation(points[i]).to_value(u.arcsec) == pytest.approx(
            mover["rate_arcsec_h"] * hours, abs=1e-3)
        assert points[0].position_angle(points[i]).deg == pytest.approx(mover["direction_deg"], abs=0.01)
    inside = 0
    for epoch in rows:
        if not (60 < epoch["x"] < SIZE - 61 and 60 < epoch["y"] < SIZE - 61):
            continue
        row = exposures[exposures["member"] == epoch["member"]][0]
        trail = _isolated(troubles, row, sources, mover["id"])
        yy, xx = np.mgrid[:SIZE, :SIZE]
        assert (trail * xx).sum() / trail.sum() == pytest.approx(epoch["x"], abs=0.05)
        assert (trail * yy).sum() / trail.sum() == pytest.approx(epoch["y"], abs=0.05)
        inside += 1
    assert inside >= 1


def test_command_line_help_names_the_program_options(capsys):
    with pytest.raises(SystemExit):
        synth.main(["--help"])
    text = capsys.readouterr().out
    for option in ("--layout", "--bands", "--instrument", "--misregister", "--nebula", "--variables", "--movers"):
        assert option in text
