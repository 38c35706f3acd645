"""An extended nebula with structure on all scales, added to the sky of every member.

The nebula is one pattern on the sky: a Gaussian random field with power spectrum
P(k) ∝ k^−NEBULA_POWER_INDEX (k: spatial frequency; 3, as interstellar clouds), on a square
grid in the gnomonic (TAN) tangent plane about (FIELD_RA_DEG, FIELD_DEC_DEG) that covers every
member's true footprint plus SOURCE_MARGIN_ARCSEC. Grid pixel (i, j) is centred at
ξ = (j − (n − 1)/2) × step (towards east), η = (i − (n − 1)/2) × step (north) [arcsec], step = the finest
nominal detector pixel of the program (larger when the grid would exceed NEBULA_GRID_MAX
pixels). The pattern is shifted to a minimum of 0 (a nebula is never negative) and scaled to
unit standard deviation over the grid.

In band b a member adds amplitude × σ_b × pattern [MJy/sr], σ_b the band's nominal per-pixel
noise on its mid-range sky (``image3.synth.detector.nominal_noise_sigma``): ``amplitude`` is
the nebula's rms over the grid in units of the sky noise. The pattern is sampled at each
pixel centre (bilinear on the grid) through the member's TRUE wcs: the nebula varies little
within a pixel, its spectrum being steep.
"""

from dataclasses import dataclass

import numpy as np
from astropy.io import fits
from astropy.modeling import models
from gwcs import wcs as gwcs_wcs
from scipy import fft
from scipy.interpolate import RectBivariateSpline
from scipy.ndimage import map_coordinates

from image3.synth.detector import nominal_noise_sigma
from image3.synth.instruments import Band
from image3.synth.layouts import FIELD_DEC_DEG, FIELD_RA_DEG
from image3.synth.sources import SOURCE_MARGIN_ARCSEC
from image3.synth.streams import STREAM_NEBULA, rng

NEBULA_POWER_INDEX = 3.0
NEBULA_GRID_MAX = 4096
_COARSE_STEP_PX = 16  # pixel → tangent plane is evaluated on this grid and interpolated


@dataclass(frozen=True)
class Nebula:
    """The pattern (unit rms, minimum 0) on its grid, the grid step [arcsec] and the amplitude."""

    pattern: np.ndarray
    step_arcsec: float
    amplitude: float

    def mjysr(self, band: Band) -> float:
        """Surface brightness [MJy/sr] of one unit of the pattern in ``band``."""
        return self.amplitude * nominal_noise_sigma(float(np.mean(band.sky_mjysr)), band)

    def header(self) -> fits.Header:
        """A FITS TAN header of the grid (east to the right, north up)."""
        n = self.pattern.shape[0]
        return fits.Header([
            ("CTYPE1", "RA---TAN"), ("CTYPE2", "DEC--TAN"), ("CUNIT1", "deg"), ("CUNIT2", "deg"),
            ("CRPIX1", (n + 1) / 2), ("CRPIX2", (n + 1) / 2),
            ("CRVAL1", FIELD_RA_DEG), ("CRVAL2", FIELD_DEC_DEG),
            ("CDELT1", self.step_arcsec / 3600), ("CDELT2", self.step_arcsec / 3600),
            ("NEBINDEX", NEBULA_POWER_INDEX, "P(k) ~ k^-NEBINDEX"),
            ("NEBAMP", self.amplitude, "rms over the grid in units of the sky noise"),
        ])


def make_nebula(extent_arcsec: float, step_arcsec: float, amplitude: float, seed: int) -> Nebula:
    """A nebula covering a square of side ``extent_arcsec`` (+ margins) centred on the field."""
    side = extent_arcsec + 2 * SOURCE_MARGIN_ARCSEC
    step = max(step_arcsec, side / NEBULA_GRID_MAX)
    n = fft.next_fast_len(int(np.ceil(side / step)) + 1, real=True)
    white = rng(seed, STREAM_NEBULA).standard_normal((n, n))
    k = np.hypot(*np.meshgrid(fft.rfftfreq(n), fft.fftfreq(n)))
    k[0, 0] = np.inf  # no mean
    field = fft.irfft2(fft.rfft2(white, workers=2) * k ** (-NEBULA_POWER_INDEX / 2), s=(n, n), workers=2)
    field -= field.min()
    return Nebula((field / field.std()).astype(np.float32), float(step), float(amplitude))


def nebula_on_detector(nebula: Nebula, wcs: gwcs_wcs.WCS, shape: tuple[int, int]) -> np.ndarray:
    """The pattern (unit rms) at every pixel centre of a (ny, nx) detector with true ``wcs``."""
    ny, nx = shape
    cx = np.unique(np.r_[np.arange(0, nx, _COARSE_STEP_PX), nx - 1]).astype(float)
    cy = np.unique(np.r_[np.arange(0, ny, _COARSE_STEP_PX), ny - 1]).astype(float)
    gx, gy = np.meshgrid(cx, cy)
    to_plane = models.RotateCelestial2Native(FIELD_RA_DEG, FIELD_DEC_DEG, 180.0) | models.Sky2Pix_TAN()
    xi, eta = (v * 3600.0 / nebula.step_arcsec for v in to_plane(*wcs.forward_transform(gx, gy)))
    centre = (nebula.pattern.shape[0] - 1) / 2
    cols = RectBivariateSpline(cy, cx, xi + centre)(np.arange(ny), np.arange(nx))
    rows = RectBivariateSpline(cy, cx, eta + centre)(np.arange(ny), np.arange(nx))
    return map_coordinates(nebula.pattern, [rows, cols], order=1, mode="nearest")
