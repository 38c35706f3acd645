"""Where each exposure points: dithers, mosaic pointings, exposure sets, pointing errors and times.

A program observes one field with one instrument. Its exposures are, in time order: for each
pointing of the layout (row-major), for each exposure set (the bands taken together, e.g.
NIRCam F200W + F444W on the short and long channels), for each dither. Every exposure holds
one member per band and detector; members of one exposure share its attitude, its pointing
error, its sky offset (in units of each band's noise) and its time.

Attitudes are defined at the V2V3 reference point of the reference detector (the first
detector of the first band). Exposure 1 of the program puts it at (FIELD_RA_DEG, FIELD_DEC_DEG)
at roll_ref FIELD_ROLL_DEG; every other exposure is slewed at the same roll by its pointing's
offset plus its dither, both measured along the reference detector's pixel axes [pixels]:

- layout ``dither`` (default): one pointing; dither 1 at the pointing, dither k > 1 a random
  step of DITHER_FRACTION of the array side plus sub-pixel fractions from a Kronecker sequence
  (phases spread evenly over the pixel).
- layout ``mosaic:CxR``: C × R pointings on a grid stepped by MOSAIC_STEP (0.9) of the field's
  extent (the union of one exposure's detectors) along each axis, so that neighbours overlap by
  ~10%; dithers inside each pointing as above but of MOSAIC_DITHER_FRACTION of the side, which
  keep the overlaps.

Pointing errors (``wcs_errors``): every exposure but the program's first has its WRITTEN
attitude displaced by a 0.05-0.3" shift in a random direction and a roll of up to ±0.02°;
the detectors of an exposure move as one body. ``misregister=(k, shift_arcsec, roll_deg)``
gives exposure k (1-based, time order) that chosen error instead (direction random), even
without ``wcs_errors``. The random draws of the dithers and of the first exposure set's
errors and sky offsets come from one stream in the order of the default layout, so the
default program is unchanged by the options; other exposure sets draw their own.
"""

import re
from dataclasses import dataclass

import numpy as np
from astropy import coordinates as coord
from astropy import units as u

from image3.errors import ConfigError
from image3.synth import naming
from image3.synth.apertures import DetectorGeometry, compact_pair_geometry, detector_geometry
from image3.synth.detector import nominal_noise_sigma
from image3.synth.instruments import (DEFAULT_BANDS, INSTRUMENTS, MIRI_IMAGER_FIRST_COLUMN,
                                      MIRI_REFERENCE_COLUMNS, Band, band, band_detectors)
from image3.synth.streams import STREAM_POINTING, rng
from image3.synth.wcs import Pointing, pointing_at, v2v3_to_sky

FIELD_RA_DEG, FIELD_DEC_DEG, FIELD_ROLL_DEG = 53.16, -27.78, 42.0
DITHER_FRACTION = (0.05, 0.15)  # dither length as a fraction of the array side
MOSAIC_DITHER_FRACTION = (0.01, 0.03)
MOSAIC_STEP = 0.9  # pointing step as a fraction of the field's extent
WCS_SHIFT_ARCSEC = (0.05, 0.30)
WCS_ROTATION_DEG = 0.02
SKY_OFFSET_SIGMA = (2.0, 8.0)
EXPOSURE_GAP_S = 90.0
START_MJD = 60310.25


@dataclass(frozen=True)
class Layout:
    """Pointings on a ``columns`` × ``rows`` grid, dithers of ``dither_fraction`` of the array side."""

    columns: int = 1
    rows: int = 1
    dither_fraction: tuple[float, float] = DITHER_FRACTION

    @property
    def name(self) -> str:
        return "dither" if self.dither_fraction == DITHER_FRACTION else f"mosaic:{self.columns}x{self.rows}"


def parse_layout(text: str) -> Layout:
    """``dither`` or ``mosaic:CxR`` (C, R ≥ 1) → Layout; ConfigError otherwise."""
    if text == "dither":
        return Layout()
    match = re.fullmatch(r"mosaic:(\d+)x(\d+)", text)
    if not match or min(int(match[1]), int(match[2])) < 1:
        raise ConfigError(f"layout must be 'dither' or 'mosaic:CxR' (e.g. mosaic:3x3), got {text!r}")
    return Layout(int(match[1]), int(match[2]), MOSAIC_DITHER_FRACTION)


@dataclass(frozen=True)
class MemberPlan:
    """Everything that defines one member before its pixels are made."""

    member: str
    exposure: int  # the dither within its pointing, 1-based
    serial: int  # the exposure's place in the program, 1-based, time order
    visit: int  # the pointing, 1-based
    activity: int  # the exposure set, 1-based
    band: Band
    detector: str
    geometry: DetectorGeometry
    true_pointing: Pointing
    written_pointing: Pointing
    misregistered: bool
    dither_px: tuple[float, float]
    pointing_px: tuple[float, float]
    sky_mjysr: float
    sky_offset_sigma: float
    start_mjd: float

    @property
    def group_id(self) -> str:
        return naming.group_id(self.member)


def exposure_sets(instrument: str, bands=None) -> tuple[tuple[Band, ...], ...]:
    """Bands per exposure set from e.g. ``["F200W+F444W", "F150W"]`` (or tuples of names; None:
    the instrument's default band)."""
    if instrument.upper() not in DEFAULT_BANDS:
        raise ConfigError(f"instrument must be one of {', '.join(DEFAULT_BANDS)}, got {instrument!r}")
    bands = bands or (DEFAULT_BANDS[instrument.upper()],)
    sets = tuple(tuple(band(instrument, name) for name in (s.split("+") if isinstance(s, str) else s))
                 for s in bands)
    if not sets or not all(sets):
        raise ConfigError("bands: give at least one band")
    for taken in sets:
        channels = [b.channel for b in taken]
        if len(set(channels)) != len(channels):
            raise ConfigError(f"bands {'+'.join(b.name for b in taken)}: one band per channel in an exposure")
    names = [b.name for s in sets for b in s]
    if len(set(names)) != len(names):
        raise ConfigError(f"bands: each band once, got {names}")
    return sets


def geometries(taken: tuple[Band, ...], size: int, detectors) -> list[tuple[Band, DetectorGeometry]]:
    """(band, geometry) of every member of one exposure of a set, by band then detector."""
    out = []
    for b in taken:
        if detectors == 2:
            if b.channel != "SHORT":
                raise ConfigError("detectors=2 (NRCB1 and its compact companion) is for NIRCam short bands")
            out += [(b, detector_geometry("NRCB1", size)), (b, compact_pair_geometry(size))]
        elif detectors == 1:
            out.append((b, detector_geometry(band_detectors(b, "B")[0], size)))
        else:
            if b.instrument != "NIRCAM":
                raise ConfigError(f"detectors={detectors} names NIRCam modules; {b.instrument} has one detector")
            out += [(b, detector_geometry(d, size)) for d in band_detectors(b, detectors)]
    return out


def _pixel_axes(reference: DetectorGeometry) -> np.ndarray:
    """∂(v2, v3)/∂(x, y) [arcsec/pixel] at the reference point, columns x and y."""
    x, y = reference.ref_pixel
    centre = np.array(reference.to_v2v3(x, y))
    return np.column_stack([np.subtract(reference.to_v2v3(x + 1, y), centre),
                            np.subtract(reference.to_v2v3(x, y + 1), centre)])


def field_extent_px(members: list[DetectorGeometry], reference: DetectorGeometry) -> tuple[float, float]:
    """Extent (x, y) [reference pixels] of the union of the members' imaging areas in V2V3
    (MIRIMAGE: right of its coronagraph and reference columns, so that a mosaic's overlaps
    hold sky in both pointings)."""
    axes = np.linalg.inv(_pixel_axes(reference))
    corners = []
    for g in members:
        v2, v3 = g.to_v2v3(*_imaging_corners(g))
        corners.append(axes @ np.vstack([v2 - reference.v2_ref, v3 - reference.v3_ref]))
    corners = np.hstack(corners)
    return tuple(float(v) for v in np.ptp(corners, axis=1))


def _imaging_corners(geometry: DetectorGeometry):
    """Corners (x, y) of the part of the (sub)array that sees the sky through the imager."""
    ny, nx = geometry.shape
    x0, x1 = -0.5, nx - 0.5
    if geometry.name == "MIRIMAGE":
        first, last = MIRI_IMAGER_FIRST_COLUMN, geometry.full_shape[1] - MIRI_REFERENCE_COLUMNS
        x0 = max(x0, first - geometry.origin[0] - 0.5)
        x1 = min(x1, last - geometry.origin[0] - 0.5)
    return np.array([x0, x1, x1, x0]), np.array([-0.5, -0.5, ny - 0.5, ny - 0.5])


def _pointing_offsets(layout: Layout, extent: tuple[float, float]) -> list[tuple[float, float]]:
    """Offsets [reference pixels] of the layout's pointings from the first, row-major."""
    step = [MOSAIC_STEP * e for e in extent]
    return [((c - (layout.columns - 1) / 2) * step[0], (r - (layout.rows - 1) / 2) * step[1])
            for r in range(layout.rows) for c in range(layout.columns)]


def _dither(k: int, draws: np.ndarray, side: int, fraction) -> tuple[float, float]:
    if k == 1:
        return 0.0, 0.0
    golden = (np.sqrt(5) - 1) / 2
    length = (fraction[0] + draws[0] * np.diff(fraction)[0]) * side
    angle = 2 * np.pi * draws[1]
    return (float(np.round(length * np.cos(angle)) + (k * golden) % 1.0),
            float(np.round(length * np.sin(angle)) + (k * golden**2) % 1.0))


def _written(true: Pointing, draws: np.ndarray, shift_arcsec: float, roll_deg: float) -> Pointing:
    """The true attitude displaced by ``shift_arcsec`` in the direction 2π draws[3] and rolled."""
    moved = coord.SkyCoord(true.ra_ref * u.deg, true.dec_ref * u.deg).directional_offset_by(
        2 * np.pi * draws[3] * u.rad, shift_arcsec * u.arcsec
    )
    return Pointing(float(moved.ra.deg), float(moved.dec.deg), true.roll_ref + roll_deg)


def plan_members(n, size, seed, wcs_errors=True, sky_offsets=True, detectors=1, *,
                 layout: Layout = Layout(), instrument: str = "NIRCAM", bands=None,
                 misregister: tuple[int, float, float] | None = None) -> list[MemberPlan]:
    """Pointings, pointing errors, sky levels and times of all members (no pixels), in time order."""
    naming.check_counts(n, detectors)
    sets = exposure_sets(instrument, bands)
    members = [geometries(taken, size, detectors) for taken in sets]
    reference = members[0][0][1]
    pointings = layout.columns * layout.rows
    main = rng(seed, STREAM_POINTING)
    sky_quantile = main.uniform()
    # Per (pointing, dither), all drawn always, so that a flag changes nothing else.
    draws = [main.uniform(size=(pointings * n, 7))]
    draws += [rng(seed, STREAM_POINTING, s).uniform(size=(pointings * n, 7)) for s in range(2, len(sets) + 1)]
    if misregister is not None and not 1 <= misregister[0] <= pointings * n * len(sets):
        raise ConfigError(f"misregister: exposure {misregister[0]} is not in 1..{pointings * n * len(sets)}")

    extent = field_extent_px([g for taken in members for _, g in taken], reference)
    offsets = _pointing_offsets(layout, extent)
    axes = _pixel_axes(reference)
    nominal_sky = v2v3_to_sky(reference.v2_ref, reference.v3_ref,
                              Pointing(FIELD_RA_DEG, FIELD_DEC_DEG, FIELD_ROLL_DEG))
    duration = INSTRUMENTS[sets[0][0].instrument].readout.duration_s
    side = min(reference.shape)
    plans, serial = [], 0
    for tile in range(pointings):
        for s, taken in enumerate(members, start=1):
            for k in range(1, n + 1):
                p = tile * n + k - 1
                d = draws[s - 1][p]
                dither = _dither(k, draws[0][p], side, layout.dither_fraction)
                offset = np.add(offsets[tile], dither)
                v2 = reference.v2_ref + offset[0] * axes[0, 0] + offset[1] * axes[0, 1]
                v3 = reference.v3_ref + offset[0] * axes[1, 0] + offset[1] * axes[1, 1]
                ra, dec = (float(c) for c in nominal_sky(v2, v3))
                true = Pointing(ra, dec, FIELD_ROLL_DEG)
                serial += 1
                written, misregistered = true, False
                if misregister is not None and misregister[0] == serial:
                    written, misregistered = _written(true, d, misregister[1], misregister[2]), True
                elif wcs_errors and serial > 1:
                    shift = WCS_SHIFT_ARCSEC[0] + d[2] * np.diff(WCS_SHIFT_ARCSEC)[0]
                    written = _written(true, d, shift, (2 * d[4] - 1) * WCS_ROTATION_DEG)
                offset_sigma = 0.0
                if sky_offsets:
                    magnitude = SKY_OFFSET_SIGMA[0] + d[5] * np.diff(SKY_OFFSET_SIGMA)[0]
                    offset_sigma = magnitude if d[6] < 0.5 else -magnitude
                start = START_MJD + (serial - 1) * (duration + EXPOSURE_GAP_S) / 86400.0
                name = naming.exposure_name(k, tile + 1, s)
                for b, geometry in taken:
                    low, high = b.sky_mjysr
                    sky_base = low + (high - low) * sky_quantile
                    plans.append(MemberPlan(
                        member=naming.member_name(name, geometry.name),
                        exposure=k, serial=serial, visit=tile + 1, activity=s, band=b,
                        detector=geometry.name, geometry=geometry,
                        true_pointing=pointing_at(geometry.v2_ref, geometry.v3_ref,
                                                  reference.v2_ref, reference.v3_ref, true),
                        written_pointing=pointing_at(geometry.v2_ref, geometry.v3_ref,
                                                     reference.v2_ref, reference.v3_ref, written),
                        misregistered=misregistered,
                        dither_px=dither, pointing_px=tuple(float(o) for o in offsets[tile]),
                        sky_mjysr=sky_base + offset_sigma * nominal_noise_sigma(sky_base, b),
                        sky_offset_sigma=offset_sigma, start_mjd=start,
                    ))
    return plans
