"""Synthetic JWST NIRCam F200W level-2 (``_cal``) exposures of a known sky, with truth.

Every later stage is tested against what this module writes, so its physics
and bookkeeping are exact and stated here.

Usage::

    python -m image3.synth --out DIR -n 4 --size 1024 --seed 1
    make_association(out_dir, n=4, size=1024, seed=1) -> DIR/jw99999-o001_image3_asn.json

Naming
------
Exposure k (1-based) of detector NRCB1 is ``jw99999001001_02101_{k:05d}_nrcb1``
(file ``<member>_cal.fits``); with two detectors NRCB2 shares the group id
``jw99999001001_02101_{k:05d}`` (``group_id(member)``). The image3 ASN
(``asn_filename()``) has asn_id ``o001`` and product ``PRODUCT_NAME``.

World coordinates
-----------------
Each member's gwcs is ``detector → v2v3 → v2v3vacorr → world`` as in real
JWST files: NRCB1's distortion from the SIAF (``image3.synth.siaf``; its
inverse a fitted polynomial good to 1e-7 pixel), a velocity aberration scale
about (v2_ref, v3_ref), and jwst's ``v23tosky`` rotation built from (v2_ref,
v3_ref, roll_ref, dec_ref, ra_ref). Sizes S < 2048 are the centred S×S
subarray (bounding box −0.5 … S−0.5); the reference point is its centre
pixel ((S−1)/2, (S−1)/2). NRCB2 reuses the NRCB1 distortion moved along +V3
by S + DETECTOR_GAP_PX pixels: beside NRCB1 with a ~4.6" gap. Truth
positions come from the forward transform (``sky_to_pixel`` adds Newton
steps).

Exposure 1 puts NRCB1's reference point at (FIELD_RA_DEG, FIELD_DEC_DEG) at
roll_ref FIELD_ROLL_DEG; exposure k > 1 is slewed at the same roll_ref by a
dither of 5-15% of the field plus sub-pixel fractions from a Kronecker
sequence (phases spread evenly over the pixel). Pointing errors (unless
``wcs_errors=False``): for k > 1 the WRITTEN attitude is displaced by a
0.05-0.3" shift in a random direction and a roll of up to ±0.02°, i.e.
written ra_ref/dec_ref/roll_ref differ from the true ones; both detectors of
an exposure move as one body. Pixels are always rendered through the TRUE
wcs.

Surface brightness
------------------
SCI is in MJy/sr and each pixel holds the mean surface brightness over the
pixel's TRUE solid angle. So a uniform sky is uniform in the image, and the
flux of a source is Σ SCI × Ω_pix with Ω_pix = AREA × PIXAR_SR (AREA: the
pixel solid angle from the distortion relative to PIXAR_SR, that of the
centre pixel). Sources are Gaussian mixtures on the sky (the PSF of
``image3.synth.psf``; galaxies are Sérsic mixtures convolved with it
analytically), mapped to pixels with the local Jacobian of the true WCS at
each source and drawn as pixel means on stamps by ``psf.add_gaussians``
(flux exact, pixels within 1e-3 of the exact mean).

Sky model
---------
Sites on a jittered square lattice in the tangent plane, alternately stars
and galaxies (``density`` sources per arcsec² in all, DEFAULT_DENSITY_PER_ARCSEC2
by default: a quarter of the stars have no neighbour within 1"), cover every
footprint plus SOURCE_MARGIN_ARCSEC. Fluxes: a fraction FAINT_FRACTION
log-uniform between the first two values of STAR_FLUX_UJY /
GALAXY_FLUX_UJY, the rest a power law N(>F) ∝ F^-0.8 up to the last value.
For stars that is a point-source S/N (r = 2 px aperture) of 5-20 for the
faint part and 20 to a few thousand above, so a 256² exposure holds ≥ 30 stars
with S/N ≥ 20, and ~10% of stars peak above 50 × ERR; the sources add
~0.003 MJy/sr (median) to the sky. Galaxies: half-light radius
(semi-major axis of the half-light ellipse) log-uniform 0.05-0.5", Sérsic
n ∈ {1, 1.5, 2.5, 4} (mixtures ``SERSIC_MIXTURES``; the mixture IS the truth:
its flux and half-light radius are exact), ellipticity 1 − b/a uniform
0-0.6, position angle θ uniform (degrees east of north).

Sky: a base level drawn from SKY_BASE_MJYSR plus (unless
``sky_offsets=False``) per exposure an offset of ±(2-8) σ, σ = per-pixel
noise on the base sky (``nominal_noise_sigma``); an exposure's detectors
share it.

Noise and errors
----------------
The noise-free signal S (sky included, the truth ``model``) is converted
with G = ELECTRONS_PER_MJYSR (gain × measurement time / PHOTMJSR):
SCI = Poisson(S·G)/G + N(0, VAR_RNOISE + VAR_FLAT) + cosmic rays, with
VAR_POISSON = S/G computed from the NOISE-FREE signal, VAR_RNOISE = (rn/G)²
for a read noise rn uniform in READ_NOISE_E × (1 ± READ_NOISE_SPREAD) per
pixel (fixed per detector) and VAR_FLAT = (FLAT_ERROR × S)². ERR = √ΣVAR is
thus exactly the standard deviation of SCI − model − cosmic rays. No
saturation is modelled.

Cosmic rays (unless ``cosmic_rays=False``): Poisson(CR_EVENTS_PER_PIXEL ×
pixels) events per exposure, hitting ≈ 1e-3 of the pixels. Half are
single-pixel hits, half straight tracks of length uniform 1-6 px in a
random direction, the charge shared in proportion to the path length in
each pixel. The brightest pixel of an event gets an amplitude log-uniform
in 3-1000 × its own ERR, the other pixels their charge share relative to it
(also in units of their own ERR). Cosmic rays are NOT flagged in DQ (a
ramp fit that missed them) and are 0 in the truth at DO_NOT_USE pixels.

DQ: hot (HOT|DO_NOT_USE) and dead (DEAD|DO_NOT_USE) pixels, HOT_FRACTION and
DEAD_FRACTION of the full frame, fixed per detector; their SCI, ERR and
VAR_* are NaN as in real ``_cal`` files.

Truth files (DIR/truth/)
------------------------
``sources.ecsv``     id, ra, dec [deg], flux_ujy, kind (star|galaxy),
                     r_half_arcsec, sersic_n, ellipticity, theta_deg
                     (shape columns are 0 for stars).
``exposures.ecsv``   one row per member: group_id, detector, true and
                     written ra_ref/dec_ref/roll_ref, v2_ref/v3_ref, the
                     WCS error at the member's own reference point
                     (wcs_dx_arcsec east, wcs_dy_arcsec north, written −
                     true; wcs_rot_deg = written − true roll_ref, by which
                     position angles on the written wcs exceed the true
                     ones), dither,
                     sky_mjysr, noise parameters, exposure times, cosmic-ray
                     counts. Table meta holds the generator's settings.
``<member>_wcs.asdf``   the TRUE gwcs (key ``wcs``).
``<member>_cr.fits``    injected cosmic-ray amplitude [MJy/sr], 0 elsewhere.
``<member>_model.fits`` (``truth_images=True``) noise-free SCI, sky included,
                     no NaN.
``psf.json``          PSF parameters (``image3.synth.psf``).
``apcorr.fits``       NrcImgApcorrModel for this PSF on a native-scale mosaic.
``abvegaoffset.asdf`` ABVegaOffsetModel, F200W/CLEAR.
"""

import argparse
import json
import time
from dataclasses import dataclass
from functools import cache, lru_cache
from pathlib import Path

import asdf
import numpy as np
from astropy import coordinates as coord
from astropy import units as u
from astropy.io import fits
from astropy.modeling import Model, models
from astropy.table import Table
from astropy.time import Time
from gwcs import coordinate_frames as cf
from gwcs import wcs as gwcs_wcs
from gwcs.geometry import CartesianToSpherical, SphericalToCartesian
from scipy.interpolate import RectBivariateSpline
from scipy.optimize import brentq
from stdatamodels.jwst import datamodels

from image3 import __version__
from image3.dqflags import PIXEL
from image3.errors import ConfigError
from image3.synth import psf, siaf

# ----------------------------------------------------------------- naming ---

PROGRAM = "99999"
ASN_ID = "o001"
PRODUCT_NAME = f"jw{PROGRAM}-{ASN_ID}_t001_nircam_clear-f200w"
DETECTORS = ("NRCB1", "NRCB2")
INSTRUMENT, FILTER, PUPIL = "NIRCAM", "F200W", "CLEAR"
MIN_SIZE, MAX_SIZE = 256, 2048


def exposure_name(exposure: int) -> str:
    """Name of exposure ``exposure`` (1-based) without detector, which is also its group id."""
    return f"jw{PROGRAM}001001_02101_{exposure:05d}"


def member_names(n: int, detectors: int = 1) -> list[str]:
    """Exposure roots of all members, by exposure then detector."""
    _check_counts(n, detectors)
    return [f"{exposure_name(k)}_{d.lower()}" for k in range(1, n + 1) for d in DETECTORS[:detectors]]


def group_id(member: str) -> str:
    """Group id of a member (its root without the detector): shared by the detectors of an exposure."""
    return member.rsplit("_", 1)[0]


def cal_filename(member: str) -> str:
    """File name of a member's level-2 exposure."""
    return f"{member}_cal.fits"


def asn_filename() -> str:
    """File name of the image3 association."""
    return f"jw{PROGRAM}-{ASN_ID}_image3_asn.json"


def _check_counts(n: int, detectors: int) -> None:
    if n < 1:
        raise ConfigError(f"number of exposures must be at least 1, got {n}")
    if detectors not in (1, 2):
        raise ConfigError(f"detectors must be 1 or 2, got {detectors}")


# ------------------------------------------------------ instrument & field ---

FULL_FRAME = 2048
DETECTOR_GAP_PX = 150
VA_SCALE = 0.9999940844823835  # velocity-aberration scale of a real NRCB1 exposure
# NRCB1's ideal frame (both detectors' wcsinfo): angle of its y axis from +V3, and its parity.
V3_IDEAL_Y_ANGLE_DEG = siaf.aperture("NRCB1")["V3IdlYAngle"]
V_IDEAL_PARITY = siaf.aperture("NRCB1")["VIdlParity"]
FIELD_RA_DEG, FIELD_DEC_DEG, FIELD_ROLL_DEG = 53.16, -27.78, 42.0
DITHER_FRACTION = (0.05, 0.15)  # dither length as a fraction of the field side
WCS_SHIFT_ARCSEC = (0.05, 0.30)
WCS_ROTATION_DEG = 0.02
SCA_NUMBERS = {"NRCB1": 486, "NRCB2": 487}

# MEDIUM8 readout, 5 groups, one integration; times in seconds.
READPATT, NFRAMES, GROUPGAP, NGROUPS, NINTS = "MEDIUM8", 8, 2, 5, 1
FRAME_TIME_S = 10.73677
GROUP_TIME_S = (NFRAMES + GROUPGAP) * FRAME_TIME_S
INTEGRATION_TIME_S = (NGROUPS * NFRAMES + (NGROUPS - 1) * GROUPGAP) * FRAME_TIME_S
EXPOSURE_TIME_S = INTEGRATION_TIME_S * NINTS
MEASUREMENT_TIME_S = (NGROUPS - 1) * GROUP_TIME_S * NINTS
DURATION_S = (NGROUPS * (NFRAMES + GROUPGAP) + 1) * FRAME_TIME_S * NINTS
EXPOSURE_GAP_S = 90.0
START_MJD = 60310.25

# Photometric calibration and noise.
GAIN_E_PER_DN = 2.0
PHOTMJSR = 0.5  # MJy/sr per DN/s
ELECTRONS_PER_MJYSR = GAIN_E_PER_DN * MEASUREMENT_TIME_S / PHOTMJSR
READ_NOISE_E = 8.0
READ_NOISE_SPREAD = 0.1
FLAT_ERROR = 5e-4
MJYSR_TO_UJY_ARCSEC2 = 1e12 / (u.sr.to(u.arcsec**2))
ARCSEC2_TO_SR = u.arcsec.to(u.rad) ** 2
ABVEGA_OFFSET_F200W = 1.70

# Sky model.
SKY_BASE_MJYSR = (0.1, 0.3)
SKY_OFFSET_SIGMA = (2.0, 8.0)
DEFAULT_DENSITY_PER_ARCSEC2 = 0.5  # stars + galaxies, half each
SITE_JITTER = 0.3  # fraction of the lattice cell
SOURCE_MARGIN_ARCSEC = 3.0
# Flux distributions [µJy]: (faintest, start of the power law, brightest).
STAR_FLUX_UJY = (0.007, 0.03, 1000.0)
GALAXY_FLUX_UJY = (0.015, 0.06, 300.0)
FAINT_FRACTION = 0.2  # log-uniform below the power law
FLUX_POWER_LAW_INDEX = 0.8  # N(>F) ∝ F^-index above it
GALAXY_R_HALF_ARCSEC = (0.05, 0.5)
GALAXY_ELLIPTICITY = (0.0, 0.6)

# Sérsic profiles (truncated smoothly between 3 and 4 r_e) as Gaussian
# mixtures: sigma in units of the half-light radius, flux fractions. Fitted
# once by least squares in r·I(r); deviation < 2.5% of the peak of r·I(r).
SERSIC_MIXTURES = {
    1.0: (
        (0.06142, 0.16670, 0.35121, 0.66791, 1.22817),
        (0.00106, 0.01360, 0.09110, 0.36628, 0.52796),
    ),
    1.5: (
        (0.02301, 0.06994, 0.16206, 0.33410, 0.66314, 1.40241),
        (0.00049, 0.00543, 0.03162, 0.12291, 0.33530, 0.50424),
    ),
    2.5: (
        (0.01135, 0.04052, 0.11002, 0.26703, 0.62678, 1.61021),
        (0.00087, 0.00807, 0.04048, 0.13555, 0.31625, 0.49879),
    ),
    4.0: (
        (0.00267, 0.00848, 0.02268, 0.05539, 0.12921, 0.29747, 0.70342, 1.93766),
        (0.00028, 0.00179, 0.00773, 0.02586, 0.07019, 0.15653, 0.28595, 0.45167),
    ),
}

# The calwebb_detector1/image2 steps recorded as COMPLETE in every _cal file.
LEVEL2_STEPS = (
    "group_scale dq_init saturation ipc superbias refpix linearity dark_sub jump ramp_fit gain_scale"
    " assign_wcs flat_field photom"
).split()

# Detector defects and cosmic rays.
DQ_DO_NOT_USE, DQ_DEAD, DQ_HOT = PIXEL["DO_NOT_USE"], PIXEL["DEAD"], PIXEL["HOT"]
HOT_FRACTION, DEAD_FRACTION = 1e-4, 5e-5
CR_EVENTS_PER_PIXEL = 4e-4
CR_POINT_FRACTION = 0.5
CR_TRACK_LENGTH_PX = (1.0, 6.0)
CR_PEAK_SIGMA = (3.0, 1000.0)

# Independent random streams, so that switching one effect off leaves the others unchanged.
_STREAM_POINTING, _STREAM_SOURCES, _STREAM_DETECTOR, _STREAM_NOISE, _STREAM_CR = range(1, 6)


def _rng(seed: int, stream: int, *keys: int) -> np.random.Generator:
    return np.random.default_rng([seed, stream, *keys])


# ------------------------------------------------------------- distortion ---


@dataclass(frozen=True)
class DetectorGeometry:
    """A (sub)array of one detector: pixel → V2V3 map and pixel solid angles.

    ``area`` is the relative pixel solid angle (AREA extension) and
    ``pixar_sr`` the solid angle of the centre pixel [sr].
    """

    name: str
    size: int
    to_v2v3: Model
    v2_ref: float
    v3_ref: float
    area: np.ndarray
    pixar_sr: float


@lru_cache(maxsize=8)
def detector_geometry(detector: str, size: int) -> DetectorGeometry:
    """Geometry of the centred ``size``² subarray of ``detector`` (NRCB1 or NRCB2)."""
    full = siaf.sci_to_v2v3("NRCB1")
    origin = (FULL_FRAME - size) // 2
    to_v2v3 = (models.Shift(origin) & models.Shift(origin)) | full
    if detector == "NRCB2":
        # Beside NRCB1 along +V3, one subarray height plus the gap away.
        (_, v3_low), (_, v3_high) = (to_v2v3(0.0, y) for y in (-0.5, size - 0.5))
        step = (v3_high - v3_low) * (size + DETECTOR_GAP_PX) / size
        to_v2v3 = to_v2v3 | (models.Shift(0.0) & models.Shift(step))
    centre = (size - 1) / 2
    v2_ref, v3_ref = (float(v) for v in to_v2v3(centre, centre))
    solid_angle = _pixel_solid_angle_map(to_v2v3, size)
    pixar_sr = float(_pixel_solid_angles(to_v2v3, np.array([centre]), np.array([centre]))[0])
    area = (solid_angle / pixar_sr).astype(np.float32)
    return DetectorGeometry(detector, size, to_v2v3, v2_ref, v3_ref, area, pixar_sr)


def _pixel_solid_angles(to_v2v3, x, y):
    """Solid angle [sr] of pixels at (x, y): |∂(v2,v3)/∂(x,y)| cos(v3), aberration included."""
    h = 0.5
    v2, v3 = to_v2v3(np.concatenate([x + h, x - h, x, x]), np.concatenate([y, y, y + h, y - h]))
    n = len(x)
    d2x, d3x = (v2[:n] - v2[n : 2 * n]) / (2 * h), (v3[:n] - v3[n : 2 * n]) / (2 * h)
    d2y, d3y = (v2[2 * n : 3 * n] - v2[3 * n :]) / (2 * h), (v3[2 * n : 3 * n] - v3[3 * n :]) / (2 * h)
    v3_mid = (v3[2 * n : 3 * n] + v3[3 * n :]) / 2 * VA_SCALE
    det = np.abs(d2x * d3y - d2y * d3x) * VA_SCALE**2
    return det * np.cos(np.radians(v3_mid / 3600.0)) * ARCSEC2_TO_SR


def _pixel_solid_angle_map(to_v2v3, size):
    """Solid angle [sr] of every pixel: exact on a coarse grid, bicubic in between."""
    coarse = np.linspace(0, size - 1, max(9, size // 32 + 1))
    gx, gy = np.meshgrid(coarse, coarse)
    omega = _pixel_solid_angles(to_v2v3, gx.ravel(), gy.ravel()).reshape(gx.shape)
    spline = RectBivariateSpline(coarse, coarse, omega, kx=3, ky=3)  # (y, x) order
    pixels = np.arange(size, dtype=float)
    return spline(pixels, pixels)


# ------------------------------------------------------------------- wcs ---


@dataclass(frozen=True)
class Pointing:
    """Attitude angles at a member's reference point (V2_REF, V3_REF) [deg]."""

    ra_ref: float
    dec_ref: float
    roll_ref: float


def _v2v3_to_sky(v2_ref: float, v3_ref: float, pointing: Pointing) -> Model:
    """V2V3 [arcsec] → (RA, Dec) [deg] for an attitude, as jwst's ``v23tosky``."""
    angles = [v2_ref / 3600, -v3_ref / 3600, pointing.roll_ref, pointing.dec_ref, -pointing.ra_ref]
    model = (
        (models.Scale(1 / 3600) & models.Scale(1 / 3600))
        | SphericalToCartesian(wrap_lon_at=180)
        | models.RotationSequence3D(angles, axes_order="zyxyz")
        | CartesianToSpherical(wrap_lon_at=360)
    )
    model.name = "v23tosky"
    return model


def _rotation_matrix(angles, axes: str) -> np.ndarray:
    return np.array(models.RotationSequence3D(angles, axes_order=axes)(*np.eye(3)))


_ROLL_SIGN = np.sign(_rotation_matrix([30.0], "x")[2, 1])


def _pointing_at(v2: float, v3: float, v2_ref: float, v3_ref: float, pointing: Pointing) -> Pointing:
    """Attitude angles at another V2V3 point (v2, v3) of the same attitude."""
    ra, dec = _v2v3_to_sky(v2_ref, v3_ref, pointing)(v2, v3)
    attitude = _rotation_matrix(
        [v2_ref / 3600, -v3_ref / 3600, pointing.roll_ref, pointing.dec_ref, -pointing.ra_ref], "zyxyz"
    )
    before = _rotation_matrix([v2 / 3600, -v3 / 3600], "zy")
    after = _rotation_matrix([float(dec), -float(ra)], "yz")
    roll_matrix = after.T @ attitude @ before.T
    roll = np.degrees(np.arctan2(_ROLL_SIGN * roll_matrix[2, 1], roll_matrix[1, 1]))
    return Pointing(float(ra), float(dec), float(roll % 360.0))


def exposure_wcs(geometry: DetectorGeometry, pointing: Pointing) -> gwcs_wcs.WCS:
    """The gwcs of one member: detector → v2v3 → v2v3vacorr → world."""
    s = VA_SCALE
    aberration = (models.Scale(s, name="dva_scale_v2") & models.Scale(s, name="dva_scale_v3")) | (
        models.Shift(geometry.v2_ref * (1 - s), name="dva_v2_shift")
        & models.Shift(geometry.v3_ref * (1 - s), name="dva_v3_shift")
    )
    aberration.name = "DVA_Correction"
    arcsec = (u.arcsec, u.arcsec)
    pipeline = [
        (
            cf.Frame2D(name="detector", axes_order=(0, 1), axes_names=("x", "y"), unit=(u.pix, u.pix)),
            geometry.to_v2v3,
        ),
        (cf.Frame2D(name="v2v3", axes_order=(0, 1), axes_names=("v2", "v3"), unit=arcsec), aberration),
        (
            cf.Frame2D(name="v2v3vacorr", axes_order=(0, 1), axes_names=("v2", "v3"), unit=arcsec),
            _v2v3_to_sky(geometry.v2_ref, geometry.v3_ref, pointing),
        ),
        (
            cf.CelestialFrame(
                reference_frame=coord.ICRS(), name="world", axes_names=("lon", "lat"), unit=(u.deg, u.deg)
            ),
            None,
        ),
    ]
    wcs = gwcs_wcs.WCS(pipeline)
    edge = (-0.5, geometry.size - 0.5)
    wcs.bounding_box = (edge, edge)
    wcs.pixel_shape = (geometry.size, geometry.size)
    return wcs


def _tangent_offsets(ra, dec, ra0, dec0):
    """Small offsets (east, north) [arcsec] of (ra, dec) from (ra0, dec0)."""
    dra = (np.asarray(ra) - ra0 + 180.0) % 360.0 - 180.0
    return dra * np.cos(np.radians(dec0)) * 3600.0, (np.asarray(dec) - dec0) * 3600.0


def sky_jacobian(wcs: gwcs_wcs.WCS, x, y) -> np.ndarray:
    """Local Jacobian ∂(east, north)/∂(x, y) [arcsec/pixel] of the wcs, shape (n, 2, 2)."""
    x, y = np.atleast_1d(x).astype(float), np.atleast_1d(y).astype(float)
    h, n = 0.5, len(x)
    ra, dec = wcs.forward_transform(
        np.concatenate([x + h, x - h, x, x]), np.concatenate([y, y, y + h, y - h])
    )
    east_x, north_x = _tangent_offsets(ra[:n], dec[:n], ra[n : 2 * n], dec[n : 2 * n])
    east_y, north_y = _tangent_offsets(ra[2 * n : 3 * n], dec[2 * n : 3 * n], ra[3 * n :], dec[3 * n :])
    return np.stack([np.stack([east_x, east_y], -1), np.stack([north_x, north_y], -1)], -2) / (2 * h)


def sky_to_pixel(wcs: gwcs_wcs.WCS, ra, dec, iterations: int = 2):
    """Exact (RA, Dec) [deg] → 0-based pixel (x, y): inverse transform + Newton steps on the forward one."""
    ra, dec = np.atleast_1d(ra).astype(float), np.atleast_1d(dec).astype(float)
    x, y = wcs.backward_transform(ra, dec)
    for _ in range(iterations):
        ra_now, dec_now = wcs.forward_transform(x, y)
        east, north = _tangent_offsets(ra, dec, ra_now, dec_now)
        step = np.linalg.solve(sky_jacobian(wcs, x, y), np.stack([east, north], -1)[..., None])[..., 0]
        x, y = x + step[:, 0], y + step[:, 1]
    return x, y


def _footprint(wcs: gwcs_wcs.WCS, size: int):
    edge = (-0.5, size - 0.5)
    return wcs.forward_transform(
        np.array([edge[0], edge[1], edge[1], edge[0]]), np.array([edge[0], edge[0], edge[1], edge[1]])
    )


def s_region(wcs: gwcs_wcs.WCS, size: int) -> str:
    """``POLYGON ICRS ra1 dec1 …`` of the pixel-corner footprint."""
    ra, dec = _footprint(wcs, size)
    return "POLYGON ICRS " + " ".join(f"{r:.9f} {d:.9f}" for r, d in zip(ra, dec, strict=True))


# ---------------------------------------------------------------- planning ---


@dataclass(frozen=True)
class MemberPlan:
    """Everything that defines one member before its pixels are made."""

    member: str
    exposure: int
    detector: str
    geometry: DetectorGeometry
    true_pointing: Pointing
    written_pointing: Pointing
    dither_px: tuple[float, float]
    sky_mjysr: float
    sky_offset_sigma: float
    start_mjd: float

    @property
    def group_id(self) -> str:
        return group_id(self.member)


def nominal_noise_sigma(sky_mjysr: float) -> float:
    """Per-pixel noise σ [MJy/sr] on blank sky with the mean read noise."""
    return float(
        np.sqrt(
            sky_mjysr / ELECTRONS_PER_MJYSR
            + (READ_NOISE_E / ELECTRONS_PER_MJYSR) ** 2
            + (FLAT_ERROR * sky_mjysr) ** 2
        )
    )


def plan_members(n, size, seed, wcs_errors=True, sky_offsets=True, detectors=1) -> list[MemberPlan]:
    """Pointings, pointing errors, sky levels and times of all members (no pixels)."""
    _check_counts(n, detectors)
    rng = _rng(seed, _STREAM_POINTING)
    reference = detector_geometry("NRCB1", size)
    sky_base = rng.uniform(*SKY_BASE_MJYSR)
    sigma = nominal_noise_sigma(sky_base)
    nominal = Pointing(FIELD_RA_DEG, FIELD_DEC_DEG, FIELD_ROLL_DEG)
    nominal_sky = _v2v3_to_sky(reference.v2_ref, reference.v3_ref, nominal)
    centre = (size - 1) / 2
    v2_dx, v3_dx = np.subtract(reference.to_v2v3(centre + 1, centre), reference.to_v2v3(centre, centre))
    v2_dy, v3_dy = np.subtract(reference.to_v2v3(centre, centre + 1), reference.to_v2v3(centre, centre))
    golden = (np.sqrt(5) - 1) / 2
    plans = []
    for k in range(1, n + 1):
        draws = rng.uniform(size=7)  # all drawn for every exposure, so a flag changes nothing else
        if k == 1:
            dither = (0.0, 0.0)
        else:
            length = (DITHER_FRACTION[0] + draws[0] * np.diff(DITHER_FRACTION)[0]) * size
            angle = 2 * np.pi * draws[1]
            dither = (
                np.round(length * np.cos(angle)) + (k * golden) % 1.0,
                np.round(length * np.sin(angle)) + (k * golden**2) % 1.0,
            )
        v2 = reference.v2_ref + dither[0] * v2_dx + dither[1] * v2_dy
        v3 = reference.v3_ref + dither[0] * v3_dx + dither[1] * v3_dy
        ra, dec = (float(c) for c in nominal_sky(v2, v3))
        true_attitude = Pointing(ra, dec, FIELD_ROLL_DEG)
        written_attitude = true_attitude
        if wcs_errors and k > 1:
            shift = WCS_SHIFT_ARCSEC[0] + draws[2] * np.diff(WCS_SHIFT_ARCSEC)[0]
            angle = 2 * np.pi * draws[3]
            moved = coord.SkyCoord(ra * u.deg, dec * u.deg).directional_offset_by(
                angle * u.rad, shift * u.arcsec
            )
            written_attitude = Pointing(
                float(moved.ra.deg),
                float(moved.dec.deg),
                FIELD_ROLL_DEG + (2 * draws[4] - 1) * WCS_ROTATION_DEG,
            )
        offset_sigma = 0.0
        if sky_offsets:
            magnitude = SKY_OFFSET_SIGMA[0] + draws[5] * np.diff(SKY_OFFSET_SIGMA)[0]
            offset_sigma = magnitude if draws[6] < 0.5 else -magnitude
        start = START_MJD + (k - 1) * (DURATION_S + EXPOSURE_GAP_S) / 86400.0
        for det in DETECTORS[:detectors]:
            geometry = detector_geometry(det, size)
            plans.append(
                MemberPlan(
                    member=f"{exposure_name(k)}_{det.lower()}",
                    exposure=k,
                    detector=det,
                    geometry=geometry,
                    true_pointing=_pointing_at(
                        geometry.v2_ref, geometry.v3_ref, reference.v2_ref, reference.v3_ref, true_attitude
                    ),
                    written_pointing=_pointing_at(
                        geometry.v2_ref, geometry.v3_ref, reference.v2_ref, reference.v3_ref, written_attitude
                    ),
                    dither_px=(float(dither[0]), float(dither[1])),
                    sky_mjysr=sky_base + offset_sigma * sigma,
                    sky_offset_sigma=offset_sigma,
                    start_mjd=start,
                )
            )
    return plans


# --------------------------------------------------------------- sky model ---


@cache
def sersic_mixture(sersic_n: float) -> tuple[np.ndarray, np.ndarray]:
    """(sigmas in units of r_half, flux fractions) of the Gaussian mixture for index n.

    Fractions are renormalised to sum to 1 and the sigmas rescaled so the
    mixture's half-light radius is exactly 1.
    """
    sigma, flux = (np.array(v, dtype=float) for v in SERSIC_MIXTURES[sersic_n])
    flux = flux / flux.sum()

    def enclosed(radius):
        return float(np.sum(flux * (1 - np.exp(-(radius**2) / (2 * sigma**2)))))

    half_light = brentq(lambda r: enclosed(r) - 0.5, 1e-6, 100.0, xtol=1e-14)
    return sigma / half_light, flux


def make_sources(plans: list[MemberPlan], seed: int,
                 density: float = DEFAULT_DENSITY_PER_ARCSEC2) -> Table:
    """The sky: stars and galaxies (``density`` per arcsec² in all) over every member's true
    footprint plus a margin."""
    rng = _rng(seed, _STREAM_SOURCES)
    true_wcs = [exposure_wcs(p.geometry, p.true_pointing) for p in plans]
    corners = [
        _tangent_offsets(*_footprint(w, p.geometry.size), FIELD_RA_DEG, FIELD_DEC_DEG)
        for w, p in zip(true_wcs, plans, strict=True)
    ]
    east = np.concatenate([c[0] for c in corners])
    north = np.concatenate([c[1] for c in corners])
    cell = 1.0 / np.sqrt(density)
    cols = np.arange(
        np.floor((east.min() - SOURCE_MARGIN_ARCSEC) / cell),
        np.ceil((east.max() + SOURCE_MARGIN_ARCSEC) / cell),
    )
    rows = np.arange(
        np.floor((north.min() - SOURCE_MARGIN_ARCSEC) / cell),
        np.ceil((north.max() + SOURCE_MARGIN_ARCSEC) / cell),
    )
    ci, ri = (a.ravel() for a in np.meshgrid(cols, rows))
    jitter = rng.uniform(-SITE_JITTER, SITE_JITTER, size=(2, ci.size))
    xi = (ci + 0.5 + jitter[0]) * cell
    eta = (ri + 0.5 + jitter[1]) * cell
    to_sky = models.Pix2Sky_TAN() | models.RotateNative2Celestial(FIELD_RA_DEG, FIELD_DEC_DEG, 180.0)
    ra, dec = to_sky(xi / 3600.0, eta / 3600.0)
    is_star = ((ci + ri) % 2) == 0

    keep = np.zeros(ra.size, dtype=bool)
    for wcs, plan in zip(true_wcs, plans, strict=True):
        margin = SOURCE_MARGIN_ARCSEC / psf.NATIVE_PIXEL_SCALE_ARCSEC
        x, y = wcs.backward_transform(ra, dec)
        keep |= (
            (x > -margin)
            & (x < plan.geometry.size - 1 + margin)
            & (y > -margin)
            & (y < plan.geometry.size - 1 + margin)
        )
    ra, dec, is_star = ra[keep], dec[keep], is_star[keep]

    count = ra.size
    draws = rng.uniform(size=(5, count))
    star_flux = _draw_flux(draws[0], STAR_FLUX_UJY)
    galaxy_flux = _draw_flux(draws[0], GALAXY_FLUX_UJY)
    r_half = np.exp(
        np.log(GALAXY_R_HALF_ARCSEC[0]) + draws[1] * np.log(GALAXY_R_HALF_ARCSEC[1] / GALAXY_R_HALF_ARCSEC[0])
    )
    indices = np.array(sorted(SERSIC_MIXTURES))
    sersic = indices[np.minimum((draws[2] * len(indices)).astype(int), len(indices) - 1)]
    ellipticity = GALAXY_ELLIPTICITY[0] + draws[3] * np.diff(GALAXY_ELLIPTICITY)[0]
    theta = 180.0 * draws[4]
    galaxy = ~is_star
    return Table(
        {
            "id": np.arange(1, count + 1),
            "ra": ra * u.deg,
            "dec": dec * u.deg,
            "flux_ujy": np.where(is_star, star_flux, galaxy_flux) * u.uJy,
            "kind": np.where(is_star, "star", "galaxy"),
            "r_half_arcsec": np.where(galaxy, r_half, 0.0) * u.arcsec,
            "sersic_n": np.where(galaxy, sersic, 0.0),
            "ellipticity": np.where(galaxy, ellipticity, 0.0),
            "theta_deg": np.where(galaxy, theta, 0.0) * u.deg,
        }
    )


def _draw_flux(quantile: np.ndarray, limits: tuple[float, float, float]) -> np.ndarray:
    """Fluxes [µJy] for uniform quantiles: log-uniform faint part, then a truncated power law."""
    faintest, knee, brightest = limits
    faint = quantile < FAINT_FRACTION
    q_faint = quantile / FAINT_FRACTION
    q_bright = (quantile - FAINT_FRACTION) / (1 - FAINT_FRACTION)
    b = -FLUX_POWER_LAW_INDEX
    bright = (knee**b - q_bright * (knee**b - brightest**b)) ** (1 / b)
    return np.where(faint, faintest * (knee / faintest) ** q_faint, bright)


# --------------------------------------------------------------- rendering ---


def _source_extent_arcsec(sources: Table) -> np.ndarray:
    """Radius [arcsec] beyond which a source's stamps hold nothing."""
    widest_psf = max(s for _, s in psf.PSF_COMPONENTS)
    widest_galaxy = np.zeros(len(sources))
    for n in np.unique(sources["sersic_n"]):
        if n > 0:
            rows = np.asarray(sources["sersic_n"]) == n
            widest_galaxy[rows] = (
                sersic_mixture(float(n))[0].max() * np.asarray(sources["r_half_arcsec"])[rows]
            )
    return psf.STAMP_SIGMAS * np.hypot(widest_galaxy, widest_psf) + 0.1


def render_sources(sources: Table, wcs: gwcs_wcs.WCS, size: int) -> np.ndarray:
    """Noise-free surface brightness [MJy/sr] of ``sources`` on a size² detector.

    Each pixel holds the mean surface brightness over its true solid angle,
    so Σ image × Ω_pix = flux of every source that lies wholly on it.
    """
    image = np.zeros((size, size))
    if len(sources) == 0:
        return image
    x, y = sky_to_pixel(wcs, np.asarray(sources["ra"], float), np.asarray(sources["dec"], float))
    reach = _source_extent_arcsec(sources) / (0.9 * psf.NATIVE_PIXEL_SCALE_ARCSEC)
    near = (x > -reach) & (x < size - 1 + reach) & (y > -reach) & (y < size - 1 + reach)
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
            for psf_fraction, psf_sigma in psf.PSF_COMPONENTS:
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


# ---------------------------------------------------------- detector & noise ---


@lru_cache(maxsize=4)
def _detector_defects(detector: str, size: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(DQ, read noise [e⁻]) of the centred subarray: drawn on the full frame, so fixed per detector."""
    rng = _rng(seed, _STREAM_DETECTOR, DETECTORS.index(detector))
    full = (FULL_FRAME, FULL_FRAME)
    draw = rng.uniform(size=full)
    dq = np.zeros(full, dtype=np.uint32)
    dq[draw < HOT_FRACTION] = DQ_HOT | DQ_DO_NOT_USE
    dq[(draw >= HOT_FRACTION) & (draw < HOT_FRACTION + DEAD_FRACTION)] = DQ_DEAD | DQ_DO_NOT_USE
    read_noise = READ_NOISE_E * (1 + READ_NOISE_SPREAD * rng.uniform(-1, 1, size=full))
    cut = slice((FULL_FRAME - size) // 2, (FULL_FRAME - size) // 2 + size)
    return dq[cut, cut].copy(), read_noise[cut, cut].copy()


def cosmic_rays(rng: np.random.Generator, err: np.ndarray) -> tuple[np.ndarray, int]:
    """Cosmic-ray image [MJy/sr] and the number of events, for noise-free errors ``err``.

    See the module docstring for the rate, track and amplitude distributions.
    """
    ny, nx = err.shape
    events = rng.poisson(CR_EVENTS_PER_PIXEL * nx * ny)
    start = rng.uniform(-0.5, [nx - 0.5, ny - 0.5], size=(events, 2))
    track = rng.uniform(size=events) >= CR_POINT_FRACTION
    length = np.where(track, rng.uniform(*CR_TRACK_LENGTH_PX, size=events), 0.0)
    angle = rng.uniform(0, 2 * np.pi, size=events)
    peak = np.exp(rng.uniform(np.log(CR_PEAK_SIGMA[0]), np.log(CR_PEAK_SIGMA[1]), size=events))
    # Charge is spread evenly along the segment: 20 samples per pixel of length.
    samples = np.maximum(1, np.ceil(20 * length).astype(int))
    event = np.repeat(np.arange(events), samples)
    position = (np.arange(event.size) - np.repeat(np.cumsum(samples) - samples, samples) + 0.5) / samples[
        event
    ]
    along = (position - 0.5) * length[event]
    px = np.floor(start[event, 0] + along * np.cos(angle[event]) + 0.5).astype(int)
    py = np.floor(start[event, 1] + along * np.sin(angle[event]) + 0.5).astype(int)
    hit, charge = np.unique(np.stack([event, py, px], -1), axis=0, return_counts=True)
    share = charge / samples[hit[:, 0]]
    brightest = np.zeros(events)
    np.maximum.at(brightest, hit[:, 0], share)
    on_detector = (hit[:, 1] >= 0) & (hit[:, 1] < ny) & (hit[:, 2] >= 0) & (hit[:, 2] < nx)
    hit, share = hit[on_detector], share[on_detector]
    sigma_units = peak[hit[:, 0]] * share / brightest[hit[:, 0]]
    image = np.zeros((ny, nx))
    np.add.at(image, (hit[:, 1], hit[:, 2]), sigma_units * err[hit[:, 1], hit[:, 2]])
    return image, events


@dataclass
class Exposure:
    """Arrays of one member [MJy/sr, (MJy/sr)² for variances]; ``model`` is noise-free."""

    sci: np.ndarray
    err: np.ndarray
    dq: np.ndarray
    var_poisson: np.ndarray
    var_rnoise: np.ndarray
    var_flat: np.ndarray
    model: np.ndarray
    cosmic_rays: np.ndarray
    cosmic_ray_events: int


def simulate_exposure(plan: MemberPlan, sources: Table, seed: int, cosmic_ray_hits: bool = True) -> Exposure:
    """Render, add noise, cosmic rays and bad pixels for one member (through its TRUE wcs)."""
    size = plan.geometry.size
    true_wcs = exposure_wcs(plan.geometry, plan.true_pointing)
    model = render_sources(sources, true_wcs, size) + plan.sky_mjysr
    dq, read_noise_e = _detector_defects(plan.detector, size, seed)
    keys = (plan.exposure, DETECTORS.index(plan.detector))
    gain = ELECTRONS_PER_MJYSR
    var_poisson = model / gain
    var_rnoise = (read_noise_e / gain) ** 2
    var_flat = (FLAT_ERROR * model) ** 2
    rng = _rng(seed, _STREAM_NOISE, *keys)
    sci = rng.poisson(model * gain) / gain + rng.standard_normal(model.shape) * np.sqrt(var_rnoise + var_flat)
    err = np.sqrt(var_poisson + var_rnoise + var_flat)
    if cosmic_ray_hits:
        cr, events = cosmic_rays(_rng(seed, _STREAM_CR, *keys), err)
    else:
        cr, events = np.zeros_like(model), 0
    bad = (dq & DQ_DO_NOT_USE) > 0
    cr[bad] = 0.0

    def written(array):  # as in real _cal files: NaN wherever DO_NOT_USE
        return np.where(bad, np.nan, array).astype(np.float32)

    return Exposure(
        sci=written(sci + cr),
        err=written(err),
        dq=dq.copy(),
        var_poisson=written(var_poisson),
        var_rnoise=written(var_rnoise),
        var_flat=written(var_flat),
        model=model.astype(np.float32),
        cosmic_rays=cr.astype(np.float32),
        cosmic_ray_events=events,
    )


# ------------------------------------------------------------------ output ---


def _fits_wcsinfo(wcs: gwcs_wcs.WCS, size: int) -> dict:
    """Tangent-plane approximation at the reference pixel, for FITS readers."""
    centre = (size - 1) / 2
    ra, dec = wcs.forward_transform(centre, centre)
    cd = sky_jacobian(wcs, [centre], [centre])[0] / 3600.0  # deg/pixel, rows (east, north)
    scale = float(np.sqrt(abs(np.linalg.det(cd))))
    pc = cd / scale
    return {
        "wcsaxes": 2,
        "crpix1": centre + 1,
        "crpix2": centre + 1,
        "crval1": float(ra),
        "crval2": float(dec),
        "ctype1": "RA---TAN",
        "ctype2": "DEC--TAN",
        "cunit1": "deg",
        "cunit2": "deg",
        "cdelt1": scale,
        "cdelt2": scale,
        "pc1_1": float(pc[0, 0]),
        "pc1_2": float(pc[0, 1]),
        "pc2_1": float(pc[1, 0]),
        "pc2_2": float(pc[1, 1]),
        "siaf_xref_sci": centre + 1,
        "siaf_yref_sci": centre + 1,
    }


def _v1_pointing(plan: MemberPlan, pointing: Pointing) -> dict:
    """RA/Dec of the V1 axis and PA of V3 there, for ``meta.pointing``."""
    to_sky = _v2v3_to_sky(plan.geometry.v2_ref, plan.geometry.v3_ref, pointing)
    ra_v1, dec_v1 = to_sky(0.0, 0.0)
    ra_up, dec_up = to_sky(0.0, 60.0)
    v1 = coord.SkyCoord(ra_v1 * u.deg, dec_v1 * u.deg)
    pa_v3 = v1.position_angle(coord.SkyCoord(ra_up * u.deg, dec_up * u.deg)).deg
    return {"ra_v1": float(ra_v1), "dec_v1": float(dec_v1), "pa_v3": float(pa_v3)}


def build_cal_model(plan: MemberPlan, exposure: Exposure) -> datamodels.ImageModel:
    """The member's ``_cal`` ImageModel, carrying the WRITTEN wcs and pointing."""
    geometry, written = plan.geometry, plan.written_pointing
    size = geometry.size
    wcs = exposure_wcs(geometry, written)
    model = datamodels.ImageModel(
        data=exposure.sci,
        err=exposure.err,
        dq=exposure.dq,
        var_poisson=exposure.var_poisson,
        var_rnoise=exposure.var_rnoise,
        var_flat=exposure.var_flat,
        area=geometry.area,
    )
    meta = model.meta
    meta.filename = cal_filename(plan.member)
    meta.wcs = wcs
    meta.telescope = "JWST"
    meta.bunit_data = meta.bunit_err = "MJy/sr"
    meta.instrument.name = INSTRUMENT
    meta.instrument.detector = plan.detector
    meta.instrument.module = "B"
    meta.instrument.channel = "SHORT"
    meta.instrument.filter = FILTER
    meta.instrument.pupil = PUPIL

    start = Time(plan.start_mjd, format="mjd", scale="utc")
    end = start + DURATION_S * u.s
    obs = meta.observation
    obs.program_number, obs.observation_number, obs.visit_number = PROGRAM, "001", "001"
    obs.visit_group, obs.sequence_id, obs.activity_id = "02", "1", "01"
    obs.exposure_number = f"{plan.exposure:05d}"
    obs.visit_id = f"{PROGRAM}001001"
    obs.obs_id = f"V{PROGRAM}001001P0000000002101"
    obs.date, obs.time = start.isot.split("T")
    obs.date_beg, obs.date_end = start.isot, end.isot

    exp = meta.exposure
    exp.type = "NRC_IMAGE"
    exp.readpatt, exp.nframes, exp.groupgap = READPATT, NFRAMES, GROUPGAP
    exp.ngroups, exp.nints = NGROUPS, NINTS
    exp.frame_time, exp.group_time = FRAME_TIME_S, GROUP_TIME_S
    exp.integration_time = INTEGRATION_TIME_S
    exp.exposure_time = exp.effective_exposure_time = EXPOSURE_TIME_S
    exp.measurement_time = MEASUREMENT_TIME_S
    exp.duration = exp.elapsed_exposure_time = DURATION_S
    exp.start_time = exp.start_time_mjd = start.mjd
    exp.mid_time = exp.mid_time_mjd = (start.mjd + end.mjd) / 2
    exp.end_time = exp.end_time_mjd = end.mjd
    exp.noutputs, exp.sca_num, exp.count = 4, SCA_NUMBERS[plan.detector], plan.exposure
    exp.primary_cosmic_rays = CR_EVENTS_PER_PIXEL * 1000 / DURATION_S  # per thousand pixels per second

    meta.subarray.name = "FULL" if size == FULL_FRAME else "GENERIC"
    meta.subarray.xstart = meta.subarray.ystart = (FULL_FRAME - size) // 2 + 1
    meta.subarray.xsize = meta.subarray.ysize = size

    meta.target.catalog_name = meta.target.proposer_name = "SYNTHETIC-FIELD"
    meta.target.type = "FIXED"
    meta.target.ra, meta.target.dec = FIELD_RA_DEG, FIELD_DEC_DEG

    meta.photometry.conversion_megajanskys = PHOTMJSR
    meta.photometry.conversion_microjanskys = PHOTMJSR * MJYSR_TO_UJY_ARCSEC2
    meta.photometry.pixelarea_steradians = geometry.pixar_sr
    meta.photometry.pixelarea_arcsecsq = geometry.pixar_sr / ARCSEC2_TO_SR

    info = meta.wcsinfo
    info.v2_ref, info.v3_ref = geometry.v2_ref, geometry.v3_ref
    info.ra_ref, info.dec_ref, info.roll_ref = written.ra_ref, written.dec_ref, written.roll_ref
    info.v3yangle, info.vparity = V3_IDEAL_Y_ANGLE_DEG, V_IDEAL_PARITY
    info.s_region = s_region(wcs, size)
    for key, value in _fits_wcsinfo(wcs, size).items():
        setattr(info, key, value)
    for key, value in _v1_pointing(plan, written).items():
        setattr(meta.pointing, key, value)
    meta.velocity_aberration.scale_factor = VA_SCALE
    meta.velocity_aberration.va_ra_ref, meta.velocity_aberration.va_dec_ref = written.ra_ref, written.dec_ref

    for step in LEVEL2_STEPS:
        setattr(meta.cal_step, step, "COMPLETE")
    return model


def _wcs_error(plan: MemberPlan) -> tuple[float, float, float]:
    """(east, north) shift [arcsec] and rotation [deg] of the written reference point, written − true."""
    if plan.written_pointing == plan.true_pointing:
        return 0.0, 0.0, 0.0
    true = coord.SkyCoord(plan.true_pointing.ra_ref * u.deg, plan.true_pointing.dec_ref * u.deg)
    written = coord.SkyCoord(plan.written_pointing.ra_ref * u.deg, plan.written_pointing.dec_ref * u.deg)
    east, north = true.spherical_offsets_to(written)
    rotation = (plan.written_pointing.roll_ref - plan.true_pointing.roll_ref + 180.0) % 360.0 - 180.0
    return float(east.to_value(u.arcsec)), float(north.to_value(u.arcsec)), float(rotation)


def _exposure_row(plan: MemberPlan, exposure: Exposure) -> dict:
    dx, dy, rot = _wcs_error(plan)
    hit = exposure.cosmic_rays != 0
    return {
        "member": plan.member,
        "group_id": plan.group_id,
        "exposure": plan.exposure,
        "detector": plan.detector,
        "ra_ref_true": plan.true_pointing.ra_ref,
        "dec_ref_true": plan.true_pointing.dec_ref,
        "roll_ref_true": plan.true_pointing.roll_ref,
        "ra_ref_written": plan.written_pointing.ra_ref,
        "dec_ref_written": plan.written_pointing.dec_ref,
        "roll_ref_written": plan.written_pointing.roll_ref,
        "v2_ref": plan.geometry.v2_ref,
        "v3_ref": plan.geometry.v3_ref,
        "wcs_dx_arcsec": dx,
        "wcs_dy_arcsec": dy,
        "wcs_rot_deg": rot,
        "dither_x_px": plan.dither_px[0],
        "dither_y_px": plan.dither_px[1],
        "sky_mjysr": plan.sky_mjysr,
        "sky_offset_sigma": plan.sky_offset_sigma,
        "noise_sigma_mjysr": nominal_noise_sigma(plan.sky_mjysr),
        "electrons_per_mjysr": ELECTRONS_PER_MJYSR,
        "readnoise_e": READ_NOISE_E,
        "readnoise_spread": READ_NOISE_SPREAD,
        "flat_error": FLAT_ERROR,
        "exposure_time_s": EXPOSURE_TIME_S,
        "measurement_time_s": MEASUREMENT_TIME_S,
        "start_mjd": plan.start_mjd,
        "cr_events": exposure.cosmic_ray_events,
        "cr_pixel_fraction": float(hit.mean()),
    }


_EXPOSURE_UNITS = {
    **{f"{a}_ref_{w}": u.deg for a in ("ra", "dec", "roll") for w in ("true", "written")},
    "v2_ref": u.arcsec,
    "v3_ref": u.arcsec,
    "wcs_dx_arcsec": u.arcsec,
    "wcs_dy_arcsec": u.arcsec,
    "wcs_rot_deg": u.deg,
    "dither_x_px": u.pix,
    "dither_y_px": u.pix,
    "sky_mjysr": u.MJy / u.sr,
    "noise_sigma_mjysr": u.MJy / u.sr,
    "exposure_time_s": u.s,
    "measurement_time_s": u.s,
}


def _write_reference_files(truth_dir: Path, pixel_scale_arcsec: float) -> None:
    """psf.json, apcorr.fits and abvegaoffset.asdf for this PSF."""
    (truth_dir / "psf.json").write_text(psf.psf_description(pixel_scale_arcsec) + "\n")
    table = psf.aperture_correction_table(pixel_scale_arcsec)
    apcorr = datamodels.NrcImgApcorrModel()
    apcorr.apcorr_table = table.as_array()
    apcorr.meta.exposure.type = "NRC_IMAGE"
    _describe_reference(apcorr, "APCORR", "Synthetic F200W aperture corrections (image3.synth.psf)")
    apcorr.save(truth_dir / "apcorr.fits")
    abvega = datamodels.ABVegaOffsetModel()
    abvega.abvega_offset = Table(
        {
            "filter": ["F200W"],
            "pupil": ["CLEAR"],
            "abvega_offset": np.array([ABVEGA_OFFSET_F200W], np.float32),
        }
    )
    _describe_reference(abvega, "ABVEGAOFFSET", "Synthetic F200W AB - Vega magnitude offset")
    abvega.save(truth_dir / "abvegaoffset.asdf")


def _describe_reference(model, reftype: str, description: str) -> None:
    meta = model.meta
    meta.reftype, meta.description = reftype, description
    meta.author, meta.pedigree, meta.useafter = "image3.synth", "DUMMY", "2022-01-01T00:00:00"
    meta.instrument.name = "NIRCAM"


def _write_asn(out_dir: Path, members: list[str]) -> Path:
    asn = {
        "asn_type": "image3",
        "asn_rule": "candidate_Asn_Lv3Image",
        "asn_id": ASN_ID,
        "asn_pool": "image3_synth_pool",
        "program": PROGRAM,
        "target": "1",
        "version_id": None,
        "code_version": f"image3 {__version__}",
        "degraded_status": "No known degraded exposures in association.",
        "constraints": "synthetic data from image3.synth",
        "products": [
            {
                "name": PRODUCT_NAME,
                "members": [{"expname": cal_filename(m), "exptype": "science"} for m in members],
            }
        ],
    }
    path = out_dir / asn_filename()
    path.write_text(json.dumps(asn, indent=2) + "\n")
    return path


def make_association(
    out_dir,
    n: int = 4,
    size: int = 1024,
    seed: int = 1,
    wcs_errors: bool = True,
    sky_offsets: bool = True,
    cosmic_rays: bool = True,
    detectors: int = 1,
    truth_images: bool = False,
    density: float = DEFAULT_DENSITY_PER_ARCSEC2,
) -> Path:
    """Write ``n`` exposures (× ``detectors``) of a synthetic field, the ASN and the truth.

    Returns the path of the ASN file. Deterministic for a given seed and
    arguments; see the module docstring for the model and the file layout.
    """
    if not MIN_SIZE <= size <= MAX_SIZE:
        raise ConfigError(f"size must be between {MIN_SIZE} and {MAX_SIZE} pixels, got {size}")
    _check_counts(n, detectors)
    out_dir = Path(out_dir)
    truth_dir = out_dir / "truth"
    truth_dir.mkdir(parents=True, exist_ok=True)

    plans = plan_members(n, size, seed, wcs_errors, sky_offsets, detectors)
    sources = make_sources(plans, seed, density)
    rows = []
    for plan in plans:
        exposure = simulate_exposure(plan, sources, seed, cosmic_rays)
        build_cal_model(plan, exposure).save(out_dir / cal_filename(plan.member))
        asdf.AsdfFile({"wcs": exposure_wcs(plan.geometry, plan.true_pointing)}).write_to(
            truth_dir / f"{plan.member}_wcs.asdf"
        )
        _write_image(
            truth_dir / f"{plan.member}_cr.fits", exposure.cosmic_rays, plan.member, "injected cosmic rays"
        )
        if truth_images:
            _write_image(
                truth_dir / f"{plan.member}_model.fits",
                exposure.model,
                plan.member,
                "noise-free image, sky included",
            )
        rows.append(_exposure_row(plan, exposure))

    settings = {
        "generator": f"image3.synth {__version__}",
        "seed": seed,
        "n": n,
        "size": size,
        "detectors": detectors,
        "wcs_errors": wcs_errors,
        "sky_offsets": sky_offsets,
        "cosmic_rays": cosmic_rays,
        "density_per_arcsec2": density,
    }
    sources.meta.update(settings)
    sources.write(truth_dir / "sources.ecsv", overwrite=True)
    table = Table(rows)
    for name, unit in _EXPOSURE_UNITS.items():
        table[name].unit = unit
    table.meta.update(settings)
    table.write(truth_dir / "exposures.ecsv", overwrite=True)
    _write_reference_files(truth_dir, float(np.sqrt(plans[0].geometry.pixar_sr / ARCSEC2_TO_SR)))
    return _write_asn(out_dir, [p.member for p in plans])


def _write_image(path: Path, image: np.ndarray, member: str, what: str) -> None:
    header = fits.Header({"BUNIT": "MJy/sr", "MEMBER": member, "CONTENT": what})
    fits.PrimaryHDU(image.astype(np.float32), header=header).writeto(path, overwrite=True)


# --------------------------------------------------------------------- CLI ---


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="python -m image3.synth", description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, type=Path, help="output directory")
    parser.add_argument("-n", type=int, required=True, help="number of exposures")
    parser.add_argument(
        "--size", type=int, default=1024, help=f"detector side in pixels ({MIN_SIZE}-{MAX_SIZE})"
    )
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--no-wcs-errors", action="store_true", help="write the true WCS for every exposure")
    parser.add_argument("--no-sky-offsets", action="store_true", help="same sky level in every exposure")
    parser.add_argument("--no-cosmic-rays", action="store_true")
    parser.add_argument(
        "--detectors", type=int, choices=(1, 2), default=1, help="NRCB1 only, or NRCB1 and NRCB2"
    )
    parser.add_argument("--truth-images", action="store_true", help="also write noise-free images to truth/")
    parser.add_argument("--density", type=float, default=DEFAULT_DENSITY_PER_ARCSEC2,
                        help="sources (stars + galaxies) per arcsec^2")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    try:
        asn = make_association(
            args.out,
            n=args.n,
            size=args.size,
            seed=args.seed,
            wcs_errors=not args.no_wcs_errors,
            sky_offsets=not args.no_sky_offsets,
            cosmic_rays=not args.no_cosmic_rays,
            detectors=args.detectors,
            truth_images=args.truth_images,
            density=args.density,
        )
    except ConfigError as error:
        parser.exit(2, f"image3.synth: {error}\n")
    print(f"wrote {asn} in {time.perf_counter() - started:.1f} s")
