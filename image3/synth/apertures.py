"""Detector (sub)arrays placed in the telescope's V2V3 frame by the SIAF: pixel → V2V3 and pixel areas.

Each detector's full frame maps to V2V3 [arcsec] through its own SIAF distortion and V2/V3
reference (``image3.synth.siaf``), so the detectors of one exposure sit where they are in the
focal plane. A ``size`` smaller than the full frame's height is the size × size subarray centred
on the aperture's reference pixel (XSciRef, YSciRef), moved inside the frame if it would stick
out (MIRIMAGE); ``size`` equal to the height is the full frame (MIRIMAGE: 1032 × 1024).

Reference point of a member: the SIAF reference pixel on a full frame, the centre pixel
((nx − 1)/2, (ny − 1)/2) of a subarray. ``area`` is the pixel solid angle relative to
``pixar_sr``, that of the reference pixel [sr]; both include the velocity-aberration scale.

``compact_pair_geometry`` is the generator's two-detector layout kept for the tests that use
it (``detectors=2``): NRCB1 and a copy of its distortion, labelled NRCB2, beside it along +V3
with a COMPACT_PAIR_GAP_PX gap (not the real NRCB2, which is 68" away).
"""

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from astropy import units as u
from astropy.modeling import Model, models
from scipy.interpolate import RectBivariateSpline

from image3.errors import ConfigError
from image3.synth import siaf
from image3.synth.instruments import DETECTORS, Detector

VA_SCALE = 0.9999940844823835  # velocity-aberration scale of a real NRCB1 exposure
ARCSEC2_TO_SR = u.arcsec.to(u.rad) ** 2
COMPACT_PAIR_GAP_PX = 150
MIN_SIZE = 256


@dataclass(frozen=True, eq=False)  # compared and hashed by identity: geometries are cached
class DetectorGeometry:
    """A (sub)array of one detector: pixel → V2V3 map, reference point and pixel solid angles.

    ``shape`` is (ny, nx), ``full_shape`` that of the full frame; ``origin`` the 0-based full-frame (x, y) of pixel (0, 0);
    ``ref_pixel`` the 0-based (x, y) of the reference point, at (v2_ref, v3_ref) [arcsec];
    ``v3yangle`` [deg] and ``vparity`` the aperture's ideal frame (wcsinfo).
    """

    detector: Detector
    shape: tuple[int, int]
    full_shape: tuple[int, int]
    origin: tuple[int, int]
    to_v2v3: Model
    ref_pixel: tuple[float, float]
    v2_ref: float
    v3_ref: float
    v3yangle: float
    vparity: int
    area: np.ndarray
    pixar_sr: float

    @property
    def name(self) -> str:
        return self.detector.name

    @property
    def is_full_frame(self) -> bool:
        return self.shape == self.full_shape


def full_frame_shape(detector: str) -> tuple[int, int]:
    """(ny, nx) of a detector's full frame."""
    entry = siaf.aperture(detector)
    return entry["YSciSize"], entry["XSciSize"]


def check_size(detector: str, size: int) -> None:
    """ConfigError unless MIN_SIZE ≤ size ≤ the full frame's height."""
    top = full_frame_shape(detector)[0]
    if not MIN_SIZE <= size <= top:
        raise ConfigError(f"size must be between {MIN_SIZE} and {top} pixels for {detector}, got {size}")


@lru_cache(maxsize=32)
def detector_geometry(detector: str, size: int) -> DetectorGeometry:
    """Geometry of ``detector``'s centred size² subarray (the full frame at its height)."""
    check_size(detector, size)
    entry = siaf.aperture(detector)
    full = full_frame_shape(detector)
    x_ref, y_ref = entry["XSciRef"] - 1, entry["YSciRef"] - 1
    if size == full[0]:
        shape, origin, ref_pixel = full, (0, 0), (x_ref, y_ref)
    else:
        corner = [int(np.floor(c - (size - 1) / 2)) for c in (x_ref, y_ref)]
        origin = tuple(min(max(c, 0), n - size) for c, n in zip(corner, full[::-1], strict=True))
        shape, ref_pixel = (size, size), ((size - 1) / 2, (size - 1) / 2)
    to_v2v3 = (models.Shift(origin[0]) & models.Shift(origin[1])) | siaf.sci_to_v2v3(detector)
    return _geometry(DETECTORS[detector], shape, full, origin, to_v2v3, ref_pixel,
                     entry["V3IdlYAngle"], entry["VIdlParity"])


@lru_cache(maxsize=8)
def compact_pair_geometry(size: int) -> DetectorGeometry:
    """The ``detectors=2`` companion of NRCB1: its distortion moved along +V3 by size + gap pixels."""
    first = detector_geometry("NRCB1", size)
    (_, v3_low), (_, v3_high) = (first.to_v2v3(0.0, y) for y in (-0.5, size - 0.5))
    step = (v3_high - v3_low) * (size + COMPACT_PAIR_GAP_PX) / size
    # A model of its own: a wcs sets its bounding box on its first transform.
    to_v2v3 = ((models.Shift(first.origin[0]) & models.Shift(first.origin[1])) | siaf.sci_to_v2v3("NRCB1")
               | (models.Shift(0.0) & models.Shift(step)))
    return _geometry(DETECTORS["NRCB2"], first.shape, first.full_shape, first.origin, to_v2v3, first.ref_pixel,
                     first.v3yangle, first.vparity)


def _geometry(detector, shape, full_shape, origin, to_v2v3, ref_pixel, v3yangle, vparity) -> DetectorGeometry:
    v2_ref, v3_ref = (float(v) for v in to_v2v3(*ref_pixel))
    solid_angle = _pixel_solid_angle_map(to_v2v3, shape)
    pixar_sr = float(_pixel_solid_angles(to_v2v3, np.array([ref_pixel[0]]), np.array([ref_pixel[1]]))[0])
    area = (solid_angle / pixar_sr).astype(np.float32)
    return DetectorGeometry(detector, shape, full_shape, origin, to_v2v3, ref_pixel, v2_ref, v3_ref,
                            float(v3yangle), int(vparity), area, pixar_sr)


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


def _pixel_solid_angle_map(to_v2v3, shape):
    """Solid angle [sr] of every pixel: exact on a coarse grid, bicubic in between."""
    ny, nx = shape
    cx = np.linspace(0, nx - 1, max(9, nx // 32 + 1))
    cy = np.linspace(0, ny - 1, max(9, ny // 32 + 1))
    gx, gy = np.meshgrid(cx, cy)
    omega = _pixel_solid_angles(to_v2v3, gx.ravel(), gy.ravel()).reshape(gx.shape)
    spline = RectBivariateSpline(cy, cx, omega, kx=3, ky=3)  # (y, x) order
    return spline(np.arange(ny, dtype=float), np.arange(nx, dtype=float))
