"""Tests of the synthetic data generator: the truth it writes must be exact.

Each test names the truth it checks and its tolerance. Small 256² exposures
keep the whole file at a few seconds per generated association.
"""

import json

import asdf
import numpy as np
from scipy.spatial import cKDTree
import pytest
import tweakwcs
from astropy import units as u
from astropy.coordinates import SkyCoord
from astropy.io import fits
from astropy.stats import sigma_clipped_stats
from astropy.table import Table
from stdatamodels.jwst import datamodels

from image3 import synth
from image3.synth import psf
from image3.errors import ConfigError

SIZE = 256


@pytest.fixture(scope="module")
def association(tmp_path_factory):
    """Three 256² exposures with truth images, through NRCB1's SIAF distortion."""
    out = tmp_path_factory.mktemp("synth")
    asn = synth.make_association(out, n=3, size=SIZE, seed=7, truth_images=True)
    return asn


def _load(asn, member):
    """(cal model, true wcs, noise-free model image, cosmic-ray image) of a member."""
    truth = asn.parent / "truth"
    cal = datamodels.open(asn.parent / synth.cal_filename(member))
    with asdf.open(truth / f"{member}_wcs.asdf") as af:
        true_wcs = af["wcs"]
    model = fits.getdata(truth / f"{member}_model.fits").astype(float)
    cr = fits.getdata(truth / f"{member}_cr.fits").astype(float)
    return cal, true_wcs, model, cr


def _truth(asn):
    truth = asn.parent / "truth"
    return Table.read(truth / "sources.ecsv"), Table.read(truth / "exposures.ecsv")


# ---------------------------------------------------------------- naming ---


def test_names_follow_the_jwst_rules():
    assert synth.member_names(2) == ["jw99999001001_02101_00001_nrcb1", "jw99999001001_02101_00002_nrcb1"]
    assert synth.member_names(1, detectors=2) == [
        "jw99999001001_02101_00001_nrcb1",
        "jw99999001001_02101_00001_nrcb2",
    ]
    assert synth.asn_filename() == "jw99999-o001_image3_asn.json"
    assert synth.PRODUCT_NAME == "jw99999-o001_t001_nircam_clear-f200w"
    with pytest.raises(ConfigError):
        synth.member_names(2, detectors=3)


def test_association_lists_every_member(association):
    asn = json.loads(association.read_text())
    assert association.name == synth.asn_filename()
    assert (asn["asn_type"], asn["asn_id"]) == ("image3", "o001")
    assert asn["products"][0]["name"] == synth.PRODUCT_NAME
    members = asn["products"][0]["members"]
    assert [m["expname"] for m in members] == [f"{m}_cal.fits" for m in synth.member_names(3)]
    assert {m["exptype"] for m in members} == {"science"}


def test_invalid_arguments_are_config_errors(tmp_path):
    with pytest.raises(ConfigError, match="size"):
        synth.make_association(tmp_path, n=1, size=128)
    with pytest.raises(ConfigError, match="exposures"):
        synth.make_association(tmp_path, n=0, size=256)


# ------------------------------------------------------------- cal files ---


def test_cal_files_open_validate_and_carry_image3_metadata(association):
    sources, exposures = _truth(association)
    for row in exposures:
        cal, _, _, _ = _load(association, row["member"])
        cal.validate()
        assert isinstance(cal, datamodels.ImageModel)
        for name in ("data", "err", "var_poisson", "var_rnoise", "var_flat", "area"):
            array = getattr(cal, name)
            assert (array.dtype.kind, array.dtype.itemsize, array.shape) == ("f", 4, (SIZE, SIZE))
        assert (cal.dq.dtype.kind, cal.dq.dtype.itemsize) == ("u", 4)
        meta = cal.meta
        assert (meta.instrument.name, meta.instrument.detector, meta.instrument.filter) == (
            "NIRCAM",
            "NRCB1",
            "F200W",
        )
        assert (meta.instrument.pupil, meta.exposure.type, meta.bunit_data) == (
            "CLEAR",
            "NRC_IMAGE",
            "MJy/sr",
        )
        obs = meta.observation
        group = f"jw{obs.program_number}{obs.observation_number}{obs.visit_number}_{obs.visit_group}"
        group += f"{obs.sequence_id}{obs.activity_id}_{obs.exposure_number}"
        assert group == row["group_id"]
        assert meta.filename == synth.cal_filename(row["member"])
        assert meta.photometry.pixelarea_steradians == pytest.approx(
            psf.NATIVE_PIXEL_SCALE_ARCSEC**2 * 2.35044e-11, rel=1e-3
        )
        assert meta.cal_step.flat_field == meta.cal_step.photom == "COMPLETE"
        # AREA is 1 at the reference pixel and follows the distortion (a few 0.1 % over 256 px).
        centre = SIZE // 2
        assert cal.area[centre - 1 : centre + 1, centre - 1 : centre + 1].mean() == pytest.approx(
            1.0, abs=2e-4
        )
        assert meta.wcsinfo.s_region.startswith("POLYGON ICRS ")
        assert len(meta.wcsinfo.s_region.split()) == 10
        assert meta.wcs.available_frames == ["detector", "v2v3", "v2v3vacorr", "world"]


def test_tweakwcs_can_correct_the_written_wcs(association):
    """JWSTWCSCorrector accepts the file's wcs and wcsinfo and moves the sky by the applied shift."""
    _, exposures = _truth(association)
    cal, _, _, _ = _load(association, exposures["member"][1])
    info = cal.meta.wcsinfo
    corrector = tweakwcs.JWSTWCSCorrector(
        cal.meta.wcs, {"v2_ref": info.v2_ref, "v3_ref": info.v3_ref, "roll_ref": info.roll_ref}
    )
    corrector.set_correction(shift=[0.1, 0.0])
    assert "v2v3corr" in corrector.wcs.available_frames
    before = SkyCoord(*cal.meta.wcs(100.0, 100.0), unit="deg")
    after = SkyCoord(*corrector.wcs(100.0, 100.0), unit="deg")
    assert before.separation(after).to_value(u.arcsec) == pytest.approx(0.1, rel=1e-3)


# ----------------------------------------------------------------- truth ---


def _windowed_centroid(image, x, y, sigma=1.5, iterations=30):
    """Gaussian-weighted centroid iterated to the point of symmetry (unbiased for symmetric sources)."""
    for _ in range(iterations):
        j0, i0 = int(round(y)), int(round(x))
        yy, xx = np.mgrid[j0 - 8 : j0 + 9, i0 - 8 : i0 + 9]
        weight = (
            np.exp(-((xx - x) ** 2 + (yy - y) ** 2) / (2 * sigma**2))
            * image[j0 - 8 : j0 + 9, i0 - 8 : i0 + 9]
        )
        x, y = (weight * xx).sum() / weight.sum(), (weight * yy).sum() / weight.sum()
    return x, y


def test_true_positions_land_on_the_rendered_peaks(association):
    """Isolated bright stars: windowed centroid on the noise-free image = true WCS position, < 0.02 px."""
    sources, exposures = _truth(association)
    errors = []
    for row in exposures:
        _, true_wcs, model, _ = _load(association, row["member"])
        x, y = true_wcs.world_to_pixel_values(np.asarray(sources["ra"]), np.asarray(sources["dec"]))
        flux = np.asarray(sources["flux_ujy"])
        for i in np.nonzero((sources["kind"] == "star") & (flux > 0.05))[0]:
            distance = np.hypot(x - x[i], y - y[i])
            distance[i] = np.inf
            # Isolated: nothing within 10 px, nothing brighter than half of it within 30 px.
            crowded = distance.min() < 10 or np.any((distance < 30) & (flux > 0.5 * flux[i]))
            if crowded or not (12 < x[i] < SIZE - 13 and 12 < y[i] < SIZE - 13):
                continue
            cx, cy = _windowed_centroid(model - row["sky_mjysr"], x[i] + 0.3, y[i] - 0.3)
            errors.append(np.hypot(cx - x[i], cy - y[i]))
    assert len(errors) >= 6
    assert np.max(errors) < 0.02
    assert np.median(errors) < 0.002


def test_model_is_sky_plus_sources_and_a_star_holds_its_flux(association):
    """model − sky = rendered sources (float32 rounding); Σ SB × AREA × PIXAR_SR over a star = flux (0.5%)."""
    sources, exposures = _truth(association)
    row = exposures[1]
    cal, true_wcs, model, _ = _load(association, row["member"])
    rendered = synth.render_sources(sources, true_wcs, SIZE)
    assert np.allclose(model - row["sky_mjysr"], rendered, rtol=1e-6, atol=1e-6)

    x, y = true_wcs.world_to_pixel_values(np.asarray(sources["ra"]), np.asarray(sources["dec"]))
    inside = (x > 40) & (x < SIZE - 41) & (y > 40) & (y < SIZE - 41)
    solid_angle = cal.area.astype(float) * cal.meta.photometry.pixelarea_steradians
    yy, xx = np.mgrid[:SIZE, :SIZE]
    for i in np.nonzero(inside & (sources["kind"] == "star"))[0][:5]:
        alone = (
            model
            - row["sky_mjysr"]
            - synth.render_sources(sources[np.arange(len(sources)) != i], true_wcs, SIZE)
        )
        aperture = np.hypot(xx - x[i], yy - y[i]) < 40
        assert (alone * solid_angle)[aperture].sum() * 1e12 == pytest.approx(sources["flux_ujy"][i], rel=5e-3)


def test_render_conserves_flux_and_places_sources_exactly():
    """One star and one galaxy alone: Σ SB × Ω_pix = flux (1e-4), star centroid = true position (0.002 px)."""
    plan = synth.plan_members(1, SIZE, seed=3)[0]
    wcs = synth.exposure_wcs(plan.geometry, plan.true_pointing)
    ra, dec = wcs([100.37, 150.0], [140.81, 128.0])
    sources = Table(
        {
            "ra": ra,
            "dec": dec,
            "flux_ujy": [2.0, 5.0],
            "kind": ["star", "galaxy"],
            "r_half_arcsec": [0.0, 0.2],
            "sersic_n": [0.0, 4.0],
            "ellipticity": [0.0, 0.5],
            "theta_deg": [0.0, 30.0],
        }
    )
    solid_angle = plan.geometry.area.astype(float) * plan.geometry.pixar_sr
    for i in range(2):
        image = synth.render_sources(sources[i : i + 1], wcs, SIZE)
        assert (image * solid_angle).sum() * 1e12 == pytest.approx(sources["flux_ujy"][i], rel=1e-4)
    star = synth.render_sources(sources[:1], wcs, SIZE)
    cx, cy = _windowed_centroid(star, 100.0, 141.0)
    assert np.hypot(cx - 100.37, cy - 140.81) < 0.002


def test_galaxy_mixtures_have_unit_flux_and_half_light_radius():
    for n in synth.SERSIC_MIXTURES:
        sigma, fraction = synth.sersic_mixture(n)
        assert fraction.sum() == pytest.approx(1.0, abs=1e-12)
        assert np.sum(fraction * (1 - np.exp(-1 / (2 * sigma**2)))) == pytest.approx(0.5, abs=1e-9)


def test_noise_matches_the_written_variances(association):
    """(cal − model − CR) / ERR has unit std (2%) and zero mean; VAR_* follow their stated formulas."""
    _, exposures = _truth(association)
    for row in exposures:
        cal, _, model, cr = _load(association, row["member"])
        good = np.isfinite(cal.data)
        pull = ((cal.data - model - cr) / cal.err)[good]
        assert pull.std() == pytest.approx(1.0, abs=0.02)
        assert abs(pull.mean()) < 0.02
        gain = row["electrons_per_mjysr"]
        assert np.allclose(cal.var_poisson[good], model[good] / gain, rtol=1e-5)
        assert np.allclose(cal.var_flat[good], (row["flat_error"] * model[good]) ** 2, rtol=1e-5)
        readnoise = np.sqrt(cal.var_rnoise[good]) * gain
        assert readnoise.min() >= row["readnoise_e"] * (1 - row["readnoise_spread"]) * (1 - 1e-6)
        assert readnoise.max() <= row["readnoise_e"] * (1 + row["readnoise_spread"]) * (1 + 1e-6)
        total = cal.var_poisson + cal.var_rnoise + cal.var_flat
        assert np.allclose(cal.err[good] ** 2, total[good], rtol=1e-5)
        assert np.all(cal.var_flat[good] > 0)
        # Blank sky: the clipped std of cal − model is the written ERR there.
        blank = good & (model - row["sky_mjysr"] < 0.1 * row["noise_sigma_mjysr"]) & (cr == 0)
        _, _, std = sigma_clipped_stats((cal.data - model)[blank])
        assert std == pytest.approx(np.median(cal.err[blank]), rel=0.03)
        assert np.median(cal.err[blank]) == pytest.approx(row["noise_sigma_mjysr"], rel=0.03)


def test_bad_pixels_are_nan_and_flagged(association):
    _, exposures = _truth(association)
    cal, _, _, cr = _load(association, exposures["member"][0])
    bad = (cal.dq & synth.DQ_DO_NOT_USE) > 0
    assert 0 < bad.sum() < 50
    assert set(np.unique(cal.dq[bad])) <= {synth.DQ_HOT | 1, synth.DQ_DEAD | 1}
    for name in ("data", "err", "var_poisson", "var_rnoise", "var_flat"):
        assert np.all(np.isnan(getattr(cal, name)[bad]))
        assert np.all(np.isfinite(getattr(cal, name)[~bad]))
    assert np.all(cr[bad] == 0)


def test_cosmic_rays_are_where_the_truth_says_and_unflagged(association):
    """At CR pixels cal − model = CR amplitude (within 6 σ); ~1e-3 of pixels hit; 3-1000 σ; DQ clean."""
    _, exposures = _truth(association)
    peaks = []
    for row in exposures:
        cal, _, model, cr = _load(association, row["member"])
        hit = cr != 0
        assert hit.mean() == pytest.approx(row["cr_pixel_fraction"])
        assert 3e-4 < hit.mean() < 3e-3
        residual = (cal.data - model - cr)[hit] / cal.err[hit]
        assert np.all(np.abs(residual) < 6)
        assert np.all(cal.dq[hit] == 0)
        peaks.append((cr / cal.err)[hit])
    peaks = np.concatenate(peaks)
    assert peaks.max() <= 1000 * (1 + 1e-5)
    assert (peaks >= 10).sum() > 10 and ((peaks > 3) & (peaks < 10)).sum() > 3


def test_source_density_and_dynamic_range(association):
    """Stars at the stated density, S/N (r = 2 px, noise-free) from < 20 to > 100, bright peaks
    (> 50 × ERR) present, a quarter of the stars isolated (no neighbour within 1")."""
    sources, exposures = _truth(association)
    row = exposures[0]
    cal, true_wcs, model, _ = _load(association, row["member"])
    signal = model - row["sky_mjysr"]
    variance = np.nan_to_num(cal.err.astype(float) ** 2, nan=np.nanmedian(cal.err) ** 2)
    x, y = true_wcs.world_to_pixel_values(np.asarray(sources["ra"]), np.asarray(sources["dec"]))
    yy, xx = np.mgrid[:SIZE, :SIZE]
    snr, peak_ratio = [], []
    for i in np.nonzero(sources["kind"] == "star")[0]:
        if 3 < x[i] < SIZE - 4 and 3 < y[i] < SIZE - 4:
            aperture = np.hypot(xx - x[i], yy - y[i]) <= 2
            snr.append(signal[aperture].sum() / np.sqrt(variance[aperture].sum()))
            j, k = int(round(y[i])), int(round(x[i]))
            peak_ratio.append(signal[j, k] / np.sqrt(variance[j, k]))
    snr = np.array(snr)
    area_arcsec2 = (SIZE * psf.NATIVE_PIXEL_SCALE_ARCSEC) ** 2
    assert len(snr) / area_arcsec2 == pytest.approx(synth.DEFAULT_DENSITY_PER_ARCSEC2 / 2, rel=0.3)
    assert (snr >= 20).sum() >= 0.5 * len(snr)
    assert snr.min() < 20 and snr.max() > 100
    assert (np.array(peak_ratio) > 50).sum() >= 1
    galaxies = sources["kind"] == "galaxy"
    assert 0.7 < galaxies.sum() / (~galaxies).sum() < 1.4
    dec0 = np.deg2rad(np.mean(sources["dec"]))
    xy = np.column_stack([np.asarray(sources["ra"]) * np.cos(dec0), np.asarray(sources["dec"])])
    nearest = cKDTree(xy * 3600).query(xy * 3600, k=2)[0][:, 1]
    isolated = (nearest > 1.0)[np.asarray(sources["kind"] == "star")]
    assert isolated.mean() > 0.2


# ------------------------------------------------------------ wcs errors ---


def test_written_wcs_differs_from_truth_by_the_recorded_error(association):
    """At each reference pixel, written − true position = recorded (dx, dy) within 1 mas; exposure 1 exact."""
    _, exposures = _truth(association)
    centre = (SIZE - 1) / 2
    for row in exposures:
        cal, true_wcs, _, _ = _load(association, row["member"])
        true = SkyCoord(*true_wcs(centre, centre), unit="deg")
        written = SkyCoord(*cal.meta.wcs(centre, centre), unit="deg")
        dx, dy = (d.to_value(u.arcsec) for d in true.spherical_offsets_to(written))
        assert dx == pytest.approx(row["wcs_dx_arcsec"], abs=1e-3)
        assert dy == pytest.approx(row["wcs_dy_arcsec"], abs=1e-3)
        # The written sky is rotated by wcs_rot_deg in position angle.
        true_up = SkyCoord(*true_wcs(centre, centre + 100), unit="deg")
        written_up = SkyCoord(*cal.meta.wcs(centre, centre + 100), unit="deg")
        turn = (written.position_angle(written_up) - true.position_angle(true_up)).wrap_at(180 * u.deg).deg
        assert turn == pytest.approx(row["wcs_rot_deg"], abs=2e-5)
        assert cal.meta.wcsinfo.ra_ref == pytest.approx(row["ra_ref_written"], abs=1e-12)
        shift = np.hypot(row["wcs_dx_arcsec"], row["wcs_dy_arcsec"])
        if row["exposure"] == 1:
            assert shift == 0 and row["wcs_rot_deg"] == 0
            corners = np.array([[-0.5, SIZE - 0.5], [-0.5, SIZE - 0.5]])
            assert np.allclose(true_wcs(*corners), cal.meta.wcs(*corners), rtol=0, atol=1e-12)
        else:
            assert 0.05 <= shift <= 0.3 and abs(row["wcs_rot_deg"]) <= 0.02


# ------------------------------------------------------------------ flags ---


def test_flags_remove_what_they_say_and_nothing_else(tmp_path):
    """Same seed: without CRs cal differs by exactly the CR image; without WCS errors only the WCS changes."""
    full = synth.make_association(tmp_path / "full", n=2, size=SIZE, seed=11)
    bare = synth.make_association(
        tmp_path / "bare", n=2, size=SIZE, seed=11, cosmic_rays=False, wcs_errors=False
    )
    flat_sky = synth.make_association(tmp_path / "flat", n=2, size=SIZE, seed=11, sky_offsets=False)
    _, exposures = _truth(bare)
    assert np.all(exposures["wcs_dx_arcsec"] == 0) and np.all(exposures["wcs_rot_deg"] == 0)
    assert np.all(exposures["cr_events"] == 0)
    _, flat_rows = _truth(flat_sky)
    assert np.all(flat_rows["sky_mjysr"] == flat_rows["sky_mjysr"][0])
    assert np.all(flat_rows["sky_offset_sigma"] == 0)
    _, full_rows = _truth(full)
    offsets = np.abs(full_rows["sky_offset_sigma"])
    assert np.all((offsets >= 2) & (offsets <= 8))
    for member in synth.member_names(2):
        with_cr = datamodels.open(full.parent / synth.cal_filename(member))
        without = datamodels.open(bare.parent / synth.cal_filename(member))
        cr = fits.getdata(full.parent / "truth" / f"{member}_cr.fits")
        assert not np.any(fits.getdata(bare.parent / "truth" / f"{member}_cr.fits"))
        good = np.isfinite(with_cr.data)
        rounding = 1e-6 + 2e-7 * (np.abs(with_cr.data) + np.abs(without.data))  # float32 storage
        assert np.all(np.abs(with_cr.data - without.data - cr)[good] <= rounding[good])
        assert np.array_equal(with_cr.err, without.err, equal_nan=True)
        corner = (SIZE - 1.0, 0.0)
        with asdf.open(full.parent / "truth" / f"{member}_wcs.asdf") as af:
            assert np.allclose(af["wcs"](*corner), without.meta.wcs(*corner), rtol=0, atol=1e-12)


def test_same_seed_same_files_other_seed_other_sky(tmp_path):
    first = synth.make_association(tmp_path / "a", n=1, size=SIZE, seed=5)
    again = synth.make_association(tmp_path / "b", n=1, size=SIZE, seed=5)
    other = synth.make_association(tmp_path / "c", n=1, size=SIZE, seed=6)
    member = synth.member_names(1)[0]
    data = [datamodels.open(p.parent / synth.cal_filename(member)).data for p in (first, again, other)]
    assert np.array_equal(data[0], data[1], equal_nan=True)
    assert not np.array_equal(data[0], data[2], equal_nan=True)
    tables = [Table.read(p.parent / "truth" / "sources.ecsv") for p in (first, again)]
    assert np.array_equal(tables[0].as_array(), tables[1].as_array())


def test_two_detectors_form_one_group_side_by_side(tmp_path):
    asn = synth.make_association(tmp_path, n=2, size=SIZE, seed=2, detectors=2)
    _, exposures = _truth(asn)
    assert list(exposures["member"]) == synth.member_names(2, detectors=2)
    for k in (1, 2):
        pair = exposures[exposures["exposure"] == k]
        assert list(pair["detector"]) == ["NRCB1", "NRCB2"]
        assert len(set(pair["group_id"])) == 1
        # One rigid pointing error per exposure: the same rotation at both reference points.
        assert pair["wcs_rot_deg"][0] == pytest.approx(pair["wcs_rot_deg"][1], abs=1e-5)
    b1, b2 = (datamodels.open(asn.parent / synth.cal_filename(m)) for m in exposures["member"][:2])
    assert b2.meta.instrument.detector == "NRCB2"
    gap = (b2.meta.wcsinfo.v3_ref - b1.meta.wcsinfo.v3_ref) / psf.NATIVE_PIXEL_SCALE_ARCSEC - SIZE
    assert gap == pytest.approx(synth.DETECTOR_GAP_PX, rel=0.02)


def test_command_line_writes_an_association(tmp_path, capsys):
    synth.main(["--out", str(tmp_path), "-n", "1", "--size", "256", "--no-cosmic-rays"])
    assert (tmp_path / synth.asn_filename()).exists()
    assert "wrote" in capsys.readouterr().out
    assert not np.any(fits.getdata(tmp_path / "truth" / f"{synth.member_names(1)[0]}_cr.fits"))


# -------------------------------------------------------------------- psf ---


def test_psf_fwhm_and_mosaic_encircled_energy():
    assert psf.fwhm_arcsec() == pytest.approx(0.065, abs=5e-4)
    radii = np.array([0.03, 0.1, 0.3, 1.0, 3.0])
    ee = psf.encircled_energy(radii)
    assert np.all(np.diff(ee) > 0) and ee[-1] == pytest.approx(1.0, abs=1e-9)
    # The pixel boxes spread the light: below the sky PSF's EE at small radii.
    assert np.all(ee[:2] < psf.sky_encircled_energy(radii[:2]))
    # Brute force: PSF ⊗ MOSAIC_BOXES pixel boxes on a fine grid.
    step = psf.NATIVE_PIXEL_SCALE_ARCSEC / 10
    axis = np.arange(-1.0, 1.0 + step / 2, step)
    xx, yy = np.meshgrid(axis, axis)
    box = np.ones(1)
    for _ in range(psf.MOSAIC_BOXES):
        box = np.convolve(box, np.ones(10) / 10)
    image = sum(
        w * np.exp(-(xx**2 + yy**2) / (2 * s * s)) / (2 * np.pi * s * s) * step**2
        for w, s in psf.PSF_COMPONENTS
    )
    image = np.apply_along_axis(lambda r: np.convolve(r, box, mode="same"), 1, image)
    image = np.apply_along_axis(lambda c: np.convolve(c, box, mode="same"), 0, image)
    for radius in (0.1, 0.3):
        assert image[np.hypot(xx, yy) < radius].sum() == pytest.approx(
            float(psf.encircled_energy(radius)), abs=2e-3
        )


def test_aperture_corrections_restore_the_total_flux(association):
    """apcorr × (EE(r) − A · annulus mean) = 1 for every row, in the written NrcImgApcorrModel."""
    truth = association.parent / "truth"
    table = datamodels.open(truth / "apcorr.fits").apcorr_table
    scale = psf.NATIVE_PIXEL_SCALE_ARCSEC
    for row in table:
        assert (row["filter"], row["pupil"]) == ("F200W", "CLEAR")
        ee = float(psf.encircled_energy(row["radius"] * scale))
        assert ee == pytest.approx(row["eefraction"], abs=1e-5)
        ring = np.diff(psf.encircled_energy(np.array([row["skyin"], row["skyout"]]) * scale))[0]
        sky_per_area = ring / (np.pi * (row["skyout"] ** 2 - row["skyin"] ** 2))
        assert row["apcorr"] * (ee - np.pi * row["radius"] ** 2 * sky_per_area) == pytest.approx(
            1.0, abs=1e-5
        )
    assert table["skyin"].min() > table["radius"].max()
    offsets = datamodels.ABVegaOffsetModel(truth / "abvegaoffset.asdf").abvega_offset
    assert offsets["abvega_offset"][0] == pytest.approx(1.7, abs=0.1)
    assert json.loads((truth / "psf.json").read_text())["fwhm_arcsec"] == pytest.approx(0.065, abs=5e-4)
