"""Point-spread functions of the synthetic sky and their encircled energy.

A PSF is defined on the sky, independent of any detector: a sum of three
concentric circular Gaussians (components: flux fraction, width in arcsec;
fractions summing to 1). ``PSF_COMPONENTS`` is NIRCam F200W's, FWHM 0.065";
another band's (``band_components``) is the same mixture with every width
scaled by its pivot wavelength over F200W's, as a diffraction-limited PSF
scales: F150W 0.049", F444W 0.144", MIRI F770W 0.250" (the real F770W PSF is
0.27" wide). Every function below takes ``components`` (default F200W's). The two broad
components carry 28% of the light out to ~1", so aperture corrections
matter (EE ≈ 0.84 at r = 0.1" before pixelation). A Gaussian mixture is used
because its convolution with a pixel and with a (Gaussian-mixture) galaxy is
analytic, which keeps every truth figure exact.

Encircled energies here describe the PSF *as seen on a drizzled mosaic at the
native pixel scale with pixfrac 1*: the sky PSF convolved with the detector
pixel and with the output pixel (two square boxes of side
``pixel_scale_arcsec``; the ~0.3° rotation between the two grids is
neglected). That is what an exact-overlap circular aperture centred on a
star measures on such a mosaic, averaged over sub-pixel phases.

Aperture corrections follow the JWST APCORR convention (see
``aperture_correction_table``): ``total flux = apcorr × (aperture sum −
annulus mean × aperture area)``, so apcorr also restores the PSF light that
falls in the sky annulus and is subtracted with the sky.

``add_gaussians`` draws Gaussians (PSF components, or PSF-convolved galaxy
components, already mapped to pixel coordinates) as pixel means on an
image; ``image3.synth`` renders its sky with it.
"""

import json
from functools import lru_cache
from math import comb

import numpy as np
from astropy.table import Table
from scipy.optimize import brentq
from scipy.special import ndtr, roots_legendre

#: (flux fraction, Gaussian sigma [arcsec]) of each PSF component.
PSF_COMPONENTS = ((0.72, 0.027), (0.18, 0.070), (0.10, 0.220))
#: Pivot wavelength [µm] of NIRCam F200W, the band PSF_COMPONENTS describes.
REFERENCE_PIVOT_UM = 1.989

#: Native NIRCam short-wave pixel scale [arcsec]: the square root of the
#: solid angle of the central pixel of NRCB1 in the real distortion.
NATIVE_PIXEL_SCALE_ARCSEC = 0.030746

#: EE fractions tabulated in the APCORR file (JWST NIRCam files use 0.1-0.9 or 0.2-0.8).
APCORR_EE_FRACTIONS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)

#: The sky annulus of the APCORR file, as multiples of the EE = 0.9 radius.
#: Real JWST files use one fixed annulus per filter just outside the largest
#: tabulated aperture; these factors put it at ~10-15 native pixels here.
SKY_ANNULUS_EE90_FACTORS = (2.0, 3.0)

#: Gaussians are drawn on square stamps reaching this many sigmas along the major axis.
STAMP_SIGMAS = 3.5
#: Gaussians whose minor-axis sigma is at least this [pixels] use the widened-Gaussian pixel mean.
BROAD_SIGMA_PX = 1.5
_GL_NODES, _GL_WEIGHTS = (v / 2 for v in roots_legendre(5))  # on [-1/2, 1/2]; weights sum to 1
_CHUNK_ELEMENTS = 2_000_000
_SMALL_STAMP = 25  # stamp width [pixels] up to which stamps are scattered, not pasted

# Nodes of the angular quadrature in encircled_energy; the integrand is
# smooth and periodic, so the midpoint rule converges exponentially.
_N_ANGLE_NODES = 4096


def band_components(pivot_um: float) -> tuple[tuple[float, float], ...]:
    """The PSF of a band with pivot wavelength ``pivot_um`` [µm]: F200W's, widths × pivot / 1.989."""
    ratio = pivot_um / REFERENCE_PIVOT_UM
    return tuple((w, s * ratio) for w, s in PSF_COMPONENTS)


def fwhm_arcsec(components=PSF_COMPONENTS) -> float:
    """Full width at half maximum of the sky PSF [arcsec]."""
    peak = _sky_profile(0.0, components)
    widest = max(s for _, s in components)
    return 2.0 * brentq(lambda r: _sky_profile(r, components) - peak / 2.0, 1e-5, 5 * widest)


def _sky_profile(radius_arcsec, components):
    """Sky PSF surface density [fraction of flux per arcsec²] at a radius."""
    r2 = np.square(radius_arcsec)
    return sum(w * np.exp(-r2 / (2 * s * s)) / (2 * np.pi * s * s) for w, s in components)


def sky_encircled_energy(radius_arcsec, components=PSF_COMPONENTS):
    """Fraction of the sky PSF's flux within ``radius_arcsec`` (no pixel)."""
    r2 = np.square(np.asarray(radius_arcsec, dtype=float))
    return sum(w * (1.0 - np.exp(-r2 / (2 * s * s))) for w, s in components)


# A star on a native-scale drizzled mosaic (square kernel, pixfrac 1), measured with exact-overlap
# apertures, is the sky PSF convolved with four pixel-wide boxes: the detector pixel that
# integrates it, the drizzle drop that spreads each input pixel, the output pixel that averages
# the drops, and the aperture sum that treats each output pixel as uniform. (Measured on noise-free
# synthetic mosaics: EE(1 px) = 0.277 against 0.273 for four boxes, 0.293 for three, 0.314 for two.)
MOSAIC_BOXES = 4


def _repeated_integral(t, sigma, order):
    """``order``-fold antiderivative of the N(0, sigma) density (order 0 = density).

    Uses the recurrence m I_{m+1} = t I_m + sigma² I_{m-1} of repeated normal integrals.
    """
    u = t / sigma
    previous = np.exp(-u * u / 2) / (np.sqrt(2 * np.pi) * sigma)  # I_0
    current = ndtr(u)  # I_1
    if order == 0:
        return previous
    for m in range(1, order):
        previous, current = current, (t * current + sigma * sigma * previous) / m
    return current


def _pixelated(x, sigma, pixel, cumulative, boxes=MOSAIC_BOXES):
    """1-D profile (or CDF) of a Gaussian convolved with ``boxes`` boxes of width ``pixel``.

    The convolution with n boxes is the n-th central difference (step ``pixel``) of the
    Gaussian's n-th antiderivative (n + 1-th for the CDF), divided by pixel^n: closed form.
    """
    order = boxes + (1 if cumulative else 0)
    total = np.zeros(np.shape(x))
    for k in range(boxes + 1):
        shift = (boxes / 2 - k) * pixel
        total = total + (-1) ** k * comb(boxes, k) * _repeated_integral(x + shift, sigma, order)
    return total / pixel ** boxes


def encircled_energy(radius_arcsec, pixel_scale_arcsec: float = NATIVE_PIXEL_SCALE_ARCSEC,
                     components=PSF_COMPONENTS):
    """Encircled energy of the PSF as seen on a native-scale drizzled mosaic.

    Parameters
    ----------
    radius_arcsec : float or array
        Aperture radius [arcsec], centred on the star.
    pixel_scale_arcsec : float
        Side of the detector pixel and of the output pixel [arcsec] (see MOSAIC_BOXES).

    Returns
    -------
    Fraction of the total flux inside the circle (same shape as the input).
    The 2-D kernel of each component is separable, so
    EE(r) = ∫ g(x) [2 G(√(r² − x²)) − 1] dx over |x| < r, evaluated with
    x = r sin θ and a midpoint rule in θ (error < 1e-9).
    """
    radius = np.atleast_1d(np.asarray(radius_arcsec, dtype=float))
    theta = (np.arange(_N_ANGLE_NODES) + 0.5) / _N_ANGLE_NODES * np.pi - np.pi / 2
    x = radius[:, None] * np.sin(theta)
    half_chord = radius[:, None] * np.cos(theta)
    ee = np.zeros(radius.shape)
    for weight, sigma in components:
        density = _pixelated(x, sigma, pixel_scale_arcsec, cumulative=False)
        cdf = _pixelated(half_chord, sigma, pixel_scale_arcsec, cumulative=True)
        integrand = density * (2 * cdf - 1) * half_chord
        ee += weight * integrand.sum(axis=1) * (np.pi / _N_ANGLE_NODES)
    return ee.reshape(np.shape(radius_arcsec))


def radius_for_encircled_energy(
    fraction: float, pixel_scale_arcsec: float = NATIVE_PIXEL_SCALE_ARCSEC, components=PSF_COMPONENTS
) -> float:
    """Radius [arcsec] enclosing ``fraction`` of the flux on the mosaic."""
    return brentq(lambda r: float(encircled_energy(r, pixel_scale_arcsec, components)) - fraction,
                  1e-4, 5.0, xtol=1e-10)


def aperture_correction_table(pixel_scale_arcsec: float = NATIVE_PIXEL_SCALE_ARCSEC,
                              components=PSF_COMPONENTS,
                              selector: tuple = (("filter", "F200W"), ("pupil", "CLEAR"))) -> Table:
    """APCORR rows for one band on a native-scale mosaic.

    Columns: the ``selector`` columns (name, value) that pick the band's rows (the reference's:
    filter and pupil for NIRCam and NIRISS, filter and subarray for MIRI), ``eefraction``, ``radius`` [native
    pixels], ``apcorr``, ``skyin``, ``skyout`` [native pixels]. With
    aperture area A = πr², annulus area A_sky and
    EE_sky = EE(skyout) − EE(skyin):

        apcorr = 1 / (EE(r) − A · EE_sky / A_sky)

    so ``apcorr × (aperture sum − annulus mean × A)`` is the total flux of an
    isolated star on a flat sky. skyin/skyout are ``SKY_ANNULUS_EE90_FACTORS``
    times the EE = 0.9 radius, rounded to whole pixels, the same for all rows
    (the reference requires one annulus per filter).
    """
    return _aperture_correction_table(pixel_scale_arcsec, tuple(components), tuple(selector)).copy()


@lru_cache(maxsize=16)
def _aperture_correction_table(pixel_scale_arcsec: float, components, selector) -> Table:
    scale = pixel_scale_arcsec
    r90 = radius_for_encircled_energy(0.9, scale, components) / scale
    skyin, skyout = (float(round(f * r90)) for f in SKY_ANNULUS_EE90_FACTORS)
    ee_sky = float(np.diff(encircled_energy(np.array([skyin, skyout]) * scale, scale, components))[0])
    sky_area = np.pi * (skyout**2 - skyin**2)
    radii = np.array([radius_for_encircled_energy(f, scale, components) / scale for f in APCORR_EE_FRACTIONS])
    measured = np.array(APCORR_EE_FRACTIONS) - np.pi * radii**2 * ee_sky / sky_area
    n = len(APCORR_EE_FRACTIONS)
    table = Table(
        {
            **{name: [value] * n for name, value in selector},
            "eefraction": np.array(APCORR_EE_FRACTIONS, dtype=np.float32),
            "radius": radii.astype(np.float32),
            "apcorr": (1.0 / measured).astype(np.float32),
            "skyin": np.full(n, skyin, dtype=np.float32),
            "skyout": np.full(n, skyout, dtype=np.float32),
        }
    )
    table.meta["pixel_scale_arcsec"] = scale
    return table


def psf_description(pixel_scale_arcsec: float = NATIVE_PIXEL_SCALE_ARCSEC, components=PSF_COMPONENTS,
                    filter: str = "F200W") -> str:
    """The PSF parameters as the JSON text written to ``truth/psf.json``."""
    return json.dumps(
        {
            "model": "sum of concentric circular Gaussians on the sky",
            "filter": filter,
            "components": [{"flux_fraction": w, "sigma_arcsec": s} for w, s in components],
            "fwhm_arcsec": round(fwhm_arcsec(components), 6),
            "native_pixel_scale_arcsec": pixel_scale_arcsec,
            "mosaic_encircled_energy": {
                "convention": "PSF convolved with detector pixel and output pixel (pixfrac 1)",
                "radius_arcsec": [0.05, 0.1, 0.2, 0.3, 0.5, 1.0],
                "ee": [
                    round(float(e), 6)
                    for e in encircled_energy(np.array([0.05, 0.1, 0.2, 0.3, 0.5, 1.0]), pixel_scale_arcsec,
                                              components)
                ],
            },
        },
        indent=2,
    )


def add_gaussians(image: np.ndarray, x, y, cxx, cxy, cyy, amplitude) -> None:
    """Add ``amplitude`` × (pixel mean of a unit 2-D Gaussian) to ``image``, in place.

    (x, y) are 0-based pixel positions of the centres and (cxx, cxy, cyy)
    the covariances [pixel²]; pixel (i, j) covers [i−½, i+½] × [j−½, j+½].
    Each Gaussian is drawn on a square stamp, centred on the nearest pixel,
    reaching STAMP_SIGMAS major-axis sigmas, and scaled so that the stamp
    holds exactly ``amplitude``: flux is conserved exactly (up to the image
    edges) and the < 1e-3 beyond the stamp is spread over it in proportion.
    Narrow Gaussians (minor sigma < BROAD_SIGMA_PX) are integrated over each
    pixel (y analytic, x by 5-node Gauss-Legendre); broad ones are sampled
    at pixel centres with the pixel's variance 1/12 added, exact in flux and
    centroid. Every pixel is within 1e-3 of the untruncated pixel mean.
    """
    mean_var = (cxx + cyy) / 2
    spread = np.sqrt(((cxx - cyy) / 2) ** 2 + cxy**2)
    major, minor = np.sqrt(mean_var + spread), np.sqrt(mean_var - spread)
    half = np.ceil(STAMP_SIGMAS * major).astype(int)
    cx, cy = np.floor(x + 0.5).astype(int), np.floor(y + 0.5).astype(int)
    ny, nx = image.shape
    visible = (cx + half >= 0) & (cx - half < nx) & (cy + half >= 0) & (cy - half < ny) & (amplitude != 0)
    narrow = minor < BROAD_SIGMA_PX
    # One vectorised pass per (stamp size, method); small stamps are
    # scattered in a single bincount at the end, large ones pasted as slices.
    key = np.where(visible, 2 * half + narrow, -1)
    order = np.argsort(key, kind="stable")
    keys, starts = np.unique(key[order], return_index=True)
    scattered_index, scattered_value = [], []
    for k, group in zip(keys, np.split(order, starts[1:]), strict=True):
        if k < 0:
            continue
        h, is_narrow = divmod(int(k), 2)
        offsets = np.arange(-h, h + 1)
        per_blob = offsets.size**2 * (len(_GL_NODES) if is_narrow else 1)
        for chunk in np.array_split(group, group.size * per_blob // _CHUNK_ELEMENTS + 1):
            stamps = (_narrow_stamps if is_narrow else _broad_stamps)(
                x[chunk] - cx[chunk], y[chunk] - cy[chunk], cxx[chunk], cxy[chunk], cyy[chunk], offsets
            )
            stamps *= (amplitude[chunk] / stamps.sum(axis=(1, 2)))[:, None, None]
            x0, y0 = cx[chunk] - h, cy[chunk] - h
            if offsets.size > _SMALL_STAMP:
                _paste(image, stamps, x0, y0)
                continue
            iy = y0[:, None, None] + np.arange(offsets.size)[None, :, None]
            ix = x0[:, None, None] + np.arange(offsets.size)[None, None, :]
            inside = (ix >= 0) & (ix < nx) & (iy >= 0) & (iy < ny)
            scattered_index.append((iy * nx + ix)[inside])
            scattered_value.append(stamps[inside])
    if scattered_index:
        image += np.bincount(
            np.concatenate(scattered_index), np.concatenate(scattered_value), minlength=nx * ny
        ).reshape(ny, nx)


def _paste(image, stamps, x0, y0):
    """Add each stamp to ``image`` with its first pixel at (x0, y0), clipped at the edges."""
    ny, nx = image.shape
    w = stamps.shape[-1]
    for stamp, i, j in zip(stamps, x0.tolist(), y0.tolist(), strict=True):
        a, b = max(0, -i), min(w, nx - i)
        c, d = max(0, -j), min(w, ny - j)
        image[j + c : j + d, i + a : i + b] += stamp[c:d, a:b]


def _narrow_stamps(fx, fy, cxx, cxy, cyy, offsets):
    """Exact pixel means (m, w, w) around offsets (fx, fy) from the stamp centres.

    The y integral over a pixel is analytic (the conditional Gaussian given
    x); the x integral uses Gauss-Legendre nodes.
    """
    xn = (offsets[None, :] - fx[:, None])[:, :, None] + _GL_NODES  # (m, w, k) node x offsets
    weight_x = (
        _GL_WEIGHTS * np.exp(-(xn**2) / (2 * cxx[:, None, None])) / np.sqrt(2 * np.pi * cxx[:, None, None])
    )
    mean_y = (cxy / cxx)[:, None, None] * xn
    sigma_y = np.sqrt(cyy - cxy**2 / cxx)[:, None, None, None]
    rows = (offsets[None, :] - fy[:, None])[:, :, None, None]  # (m, w, 1, 1)
    upper = (rows + 0.5 - mean_y[:, None, :, :]) / sigma_y
    mass_y = ndtr(upper) - ndtr(upper - 1.0 / sigma_y)
    return np.einsum("mjik,mik->mji", mass_y, weight_x)


def _broad_stamps(fx, fy, cxx, cxy, cyy, offsets):
    """Pixel means (m, w, w), up to a constant, of broad Gaussians: widened by the pixel's variance 1/12.

    Unnormalised (add_gaussians scales every stamp to its amplitude) and in
    float32, which is ample for fractions of one blob's flux.
    """
    a, b, c = cxx + 1 / 12, cxy, cyy + 1 / 12
    det = a * c - b * b
    du = (offsets[None, :] - fx[:, None]).astype(np.float32)  # (m, w) columns
    dv = (offsets[None, :] - fy[:, None]).astype(np.float32)  # (m, w) rows
    a, b, c, det = (v.astype(np.float32) for v in (a, b, c, det))
    along_x = np.exp(-(c / (2 * det))[:, None] * du**2)
    along_y = np.exp(-(a / (2 * det))[:, None] * dv**2)
    cross = np.exp((b / det)[:, None, None] * dv[:, :, None] * du[:, None, :])
    return along_y[:, :, None] * along_x[:, None, :] * cross
