"""The sky's sources: stars and galaxies on a jittered lattice, their fluxes per band, variables and movers.

Sites on a jittered square lattice in the tangent plane about (FIELD_RA_DEG, FIELD_DEC_DEG),
alternately stars and galaxies (``density`` sources per arcsec² in all,
DEFAULT_DENSITY_PER_ARCSEC2 by default: a quarter of the stars have no neighbour within 1"),
cover every member's true footprint plus SOURCE_MARGIN_ARCSEC. Base fluxes: a fraction
FAINT_FRACTION log-uniform between the first two values of STAR_FLUX_UJY / GALAXY_FLUX_UJY,
the rest a power law N(>F) ∝ F^-0.8 up to the last value. In NIRCam F200W that is a
point-source S/N (r = 2 px aperture) of 5-20 for the faint part and 20 to a few thousand
above, so a 256² exposure holds ≥ 30 stars with S/N ≥ 20, and ~10% of stars peak above
50 × ERR; the sources add ~0.003 MJy/sr (median) to the sky. Galaxies: half-light radius
(semi-major axis of the half-light ellipse) log-uniform 0.05-0.5", Sérsic n ∈ {1, 1.5, 2.5, 4}
(mixtures ``SERSIC_MIXTURES``; the mixture IS the truth: its flux and half-light radius are
exact), ellipticity 1 − b/a uniform 0-0.6, position angle θ uniform (degrees east of north).

Fluxes per band: a source's flux in band b is its base flux × the band's point-source noise
relative to F200W's on NRCB1 (``noise_ratio``: same S/N distribution in every band) × a colour
10^c, c normal with σ = COLOUR_SCATTER_DEX, c = 0 in the program's first band. So the default
F200W fluxes are the base fluxes. ``flux_ujy`` holds the first band's flux,
``flux_<band>_ujy`` each band's.

Variables (``variables``): that many stars among those with base flux above VARIABLE_MIN_UJY
in the central half of the field (each axis) vary as F(t) = F (1 + A sin(2π (t − START_MJD)/P + φ)), A uniform in VARIABLE_AMPLITUDE,
P [hours] uniform in VARIABLE_PERIOD_H, φ uniform; their table flux is the mean F, each
exposure sees F(t) at its mid-time. Movers (``movers``): that many extra point sources moving
at a constant rate (uniform in MOVER_RATE_ARCSEC_PER_H, random direction) through the field:
``ra``/``dec`` give the position at the program's middle (``epoch_mjd`` in the table meta),
within the central half of the field; during an exposure a mover draws a trail (start to end
of the exposure, sampled every TRAIL_STEP_PX pixels). Base flux log-uniform in MOVER_FLUX_UJY.
"""

from functools import cache

import numpy as np
from astropy import units as u
from astropy.modeling import models
from astropy.table import Table, vstack
from scipy.optimize import brentq

from image3.errors import ConfigError
from image3.synth import psf
from image3.synth.detector import nominal_noise_sigma
from image3.synth.instruments import DETECTORS, INSTRUMENTS, Band, band, band_detectors
from image3.synth.layouts import FIELD_DEC_DEG, FIELD_RA_DEG, START_MJD, MemberPlan
from image3.synth.streams import STREAM_COLOURS, STREAM_SOURCES, STREAM_VARIABLES, rng
from image3.synth.wcs import exposure_wcs, footprint, tangent_offsets

DEFAULT_DENSITY_PER_ARCSEC2 = 0.5  # stars + galaxies, half each
SITE_JITTER = 0.3  # fraction of the lattice cell
SOURCE_MARGIN_ARCSEC = 3.0
# Base flux distributions [µJy]: (faintest, start of the power law, brightest).
STAR_FLUX_UJY = (0.007, 0.03, 1000.0)
GALAXY_FLUX_UJY = (0.015, 0.06, 300.0)
FAINT_FRACTION = 0.2  # log-uniform below the power law
FLUX_POWER_LAW_INDEX = 0.8  # N(>F) ∝ F^-index above it
GALAXY_R_HALF_ARCSEC = (0.05, 0.5)
GALAXY_ELLIPTICITY = (0.0, 0.6)
COLOUR_SCATTER_DEX = 0.15
VARIABLE_MIN_UJY = 0.1
VARIABLE_AMPLITUDE = (0.3, 0.6)
VARIABLE_PERIOD_H = (0.5, 3.0)
MOVER_RATE_ARCSEC_PER_H = (5.0, 30.0)
MOVER_FLUX_UJY = (0.3, 3.0)
TRAIL_STEP_PX = 0.25

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


def flux_column(b: Band) -> str:
    """Name of a band's flux column in the sources table."""
    return f"flux_{b.name.lower()}_ujy"


def point_source_noise_ujy(b: Band) -> float:
    """Noise [µJy] of a PSF-weighted flux of a faint point source on the band's mid-range sky.

    σ_F = σ_pix Ω_pix √N_eff with N_eff = 1 / (p² ∫ PSF²), the PSF widened by the pixel
    (variance p²/12 per component); p the detector's nominal pixel scale.
    """
    p = DETECTORS[band_detectors(b, "B")[0]].pixel_scale_arcsec
    components = psf.band_components(b.pivot_um)
    integral = sum(wi * wj / (2 * np.pi * (si**2 + sj**2 + p**2 / 6))
                   for wi, si in components for wj, sj in components)
    sigma = nominal_noise_sigma(float(np.mean(b.sky_mjysr)), b)
    return sigma * (p**2 / 3600**2 * (np.pi / 180) ** 2) * 1e12 / np.sqrt(p**2 * integral)


def noise_ratio(b: Band) -> float:
    """Point-source noise of band ``b`` over that of NIRCam F200W (exactly 1 for F200W)."""
    return point_source_noise_ujy(b) / point_source_noise_ujy(band("NIRCAM", "F200W"))


def _field_offsets(plans: list[MemberPlan]):
    """(east, north) [arcsec] of every member's true footprint corners from the field centre."""
    corners = [tangent_offsets(*footprint(exposure_wcs(p.geometry, p.true_pointing), p.geometry.shape),
                               FIELD_RA_DEG, FIELD_DEC_DEG) for p in plans]
    return np.concatenate([c[0] for c in corners]), np.concatenate([c[1] for c in corners])


def _to_sky(east_arcsec, north_arcsec):
    to_sky = models.Pix2Sky_TAN() | models.RotateNative2Celestial(FIELD_RA_DEG, FIELD_DEC_DEG, 180.0)
    return to_sky(np.asarray(east_arcsec) / 3600.0, np.asarray(north_arcsec) / 3600.0)


def make_sources(plans: list[MemberPlan], seed: int, density: float = DEFAULT_DENSITY_PER_ARCSEC2,
                 variables: int = 0, movers: int = 0) -> Table:
    """The sky: stars and galaxies (``density`` per arcsec² in all) over every member's true
    footprint plus a margin, fluxes in every band of the plans, variables and movers."""
    generator = rng(seed, STREAM_SOURCES)
    east, north = _field_offsets(plans)
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
    jitter = generator.uniform(-SITE_JITTER, SITE_JITTER, size=(2, ci.size))
    ra, dec = _to_sky((ci + 0.5 + jitter[0]) * cell, (ri + 0.5 + jitter[1]) * cell)
    is_star = ((ci + ri) % 2) == 0

    keep = np.zeros(ra.size, dtype=bool)
    for plan in plans:
        ny, nx = plan.geometry.shape
        margin = SOURCE_MARGIN_ARCSEC / plan.geometry.detector.pixel_scale_arcsec
        x, y = exposure_wcs(plan.geometry, plan.true_pointing).backward_transform(ra, dec)
        keep |= (x > -margin) & (x < nx - 1 + margin) & (y > -margin) & (y < ny - 1 + margin)
    ra, dec, is_star = ra[keep], dec[keep], is_star[keep]

    count = ra.size
    draws = generator.uniform(size=(5, count))
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
    table = Table(
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
    table = _add_movers(table, plans, seed, movers, east, north)
    _mark_variables(table, seed, variables, east, north)
    _band_fluxes(table, plans, seed)
    return table


def _draw_flux(quantile: np.ndarray, limits: tuple[float, float, float]) -> np.ndarray:
    """Fluxes [µJy] for uniform quantiles: log-uniform faint part, then a truncated power law."""
    faintest, knee, brightest = limits
    faint = quantile < FAINT_FRACTION
    q_faint = quantile / FAINT_FRACTION
    q_bright = (quantile - FAINT_FRACTION) / (1 - FAINT_FRACTION)
    b = -FLUX_POWER_LAW_INDEX
    bright = (knee**b - q_bright * (knee**b - brightest**b)) ** (1 / b)
    return np.where(faint, faintest * (knee / faintest) ** q_faint, bright)


def _program_times(plans: list[MemberPlan]) -> tuple[float, float]:
    """(start, end) [MJD] of the program."""
    duration = INSTRUMENTS[plans[0].band.instrument].readout.duration_s / 86400.0
    return min(p.start_mjd for p in plans), max(p.start_mjd for p in plans) + duration


def _add_movers(table: Table, plans, seed: int, movers: int, east, north) -> Table:
    """Columns ``moving``, ``rate_arcsec_h``, ``direction_deg`` (of motion, east of north); movers appended."""
    generator = rng(seed, STREAM_VARIABLES, 1)
    draws = generator.uniform(size=(5, movers))
    start, end = _program_times(plans)
    table.meta["epoch_mjd"] = (start + end) / 2
    centre = [(v.min() + v.max()) / 2 for v in (east, north)]
    half = [(v.max() - v.min()) / 4 for v in (east, north)]
    ra, dec = _to_sky(centre[0] + (2 * draws[0] - 1) * half[0], centre[1] + (2 * draws[1] - 1) * half[1])
    flux = MOVER_FLUX_UJY[0] * (MOVER_FLUX_UJY[1] / MOVER_FLUX_UJY[0]) ** draws[2]
    rate = MOVER_RATE_ARCSEC_PER_H[0] + draws[3] * np.diff(MOVER_RATE_ARCSEC_PER_H)[0]
    table["moving"] = False
    table["rate_arcsec_h"] = 0.0 * u.arcsec / u.h
    table["direction_deg"] = 0.0 * u.deg
    if movers == 0:
        return table
    added = Table({name: np.zeros(movers, dtype=table[name].dtype) for name in table.colnames})
    for name in table.colnames:
        added[name].unit = table[name].unit
    added["id"] = len(table) + 1 + np.arange(movers)
    added["ra"], added["dec"] = ra * u.deg, dec * u.deg
    added["flux_ujy"] = flux * u.uJy
    added["kind"] = "star"
    added["moving"] = True
    added["rate_arcsec_h"] = rate * u.arcsec / u.h
    added["direction_deg"] = 360.0 * draws[4] * u.deg
    return vstack([table, added], metadata_conflicts="silent")


def _central(ra, dec, east, north) -> np.ndarray:
    """Whether (ra, dec) lie in the central half (each axis) of the field spanned by east, north."""
    x, y = tangent_offsets(ra, dec, FIELD_RA_DEG, FIELD_DEC_DEG)
    return ((np.abs(x - (east.min() + east.max()) / 2) < np.ptp(east) / 4)
            & (np.abs(y - (north.min() + north.max()) / 2) < np.ptp(north) / 4))


def _mark_variables(table: Table, seed: int, variables: int, east, north) -> None:
    """Columns ``variable``, ``amplitude``, ``period_h``, ``phase_rad``: ``variables`` bright stars of
    the central half of the field vary."""
    generator = rng(seed, STREAM_VARIABLES, 2)
    candidates = np.nonzero((table["kind"] == "star") & ~table["moving"]
                            & (np.asarray(table["flux_ujy"]) > VARIABLE_MIN_UJY)
                            & _central(np.asarray(table["ra"]), np.asarray(table["dec"]), east, north))[0]
    if variables > candidates.size:
        raise ConfigError(f"variables: only {candidates.size} stars are bright enough in the field's centre")
    chosen = generator.choice(candidates, size=variables, replace=False)
    draws = generator.uniform(size=(3, chosen.size))
    table["variable"] = False
    table["amplitude"] = 0.0
    table["period_h"] = 0.0 * u.h
    table["phase_rad"] = 0.0
    table["variable"][chosen] = True
    table["amplitude"][chosen] = VARIABLE_AMPLITUDE[0] + draws[0] * np.diff(VARIABLE_AMPLITUDE)[0]
    table["period_h"][chosen] = VARIABLE_PERIOD_H[0] + draws[1] * np.diff(VARIABLE_PERIOD_H)[0]
    table["phase_rad"][chosen] = 2 * np.pi * draws[2]


def _band_fluxes(table: Table, plans, seed: int) -> None:
    """``flux_<band>_ujy`` per band of the program; ``flux_ujy`` becomes the first band's."""
    order = list(dict.fromkeys(p.band for p in plans))
    base = np.asarray(table["flux_ujy"], float)
    colours = rng(seed, STREAM_COLOURS).normal(0.0, COLOUR_SCATTER_DEX, size=(len(order), len(table)))
    for i, b in enumerate(order):
        colour = 1.0 if i == 0 else 10 ** colours[i]
        table[flux_column(b)] = base * noise_ratio(b) * colour * u.uJy
    table["flux_ujy"] = table[flux_column(order[0])]


def brightness_factor(sources: Table, mjd: float) -> np.ndarray:
    """F(t)/F of every source at time ``mjd`` (1 for all but the variables)."""
    hours = (mjd - START_MJD) * 24.0
    period = np.where(sources["variable"], np.asarray(sources["period_h"], float), 1.0)
    return 1.0 + np.asarray(sources["amplitude"]) * np.sin(2 * np.pi * hours / period
                                                            + np.asarray(sources["phase_rad"]))


def positions_at(sources: Table, mjd) -> tuple[np.ndarray, np.ndarray]:
    """(RA, Dec) [deg] of every source at time(s) ``mjd`` (movers move; others stay)."""
    hours = (np.asarray(mjd) - sources.meta["epoch_mjd"]) * 24.0
    step = np.asarray(sources["rate_arcsec_h"], float) * hours
    direction = np.radians(np.asarray(sources["direction_deg"], float))
    ra0, dec0 = np.asarray(sources["ra"], float), np.asarray(sources["dec"], float)
    dec = dec0 + step * np.cos(direction) / 3600.0
    ra = ra0 + step * np.sin(direction) / 3600.0 / np.cos(np.radians(dec0))
    return ra, dec


def seen_by(sources: Table, plan: MemberPlan) -> Table:
    """The sources as one member sees them: its band's fluxes at its mid-time, movers as trails.

    A mover becomes TRAIL_STEP_PX-spaced points from the exposure's start to its end sharing
    its flux; the rows keep the source's id.
    """
    duration_d = INSTRUMENTS[plan.band.instrument].readout.duration_s / 86400.0
    mid = plan.start_mjd + duration_d / 2
    seen = sources.copy(copy_data=True)
    seen["flux_ujy"] = seen[flux_column(plan.band)]
    if np.any(seen["variable"]):
        seen["flux_ujy"] = seen["flux_ujy"] * brightness_factor(seen, mid)
    moving = np.asarray(seen["moving"])
    if not moving.any():
        return seen
    static, trails = seen[~moving], []
    for row in seen[moving]:
        length_px = row["rate_arcsec_h"] * duration_d * 24 / plan.geometry.detector.pixel_scale_arcsec
        steps = int(np.ceil(length_px / TRAIL_STEP_PX)) + 1
        times = plan.start_mjd + duration_d * (np.arange(steps) + 0.5) / steps
        one = seen[moving][[list(seen["id"][moving]).index(row["id"])] * steps]
        one.meta.update(seen.meta)
        one["ra"], one["dec"] = positions_at(one, times)
        one["flux_ujy"] = row["flux_ujy"] / steps
        trails.append(one)
    return vstack([static, *trails], metadata_conflicts="silent")
