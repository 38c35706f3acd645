"""World coordinates of synthetic members: attitudes, the jwst-style gwcs, and exact sky ↔ pixel.

Each member's gwcs is ``detector → v2v3 → v2v3vacorr → world`` as in real JWST files: the
detector's SIAF distortion (``image3.synth.apertures``), a velocity-aberration scale about
(v2_ref, v3_ref), and jwst's ``v23tosky`` rotation built from (v2_ref, v3_ref, roll_ref,
dec_ref, ra_ref). Pixels are 0-based, the bounding box −0.5 … n − 0.5 on each axis. Angles in
degrees, V2V3 and tangent-plane offsets in arcsec; (east, north) offsets are small-angle
offsets on the sky.
"""

from dataclasses import dataclass

import numpy as np
from astropy import coordinates as coord
from astropy import units as u
from astropy.modeling import Model, models
from gwcs import coordinate_frames as cf
from gwcs import wcs as gwcs_wcs
from gwcs.geometry import CartesianToSpherical, SphericalToCartesian

from image3.synth.apertures import VA_SCALE, DetectorGeometry


@dataclass(frozen=True)
class Pointing:
    """Attitude angles at a V2V3 reference point (a member's V2_REF, V3_REF) [deg]."""

    ra_ref: float
    dec_ref: float
    roll_ref: float


def v2v3_to_sky(v2_ref: float, v3_ref: float, pointing: Pointing) -> Model:
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


def pointing_at(v2: float, v3: float, v2_ref: float, v3_ref: float, pointing: Pointing) -> Pointing:
    """Attitude angles at another V2V3 point (v2, v3) of the same attitude."""
    ra, dec = v2v3_to_sky(v2_ref, v3_ref, pointing)(v2, v3)
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
            v2v3_to_sky(geometry.v2_ref, geometry.v3_ref, pointing),
        ),
        (
            cf.CelestialFrame(
                reference_frame=coord.ICRS(), name="world", axes_names=("lon", "lat"), unit=(u.deg, u.deg)
            ),
            None,
        ),
    ]
    wcs = gwcs_wcs.WCS(pipeline)
    ny, nx = geometry.shape
    wcs.bounding_box = ((-0.5, nx - 0.5), (-0.5, ny - 0.5))
    wcs.pixel_shape = (nx, ny)
    return wcs


def tangent_offsets(ra, dec, ra0, dec0):
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
    east_x, north_x = tangent_offsets(ra[:n], dec[:n], ra[n : 2 * n], dec[n : 2 * n])
    east_y, north_y = tangent_offsets(ra[2 * n : 3 * n], dec[2 * n : 3 * n], ra[3 * n :], dec[3 * n :])
    return np.stack([np.stack([east_x, east_y], -1), np.stack([north_x, north_y], -1)], -2) / (2 * h)


def sky_to_pixel(wcs: gwcs_wcs.WCS, ra, dec, iterations: int = 2):
    """Exact (RA, Dec) [deg] → 0-based pixel (x, y): inverse transform + Newton steps on the forward one."""
    ra, dec = np.atleast_1d(ra).astype(float), np.atleast_1d(dec).astype(float)
    x, y = wcs.backward_transform(ra, dec)
    for _ in range(iterations):
        ra_now, dec_now = wcs.forward_transform(x, y)
        east, north = tangent_offsets(ra, dec, ra_now, dec_now)
        step = np.linalg.solve(sky_jacobian(wcs, x, y), np.stack([east, north], -1)[..., None])[..., 0]
        x, y = x + step[:, 0], y + step[:, 1]
    return x, y


def footprint(wcs: gwcs_wcs.WCS, shape: tuple[int, int]):
    """(RA, Dec) [deg] of the four pixel-corner vertices of a (ny, nx) array."""
    ny, nx = shape
    x = np.array([-0.5, nx - 0.5, nx - 0.5, -0.5])
    y = np.array([-0.5, -0.5, ny - 0.5, ny - 0.5])
    return wcs.forward_transform(x, y)


def s_region(wcs: gwcs_wcs.WCS, shape: tuple[int, int]) -> str:
    """``POLYGON ICRS ra1 dec1 …`` of the pixel-corner footprint."""
    ra, dec = footprint(wcs, shape)
    return "POLYGON ICRS " + " ".join(f"{r:.9f} {d:.9f}" for r, d in zip(ra, dec, strict=True))


def fits_wcsinfo(wcs: gwcs_wcs.WCS, ref_pixel: tuple[float, float]) -> dict:
    """Tangent-plane approximation at the reference pixel, for FITS readers (wcsinfo keys)."""
    x_ref, y_ref = ref_pixel
    ra, dec = wcs.forward_transform(x_ref, y_ref)
    cd = sky_jacobian(wcs, [x_ref], [y_ref])[0] / 3600.0  # deg/pixel, rows (east, north)
    scale = float(np.sqrt(abs(np.linalg.det(cd))))
    pc = cd / scale
    return {
        "wcsaxes": 2,
        "crpix1": x_ref + 1,
        "crpix2": y_ref + 1,
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
        "siaf_xref_sci": x_ref + 1,
        "siaf_yref_sci": y_ref + 1,
    }


def pointing_error(true: Pointing, written: Pointing) -> tuple[float, float, float]:
    """(east, north) shift [arcsec] and rotation [deg] of the written reference point, written − true."""
    if written == true:
        return 0.0, 0.0, 0.0
    t = coord.SkyCoord(true.ra_ref * u.deg, true.dec_ref * u.deg)
    w = coord.SkyCoord(written.ra_ref * u.deg, written.dec_ref * u.deg)
    east, north = t.spherical_offsets_to(w)
    rotation = (written.roll_ref - true.roll_ref + 180.0) % 360.0 - 180.0
    return float(east.to_value(u.arcsec)), float(north.to_value(u.arcsec)), float(rotation)
