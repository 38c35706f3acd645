"""The drizzled mosaic against truth (Foundation III): photometry, astrometry, variances, noise,
FITS header and layout (incremental reruns: test_resume.py).

Data: 3 dithered 2048² synthetic NIRCam exposures without WCS errors, sky offsets or cosmic rays,
at a low source density (0.15 per arcsec², so that "isolated" stars have clean local sky), run
through the Snakefile with only grid and resample active.
"""

import math
import shutil

import numpy as np
import pytest
from astropy.io import fits
from astropy.stats import sigma_clipped_stats
from astropy.wcs import WCS
from stdatamodels.jwst import datamodels

from image3 import synth
from image3.synth import psf
from truth import isolation_arcsec, to_pixels, truth_sources, windowed_centroid
from workflow import snakemake

pytestmark = pytest.mark.workflow

ONLY_RESAMPLE = {step: "{skip: true}" for step in
                 ("tweakreg", "skymatch", "outlier_detection", "source_catalog")}
# Drizzling averages neighbouring input pixels, so one output pixel is less noisy than the ERR
# propagated by the reference's formula (which carries each exposure's full per-pixel variance).
# Square kernel, pixfrac 1, scale ratio 1: an output pixel at sub-pixel offset (dx, dy) is the
# mean of 4 input pixels with overlaps a_k, so var = sigma^2 sum(a_k^2); averaged over uniform
# offsets, E[(1-d)^2 + d^2] = 2/3 per axis, i.e. var = (2/3)^2 sigma^2 and std = (2/3) ERR.
# This is Casertano et al. (2000)'s R = 1/(1 - r/3) = 1.5 for r = pixfrac/scale = 1, per axis.
NOISE_STD_FACTOR = 2.0 / 3.0


@pytest.fixture(scope="module")
def mosaic(tmp_path_factory):
    root = tmp_path_factory.mktemp("i2d")
    asn = synth.make_association(root / "data", n=3, size=2048, seed=11, wcs_errors=False,
                                 sky_offsets=False, cosmic_rays=False, truth_images=True,
                                 density=0.15)
    snakemake(root, "--cores", "2", config={"asn": asn, "output_dir": root / "out", **ONLY_RESAMPLE})
    path = root / "out" / f"{synth.PRODUCT_NAME}_i2d.fits"
    model = datamodels.open(path)
    yield model, path, asn
    model.close()


@pytest.fixture(scope="module")
def noise_mosaic(mosaic, tmp_path_factory):
    """The same association with every source and the sky removed (SCI − noise-free model):
    its mosaic is pure noise, with the ERR and VAR_* of the real one."""
    _, _, asn = mosaic
    root = tmp_path_factory.mktemp("noise")
    shutil.copy(asn, root / asn.name)
    for member in synth.member_names(3):
        with datamodels.open(asn.parent / synth.cal_filename(member)) as cal:
            model = fits.getdata(asn.parent / "truth" / f"{member}_model.fits")
            cal.data = (cal.data - model).astype(np.float32)
            cal.save(root / synth.cal_filename(member))
    snakemake(root, "--cores", "2", config={"asn": root / asn.name, "output_dir": root / "out",
                                            **ONLY_RESAMPLE})
    with datamodels.open(root / "out" / f"{synth.PRODUCT_NAME}_i2d.fits") as noise:
        yield noise.data.copy()


def _bright_isolated_stars(model, asn, min_snr=100.0):
    sources = truth_sources(asn)
    keep = (sources["kind"] == "star") & (isolation_arcsec(sources) > 1.0)
    stars = sources[keep]
    x, y = to_pixels(model.meta.wcs, stars)
    ny, nx = model.data.shape
    inside = (x > 40) & (x < nx - 40) & (y > 40) & (y < ny - 40)
    stars, x, y = stars[inside], x[inside], y[inside]
    ok = np.array([np.isfinite(model.data[int(round(b)) - 30:int(round(b)) + 31,
                                          int(round(a)) - 30:int(round(a)) + 31]).all()
                   for a, b in zip(x, y)])
    stars, x, y = stars[ok], x[ok], y[ok]
    # S/N of the 0.5" aperture flux from the propagated ERR.
    flux_jy = np.asarray(stars["flux_ujy"]) * 1e-6
    pix_sr = model.meta.photometry.pixelarea_steradians
    err_jy = np.array([np.sqrt(np.nansum(model.err[int(round(b)) - 8:int(round(b)) + 9,
                                                   int(round(a)) - 8:int(round(a)) + 9] ** 2))
                       for a, b in zip(x, y)]) * 1e6 * pix_sr
    snr = flux_jy / err_jy
    sel = snr >= min_snr
    return stars[sel], x[sel], y[sel]


def test_isolated_star_aperture_flux_matches_truth(mosaic):
    model, _, asn = mosaic
    stars, x, y = _bright_isolated_stars(model, asn)
    assert len(stars) >= 30
    scale = math.sqrt(model.meta.photometry.pixelarea_arcsecsq)
    # Local sky from an annulus inside the isolation radius; the PSF light it holds is part of
    # the correction: measured = F (EE(r_ap) - area_ap x mean PSF surface brightness in annulus).
    r_ap, r_in, r_out = 0.5 / scale, 0.6 / scale, 0.9 / scale
    annulus_psf = ((psf.encircled_energy(0.9, scale) - psf.encircled_energy(0.6, scale))
                   / (math.pi * (0.9 ** 2 - 0.6 ** 2)))
    ee = psf.encircled_energy(0.5, scale) - math.pi * 0.5 ** 2 * annulus_psf
    yy, xx = np.mgrid[0:model.data.shape[0], 0:model.data.shape[1]]
    ratios = []
    for star, cx, cy in zip(stars, x, y):
        ix, iy = int(round(cx)), int(round(cy))
        sl = (slice(iy - 30, iy + 31), slice(ix - 30, ix + 31))
        d = model.data[sl]
        r = np.hypot(xx[sl] - cx, yy[sl] - cy)
        # Exact pixel-overlap photometry is not needed at this radius: sub-sample the aperture.
        sub = 10
        off = (np.arange(sub) + 0.5) / sub - 0.5
        frac = np.zeros_like(r)
        for dy in off:
            for dx in off:
                frac += np.hypot(xx[sl] + dx - cx, yy[sl] + dy - cy) <= r_ap
        frac /= sub * sub
        annulus = (r >= r_in) & (r <= r_out)
        bkg = np.median(d[annulus])
        flux = np.sum((d - bkg) * frac) * 1e6 * model.meta.photometry.pixelarea_steradians / ee
        ratios.append(flux / (star["flux_ujy"] * 1e-6))
    median_ratio = np.median(ratios)
    print(f"\nFIGURE i2d flux ratio median {median_ratio:.5f} over {len(ratios)} stars")
    assert abs(median_ratio - 1) < 0.005, f"median flux ratio {median_ratio:.5f} ({len(ratios)} stars)"


def test_star_centroids_land_on_truth(mosaic):
    model, _, asn = mosaic
    stars, x, y = _bright_isolated_stars(model, asn)
    offsets = np.array([np.subtract(windowed_centroid(model.data, a, b), (a, b))
                        for a, b in zip(x, y)])
    rms = np.sqrt(np.mean(np.sum(offsets ** 2, axis=1)))
    print(f"\nFIGURE i2d centroid RMS {rms:.4f} px over {len(stars)} stars")
    assert rms < 0.05, f"centroid RMS {rms:.4f} px over {len(stars)} stars"


def _coverage_count(model) -> np.ndarray:
    con = model.con
    bits = np.zeros(model.data.shape, dtype=int)
    for plane in con:
        for k in range(32):
            bits += (plane >> k) & 1
    return bits


def test_read_noise_variance_falls_as_one_over_k(mosaic):
    model, _, asn = mosaic
    count = _coverage_count(model)
    inputs = [datamodels.open(asn.parent / synth.cal_filename(m)) for m in synth.member_names(3)]
    var_in = np.mean([np.nanmedian(m.var_rnoise) for m in inputs])
    for k in (1, 2, 3):
        region = (count == k) & np.isfinite(model.var_rnoise)
        assert region.sum() > 1000
        measured = np.median(model.var_rnoise[region])
        print(f"\nFIGURE VAR_RNOISE k={k}: measured/expected {measured / (var_in / k):.4f}")
        assert measured == pytest.approx(var_in / k, rel=0.05), f"k={k}"


def test_blank_sky_scatter_matches_err_times_correlation_factor(mosaic, noise_mosaic):
    model, _, _ = mosaic
    count = _coverage_count(model)
    normalised = noise_mosaic / model.err
    for k in (1, 2, 3):
        region = (count == k) & np.isfinite(normalised)
        assert region.sum() > 2000, f"k={k}: {region.sum()} pixels"
        _, _, std = sigma_clipped_stats(normalised[region], sigma=5)
        print(f"\nFIGURE noise k={k}: std(SCI)/ERR {std:.4f} (expected {NOISE_STD_FACTOR:.4f})")
        assert std == pytest.approx(NOISE_STD_FACTOR, rel=0.10), f"k={k}"


def test_fits_tan_header_agrees_with_gwcs(mosaic):
    model, path, _ = mosaic
    header_wcs = WCS(fits.getheader(path, "SCI"))
    ny, nx = model.data.shape
    yy, xx = np.mgrid[0:ny:25, 0:nx:25]
    ra, dec = model.meta.wcs(xx, yy)
    fx, fy = header_wcs.all_world2pix(ra, dec, 0)
    worst = np.max(np.hypot(fx - xx, fy - yy))
    print(f"\nFIGURE TAN header vs gwcs max {worst:.2e} px")
    assert worst < 0.05


@pytest.mark.real
def test_layout_matches_real_miri_i2d(mosaic, miri_i2d_files):
    """The real products were made without blendheaders: ours has the HDRTAB table besides,
    before the ASDF extension as the reference writes it."""
    _, path, _ = mosaic
    ours = [h.name for h in fits.open(path)]
    theirs = [h.name for h in fits.open(miri_i2d_files[0])]
    assert ours[-2:] == ["HDRTAB", "ASDF"]
    assert [name for name in ours if name != "HDRTAB"] == theirs
    with fits.open(path) as hdul:
        for name in ("SCI", "ERR", "WHT", "VAR_POISSON", "VAR_RNOISE", "VAR_FLAT"):
            assert hdul[name].data.dtype.name == "float32"
        assert hdul["CON"].data.dtype.name == "int32"
        primary = hdul[0].header
        assert primary["NDRIZ"] == 3 and primary["PIXFRAC"] == 1.0 and primary["S_RESAMP"] == "COMPLETE"
        assert hdul["SCI"].header["BUNIT"] == "MJy/sr"
        assert hdul["SCI"].header["PIXAR_SR"] == pytest.approx(
            (hdul["SCI"].header["CDELT1"] * math.pi / 180) ** 2, rel=1e-6)
        assert hdul["SCI"].header["S_REGION"].startswith("POLYGON ICRS")


def test_effective_exposure_time_sums_groups(mosaic):
    model, _, asn = mosaic
    one = datamodels.open(asn.parent / synth.cal_filename(synth.member_names(1)[0]))
    assert model.meta.exposure.effective_exposure_time == pytest.approx(
        3 * one.meta.exposure.effective_exposure_time)


def test_i2d_validates_against_the_datamodel_schema(mosaic):
    """stdatamodels reopens the product with strict validation (no schema warning; RESWHT
    'ivm' for the default ivm-smooth weighting, whose exact name the history entry keeps)."""
    _, path, _ = mosaic
    with datamodels.ImageModel(str(path), strict_validation=True) as model:
        model.validate()
        assert model.meta.resample.weight_type == "ivm"
