"""The truth files (DIR/truth/): what was put into every member, for tests to measure against.

``sources.ecsv``    one row per source: id, ra, dec [deg], flux_ujy (first band), kind
                    (star|galaxy), r_half_arcsec, sersic_n, ellipticity, theta_deg (shape
                    columns 0 for stars), moving, rate_arcsec_h, direction_deg, variable,
                    amplitude, period_h, phase_rad (``image3.synth.sources``), flux_<band>_ujy
                    per band. Meta: the generator's settings, epoch_mjd (when movers are at
                    ra, dec).
``exposures.ecsv``  one row per member: group_id, exposure (dither), detector, true and
                    written ra_ref/dec_ref/roll_ref, v2_ref/v3_ref, the WCS error at the
                    member's own reference point (wcs_dx_arcsec east, wcs_dy_arcsec north,
                    written − true; wcs_rot_deg = written − true roll_ref, by which position
                    angles on the written wcs exceed the true ones), dither, sky_mjysr, noise
                    parameters, exposure times, cosmic-ray counts; band, filter, pupil, visit
                    (the pointing), activity (the exposure set), serial (place in time),
                    pointing_x/y_px (the pointing's offset), misregistered, nebula_mjysr (one
                    unit of the nebula pattern in this band, 0 without a nebula). Meta: settings.
``epochs.ecsv``     (with variables or movers) one row per member and variable or moving
                    source: its position (ra, dec; x, y through the member's true wcs) and
                    flux_ujy in the member's band at the member's mid-time mid_mjd.
``<member>_wcs.asdf``   the TRUE gwcs (key ``wcs``).
``<member>_cr.fits``    injected cosmic-ray amplitude [MJy/sr], 0 elsewhere.
``<member>_model.fits`` (``truth_images``) noise-free SCI, sky and nebula included, no NaN.
``<member>_nebula.fits`` (``truth_images`` and a nebula) the nebula added to the member [MJy/sr].
``nebula.fits``         (``truth_images`` and a nebula) the pattern on its sky grid (unit rms,
                    TAN header; ``image3.synth.nebula``).
``psf.json``, ``apcorr.fits``, ``abvegaoffset.asdf``: ``image3.synth.references``.
"""

from pathlib import Path

import asdf
import numpy as np
from astropy import units as u
from astropy.io import fits
from astropy.table import Table

from image3.synth.detector import FLAT_ERROR, READ_NOISE_SPREAD, Exposure, nominal_noise_sigma
from image3.synth.instruments import INSTRUMENTS
from image3.synth.layouts import MemberPlan
from image3.synth.sources import brightness_factor, flux_column, positions_at
from image3.synth.wcs import exposure_wcs, pointing_error, sky_to_pixel

EXPOSURE_UNITS = {
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
    "pointing_x_px": u.pix,
    "pointing_y_px": u.pix,
    "nebula_mjysr": u.MJy / u.sr,
}


def exposure_row(plan: MemberPlan, exposure: Exposure, nebula_mjysr: float) -> dict:
    """The truth of one member (a row of exposures.ecsv)."""
    dx, dy, rot = pointing_error(plan.true_pointing, plan.written_pointing)
    hit = exposure.cosmic_rays != 0
    band = plan.band
    instrument = INSTRUMENTS[band.instrument]
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
        "noise_sigma_mjysr": nominal_noise_sigma(plan.sky_mjysr, band),
        "electrons_per_mjysr": band.electrons_per_mjysr,
        "readnoise_e": instrument.read_noise_e,
        "readnoise_spread": READ_NOISE_SPREAD,
        "flat_error": FLAT_ERROR,
        "exposure_time_s": instrument.readout.exposure_time_s,
        "measurement_time_s": instrument.readout.measurement_time_s,
        "start_mjd": plan.start_mjd,
        "cr_events": exposure.cosmic_ray_events,
        "cr_pixel_fraction": float(hit.mean()),
        "band": band.name,
        "filter": band.filter,
        "pupil": band.pupil or "N/A",
        "visit": plan.visit,
        "activity": plan.activity,
        "serial": plan.serial,
        "pointing_x_px": plan.pointing_px[0],
        "pointing_y_px": plan.pointing_px[1],
        "misregistered": plan.misregistered,
        "nebula_mjysr": nebula_mjysr,
    }


def exposures_table(rows: list[dict], settings: dict) -> Table:
    table = Table(rows)
    for name, unit in EXPOSURE_UNITS.items():
        table[name].unit = unit
    table.meta.update(settings)
    return table


def epoch_rows(plan: MemberPlan, sources: Table) -> list[dict]:
    """Rows of epochs.ecsv for one member: every variable or moving source at its mid-time."""
    changing = sources[np.asarray(sources["variable"]) | np.asarray(sources["moving"])]
    if len(changing) == 0:
        return []
    mid = plan.start_mjd + INSTRUMENTS[plan.band.instrument].readout.duration_s / 86400.0 / 2
    ra, dec = positions_at(changing, mid)
    x, y = sky_to_pixel(exposure_wcs(plan.geometry, plan.true_pointing), ra, dec)
    flux = np.asarray(changing[flux_column(plan.band)], float) * brightness_factor(changing, mid)
    return [{"member": plan.member, "group_id": plan.group_id, "band": plan.band.name, "id": int(i),
             "mid_mjd": mid, "ra": r, "dec": d, "x": xx, "y": yy, "flux_ujy": f}
            for i, r, d, xx, yy, f in zip(changing["id"], ra, dec, x, y, flux, strict=True)]


def write_image(path: Path, image: np.ndarray, member: str, what: str, header: fits.Header | None = None) -> None:
    """A float32 FITS image with BUNIT, MEMBER and CONTENT (and ``header``'s cards)."""
    full = fits.Header({"BUNIT": "MJy/sr", "MEMBER": member, "CONTENT": what})
    full.update(header or {})
    fits.PrimaryHDU(image.astype(np.float32), header=full).writeto(path, overwrite=True)


def write_true_wcs(path: Path, plan: MemberPlan) -> None:
    asdf.AsdfFile({"wcs": exposure_wcs(plan.geometry, plan.true_pointing)}).write_to(path)
