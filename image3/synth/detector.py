"""Noise, detector defects and cosmic rays: a noise-free image [MJy/sr] becomes a member's arrays.

The noise-free signal S (sky included, the truth ``model``) is converted with
G = the band's ``electrons_per_mjysr`` (gain × measurement time / PHOTMJSR):
SCI = Poisson(S·G)/G + N(0, VAR_RNOISE + VAR_FLAT) + cosmic rays, with VAR_POISSON = S/G
computed from the NOISE-FREE signal, VAR_RNOISE = (rn/G)² for a read noise rn uniform in the
instrument's read noise × (1 ± READ_NOISE_SPREAD) per pixel (fixed per detector) and
VAR_FLAT = (FLAT_ERROR × S)². ERR = √ΣVAR is thus exactly the standard deviation of
SCI − model − cosmic rays. No saturation is modelled.

Cosmic rays (unless switched off): Poisson(CR_EVENTS_PER_PIXEL × pixels) events per member,
hitting ≈ 1e-3 of the pixels. Half are single-pixel hits, half straight tracks of length
uniform 1-6 px in a random direction, the charge shared in proportion to the path length in
each pixel. The brightest pixel of an event gets an amplitude log-uniform in 3-1000 × its own
ERR, the other pixels their charge share relative to it (also in units of their own ERR).
Cosmic rays are NOT flagged in DQ (a ramp fit that missed them) and are 0 in the truth at
DO_NOT_USE pixels.

DQ: hot (HOT|DO_NOT_USE) and dead (DEAD|DO_NOT_USE) pixels, HOT_FRACTION and DEAD_FRACTION of
the full frame, fixed per detector; on MIRIMAGE also its reference columns
(REFERENCE_PIXEL|DO_NOT_USE) and the coronagraph/LRS columns (NON_SCIENCE|DO_NOT_USE). Their
SCI, ERR and VAR_* are NaN as in real ``_cal`` files.
"""

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from image3.dqflags import PIXEL
from image3.synth.apertures import DetectorGeometry
from image3.synth.instruments import (
    INSTRUMENTS,
    default_band,
    MIRI_IMAGER_FIRST_COLUMN,
    MIRI_REFERENCE_COLUMNS,
    Band,
)
from image3.synth.streams import STREAM_CR, STREAM_DETECTOR, STREAM_NOISE, rng

READ_NOISE_SPREAD = 0.1
FLAT_ERROR = 5e-4
DQ_DO_NOT_USE, DQ_DEAD, DQ_HOT = PIXEL["DO_NOT_USE"], PIXEL["DEAD"], PIXEL["HOT"]
DQ_REFERENCE_PIXEL, DQ_NON_SCIENCE = PIXEL["REFERENCE_PIXEL"], PIXEL["NON_SCIENCE"]
HOT_FRACTION, DEAD_FRACTION = 1e-4, 5e-5
CR_EVENTS_PER_PIXEL = 4e-4
CR_POINT_FRACTION = 0.5
CR_TRACK_LENGTH_PX = (1.0, 6.0)
CR_PEAK_SIGMA = (3.0, 1000.0)


def nominal_noise_sigma(sky_mjysr: float, band: Band | None = None) -> float:
    """Per-pixel noise σ [MJy/sr] on blank sky in ``band`` (NIRCam F200W if None) with the mean read noise."""
    band = band or default_band()
    gain = band.electrons_per_mjysr
    read_noise = INSTRUMENTS[band.instrument].read_noise_e
    return float(np.sqrt(sky_mjysr / gain + (read_noise / gain) ** 2 + (FLAT_ERROR * sky_mjysr) ** 2))


def _static_flags(detector: str, full_shape: tuple[int, int]) -> np.ndarray:
    """DQ of pixels that never see the sky: MIRIMAGE's reference and coronagraph/LRS columns."""
    dq = np.zeros(full_shape, dtype=np.uint32)
    if detector == "MIRIMAGE":
        dq[:, MIRI_REFERENCE_COLUMNS:MIRI_IMAGER_FIRST_COLUMN] = DQ_NON_SCIENCE | DQ_DO_NOT_USE
        dq[:, :MIRI_REFERENCE_COLUMNS] = DQ_REFERENCE_PIXEL | DQ_DO_NOT_USE
        dq[:, -MIRI_REFERENCE_COLUMNS:] = DQ_REFERENCE_PIXEL | DQ_DO_NOT_USE
    return dq


@lru_cache(maxsize=16)
def detector_defects(geometry: DetectorGeometry, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(DQ, read noise [e⁻]) of the (sub)array: drawn on the full frame, so fixed per detector."""
    detector = geometry.detector
    generator = rng(seed, STREAM_DETECTOR, detector.key)
    full = geometry.full_shape
    draw = generator.uniform(size=full)
    dq = _static_flags(detector.name, full)
    dq[draw < HOT_FRACTION] |= DQ_HOT | DQ_DO_NOT_USE
    dq[(draw >= HOT_FRACTION) & (draw < HOT_FRACTION + DEAD_FRACTION)] |= DQ_DEAD | DQ_DO_NOT_USE
    mean = INSTRUMENTS[detector.instrument].read_noise_e
    read_noise = mean * (1 + READ_NOISE_SPREAD * generator.uniform(-1, 1, size=full))
    (x0, y0), (ny, nx) = geometry.origin, geometry.shape
    cut = (slice(y0, y0 + ny), slice(x0, x0 + nx))
    return dq[cut].copy(), read_noise[cut].copy()


def cosmic_rays(generator: np.random.Generator, err: np.ndarray) -> tuple[np.ndarray, int]:
    """Cosmic-ray image [MJy/sr] and the number of events, for noise-free errors ``err``.

    See the module docstring for the rate, track and amplitude distributions.
    """
    ny, nx = err.shape
    events = generator.poisson(CR_EVENTS_PER_PIXEL * nx * ny)
    start = generator.uniform(-0.5, [nx - 0.5, ny - 0.5], size=(events, 2))
    track = generator.uniform(size=events) >= CR_POINT_FRACTION
    length = np.where(track, generator.uniform(*CR_TRACK_LENGTH_PX, size=events), 0.0)
    angle = generator.uniform(0, 2 * np.pi, size=events)
    peak = np.exp(generator.uniform(np.log(CR_PEAK_SIGMA[0]), np.log(CR_PEAK_SIGMA[1]), size=events))
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


def observe(model: np.ndarray, geometry: DetectorGeometry, band: Band, seed: int, keys: tuple[int, ...],
            cosmic_ray_hits: bool = True) -> Exposure:
    """Noise, cosmic rays and bad pixels on the noise-free ``model`` [MJy/sr] of one member.

    ``keys`` pick the member's noise and cosmic-ray streams (the exposure's serial number and
    the detector's key).
    """
    dq, read_noise_e = detector_defects(geometry, seed)
    gain = band.electrons_per_mjysr
    var_poisson = model / gain
    var_rnoise = (read_noise_e / gain) ** 2
    var_flat = (FLAT_ERROR * model) ** 2
    noise = rng(seed, STREAM_NOISE, *keys)
    sci = noise.poisson(model * gain) / gain + noise.standard_normal(model.shape) * np.sqrt(var_rnoise + var_flat)
    err = np.sqrt(var_poisson + var_rnoise + var_flat)
    if cosmic_ray_hits:
        cr, events = cosmic_rays(rng(seed, STREAM_CR, *keys), err)
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
