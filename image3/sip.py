"""FITS TAN-SIP approximation of an exposure's gwcs, for readers of the FITS headers.

Only the gwcs (ASDF extension) carries the exact, tweakreg-corrected WCS; FITS readers
(astropy.wcs, ds9) see the SCI header. The reference refits a SIP approximation after
tweakreg (jwst ``update_fits_wcsinfo`` → gwcs ``to_fits_sip``) and stores it in
``meta.wcsinfo``, which stdatamodels writes to the SCI header (CRPIX/CRVAL/CD, CTYPE
``RA---TAN-SIP``, A_/B_/AP_/BP_ coefficients); :func:`apply_sip` does the same.

Parameters are the reference step's: ``sip_max_pix_error`` / ``sip_max_inv_pix_error`` (pixels,
forward / inverse), ``sip_degree`` / ``sip_inv_degree`` (None: the lowest degree 1-5 that meets
the error), ``sip_npoints`` (samples per axis). The reference point is the existing
``wcsinfo`` CRPIX (1-based) when there is one.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np
from astropy.io import fits
from astropy.wcs import WCS

from .errors import first_line
from .parameters import SipApproximation

log = logging.getLogger(__name__)

__all__ = ["SIP_KEYS", "apply_sip", "remove_sip", "sip_header", "sip_pixel_error"]

# jwst limits the automatic degree search to range(1, _MAX_SIP_DEGREE) with _MAX_SIP_DEGREE = 6
_AUTO_DEGREES = range(1, 6)

#: The SIP distortion keys of ``meta.wcsinfo`` (lower case, as saved in the SCI header).
SIP_KEYS = (["a_order", "b_order", "ap_order", "bp_order"]
            + [f"{s}_{i}_{j}" for s in ("a", "b", "ap", "bp") for i in range(10) for j in range(10)])
# wcsinfo keys a new SIP fit replaces (the old linear/SIP description must not linger).
_REPLACED_KEYS = ["naxis", "cdelt1", "cdelt2", "pc1_1", "pc1_2", "pc2_1", "pc2_2"] + SIP_KEYS


def sip_header(wcs, params: SipApproximation,
               crpix: Sequence[float] | None = None) -> fits.Header:
    """FITS TAN-SIP keywords approximating an imaging gwcs over its bounding box.

    ``crpix`` is 1-based (None: near the bounding-box centre). Raises ``ValueError`` when the
    requested accuracy cannot be met (gwcs ``to_fits_sip``). NAXIS keywords are not included.
    """
    header = wcs.to_fits_sip(
        max_pix_error=params.sip_max_pix_error,
        degree=_AUTO_DEGREES if params.sip_degree is None else params.sip_degree,
        max_inv_pix_error=params.sip_max_inv_pix_error,
        inv_degree=_AUTO_DEGREES if params.sip_inv_degree is None else params.sip_inv_degree,
        npoints=params.sip_npoints,
        crpix=None if crpix is None or None in crpix else list(crpix),
        projection="TAN",
    )
    del header["NAXIS*"]
    return header


def sip_pixel_error(wcs, header: fits.Header, shape: Sequence[int], n: int = 41) -> float:
    """Largest distance [pixel] between a gwcs and a FITS header's WCS on an n x n grid.

    Sky positions of the gwcs at pixel centres spanning ``shape`` (ny, nx) are mapped back to
    pixels with astropy's full (SIP-aware) inverse.
    """
    ny, nx = shape
    x, y = (a.ravel() for a in np.meshgrid(np.linspace(0, nx - 1, n), np.linspace(0, ny - 1, n)))
    ra, dec = wcs(x, y, with_bounding_box=False)
    fx, fy = WCS(header).all_world2pix(ra, dec, 0, tolerance=1e-8, maxiter=50)
    return float(np.max(np.hypot(fx - x, fy - y)))


def apply_sip(model, params: SipApproximation) -> fits.Header | None:
    """Put a TAN-SIP approximation of ``model.meta.wcs`` into ``model.meta.wcsinfo``.

    As the reference after tweakreg: nothing when ``sip_approx`` is false; the old CDELT/PC and
    SIP keys are removed, the new keys (lower case) stored, so saving the model writes them to
    the SCI header. A fit that misses the requested accuracy only logs a warning and leaves
    ``wcsinfo`` unchanged. Returns the header, or None when nothing was written.
    """
    if not params.sip_approx:
        return None
    info = model.meta.wcsinfo
    try:
        header = sip_header(model.meta.wcs, params, crpix=[info.crpix1, info.crpix2])
    except (ValueError, RuntimeError) as exc:
        log.warning("FITS SIP approximation of the WCS failed, SCI header WCS not updated: %s",
                    first_line(exc))
        return None
    instance = info.instance
    for key in _REPLACED_KEYS:
        instance.pop(key, None)
    instance.update({key.lower(): value for key, value in header.items()})
    return header


def remove_sip(wcsinfo) -> None:
    """Drop the SIP distortion keys from a model's ``meta.wcsinfo``: a product on a new,
    undistorted grid whose metadata started as an exposure's (an ``_i2d``) must not keep the
    exposure's distortion in its FITS header."""
    for key in SIP_KEYS:
        wcsinfo.instance.pop(key, None)
