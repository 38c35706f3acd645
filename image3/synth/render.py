"""Noise-free images of the sources on a detector, through its TRUE wcs.

SCI is in MJy/sr and each pixel holds the mean surface brightness over the pixel's TRUE solid
angle. So a uniform sky is uniform in the image, and the flux of a source is Σ SCI × Ω_pix with
Ω_pix = AREA × PIXAR_SR. Sources are Gaussian mixtures on the sky (the band's PSF of
``image3.synth.psf``; galaxies are Sérsic mixtures convolved with it analytically), mapped to
pixels with the local Jacobian of the true WCS at each source and drawn as pixel means on
stamps by ``psf.add_gaussians`` (flux exact, pixels within 1e-3 of the exact mean).
"""

import numpy as np
from astropy.table import Table
from gwcs import wcs as gwcs_wcs

from image3.synth import psf
from image3.synth.apertures import ARCSEC2_TO_SR
from image3.synth.sources import sersic_mixture
from image3.synth.wcs import sky_jacobian, sky_to_pixel


def _source_extent_arcsec(sources: Table, components) -> np.ndarray:
    """Radius [arcsec] beyond which a source's stamps hold nothing."""
    widest_psf = max(s for _, s in components)
    widest_galaxy = np.zeros(len(sources))
    for n in np.unique(sources["sersic_n"]):
        if n > 0:
            rows = np.asarray(sources["sersic_n"]) == n
            widest_galaxy[rows] = (
                sersic_mixture(float(n))[0].max() * np.asarray(sources["r_half_arcsec"])[rows]
            )
    return psf.STAMP_SIGMAS * np.hypot(widest_galaxy, widest_psf) + 0.1


def render_sources(sources: Table, wcs: gwcs_wcs.WCS, size, components=psf.PSF_COMPONENTS,
                   pixel_scale_arcsec: float = psf.NATIVE_PIXEL_SCALE_ARCSEC) -> np.ndarray:
    """Noise-free surface brightness [MJy/sr] of ``sources`` on a detector of ``size``
    (side, or (ny, nx)), seen through ``components`` (the PSF).

    Each pixel holds the mean surface brightness over its true solid angle,
    so Σ image × Ω_pix = flux of every source that lies wholly on it.
    ``pixel_scale_arcsec`` (nominal) only sets how far off the detector a source may lie and
    still reach it.
    """
    ny, nx = (size, size) if np.isscalar(size) else size
    image = np.zeros((ny, nx))
    if len(sources) == 0:
        return image
    x, y = sky_to_pixel(wcs, np.asarray(sources["ra"], float), np.asarray(sources["dec"], float))
    reach = _source_extent_arcsec(sources, components) / (0.9 * pixel_scale_arcsec)
    near = (x > -reach) & (x < nx - 1 + reach) & (y > -reach) & (y < ny - 1 + reach)
    if not near.any():
        return image
    src = sources[near]
    x, y = x[near], y[near]
    jac = sky_jacobian(wcs, x, y)
    inverse_jac = np.linalg.inv(jac)
    solid_angle_sr = np.abs(np.linalg.det(jac)) * ARCSEC2_TO_SR
    surface_brightness = np.asarray(src["flux_ujy"], float) * 1e-12 / solid_angle_sr  # MJy/sr × pixel

    blobs = []
    sersic = np.asarray(src["sersic_n"], float)
    for n in np.unique(sersic):
        rows = np.nonzero(sersic == n)[0]
        if n == 0:
            shapes = [(np.zeros((len(rows), 2, 2)), np.ones(len(rows)))]
        else:
            shapes = _galaxy_covariances(src[rows], float(n))
        for sky_cov, fraction in shapes:
            for psf_fraction, psf_sigma in components:
                cov = sky_cov + psf_sigma**2 * np.eye(2)
                pix_cov = inverse_jac[rows] @ cov @ np.swapaxes(inverse_jac[rows], 1, 2)
                blobs.append((rows, pix_cov, surface_brightness[rows] * fraction * psf_fraction))
    rows = np.concatenate([b[0] for b in blobs])
    cov = np.concatenate([b[1] for b in blobs])
    amp = np.concatenate([b[2] for b in blobs])
    psf.add_gaussians(image, x[rows], y[rows], cov[:, 0, 0], cov[:, 0, 1], cov[:, 1, 1], amp)
    return image


def _galaxy_covariances(galaxies: Table, sersic_n: float):
    """Per mixture component: sky covariance [arcsec²] (n, 2, 2) and flux fraction."""
    sigmas, fractions = sersic_mixture(sersic_n)
    theta = np.radians(np.asarray(galaxies["theta_deg"], float))
    major = np.stack([np.sin(theta), np.cos(theta)], -1)  # (east, north), θ east of north
    minor = np.stack([np.cos(theta), -np.sin(theta)], -1)
    axis_ratio = 1.0 - np.asarray(galaxies["ellipticity"], float)
    r_half = np.asarray(galaxies["r_half_arcsec"], float)
    outer_major = major[:, :, None] * major[:, None, :]
    outer_minor = minor[:, :, None] * minor[:, None, :]
    return [
        (
            ((s * r_half) ** 2)[:, None, None] * (outer_major + (axis_ratio**2)[:, None, None] * outer_minor),
            np.full(len(galaxies), f),
        )
        for s, f in zip(sigmas, fractions, strict=True)
    ]
