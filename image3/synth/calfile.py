"""A member's ``_cal`` file: its arrays in a stdatamodels ImageModel with the metadata of a real one.

The model carries the WRITTEN wcs and pointing (``wcsinfo``, ``pointing``, velocity
aberration), the instrument keywords of its band and detector (NIRCam: module and channel;
filter and pupil as the instrument's wheels hold them), the exposure type and readout of its
instrument, the observation identifiers of its name (``image3.synth.naming``), the subarray
(FULL for a full frame, else GENERIC with its 1-based start), and the photometric keywords
(PHOTMJSR, PIXAR_SR of the reference pixel). Every level-2 step of its instrument is COMPLETE.
"""

from astropy import coordinates as coord
from astropy import units as u
from astropy.time import Time
from stdatamodels.jwst import datamodels

from image3.synth import naming
from image3.synth.apertures import ARCSEC2_TO_SR, VA_SCALE
from image3.synth.detector import CR_EVENTS_PER_PIXEL, Exposure
from image3.synth.instruments import INSTRUMENTS
from image3.synth.layouts import FIELD_DEC_DEG, FIELD_RA_DEG, MemberPlan
from image3.synth.wcs import Pointing, exposure_wcs, fits_wcsinfo, s_region, v2v3_to_sky

MJYSR_TO_UJY_ARCSEC2 = 1e12 / (u.sr.to(u.arcsec**2))


def _v1_pointing(plan: MemberPlan, pointing: Pointing) -> dict:
    """RA/Dec of the V1 axis and PA of V3 there, for ``meta.pointing``."""
    to_sky = v2v3_to_sky(plan.geometry.v2_ref, plan.geometry.v3_ref, pointing)
    ra_v1, dec_v1 = to_sky(0.0, 0.0)
    ra_up, dec_up = to_sky(0.0, 60.0)
    v1 = coord.SkyCoord(ra_v1 * u.deg, dec_v1 * u.deg)
    pa_v3 = v1.position_angle(coord.SkyCoord(ra_up * u.deg, dec_up * u.deg)).deg
    return {"ra_v1": float(ra_v1), "dec_v1": float(dec_v1), "pa_v3": float(pa_v3)}


def build_cal_model(plan: MemberPlan, exposure: Exposure) -> datamodels.ImageModel:
    """The member's ``_cal`` ImageModel, carrying the WRITTEN wcs and pointing."""
    geometry, written, band = plan.geometry, plan.written_pointing, plan.band
    instrument = INSTRUMENTS[band.instrument]
    readout = instrument.readout
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
    meta.filename = naming.cal_filename(plan.member)
    meta.wcs = wcs
    meta.telescope = "JWST"
    meta.bunit_data = meta.bunit_err = "MJy/sr"
    meta.instrument.name = instrument.name
    meta.instrument.detector = plan.detector
    if geometry.detector.module:
        meta.instrument.module = geometry.detector.module
        meta.instrument.channel = geometry.detector.channel
    meta.instrument.filter = band.filter
    if band.pupil:
        meta.instrument.pupil = band.pupil

    duration_s = readout.duration_s
    start = Time(plan.start_mjd, format="mjd", scale="utc")
    end = start + duration_s * u.s
    obs = meta.observation
    obs.program_number, obs.observation_number = naming.PROGRAM, naming.OBSERVATION
    obs.visit_number = f"{plan.visit:03d}"
    obs.visit_group, obs.sequence_id = naming.VISIT_GROUP, naming.SEQUENCE
    obs.activity_id = f"{plan.activity:02d}"
    obs.exposure_number = f"{plan.exposure:05d}"
    obs.visit_id = f"{naming.PROGRAM}{naming.OBSERVATION}{plan.visit:03d}"
    obs.obs_id = (f"V{obs.visit_id}P00000000{naming.VISIT_GROUP}{naming.SEQUENCE}{plan.activity:02d}")
    obs.date, obs.time = start.isot.split("T")
    obs.date_beg, obs.date_end = start.isot, end.isot

    exp = meta.exposure
    exp.type = instrument.exp_type
    exp.readpatt, exp.nframes, exp.groupgap = readout.pattern, readout.nframes, readout.groupgap
    exp.ngroups, exp.nints = readout.ngroups, readout.nints
    exp.frame_time, exp.group_time = readout.frame_time_s, readout.group_time_s
    exp.integration_time = readout.integration_time_s
    exp.exposure_time = exp.effective_exposure_time = readout.exposure_time_s
    exp.measurement_time = readout.measurement_time_s
    exp.duration = exp.elapsed_exposure_time = duration_s
    exp.start_time = exp.start_time_mjd = start.mjd
    exp.mid_time = exp.mid_time_mjd = (start.mjd + end.mjd) / 2
    exp.end_time = exp.end_time_mjd = end.mjd
    exp.noutputs, exp.sca_num, exp.count = instrument.noutputs, geometry.detector.sca, plan.exposure
    exp.primary_cosmic_rays = CR_EVENTS_PER_PIXEL * 1000 / duration_s  # per thousand pixels per second

    ny, nx = geometry.shape
    meta.subarray.name = "FULL" if geometry.is_full_frame else "GENERIC"
    meta.subarray.xstart, meta.subarray.ystart = geometry.origin[0] + 1, geometry.origin[1] + 1
    meta.subarray.xsize, meta.subarray.ysize = nx, ny

    meta.target.catalog_name = meta.target.proposer_name = "SYNTHETIC-FIELD"
    meta.target.type = "FIXED"
    meta.target.ra, meta.target.dec = FIELD_RA_DEG, FIELD_DEC_DEG

    meta.photometry.conversion_megajanskys = band.photmjsr
    meta.photometry.conversion_microjanskys = band.photmjsr * MJYSR_TO_UJY_ARCSEC2
    meta.photometry.pixelarea_steradians = geometry.pixar_sr
    meta.photometry.pixelarea_arcsecsq = geometry.pixar_sr / ARCSEC2_TO_SR

    info = meta.wcsinfo
    info.v2_ref, info.v3_ref = geometry.v2_ref, geometry.v3_ref
    info.ra_ref, info.dec_ref, info.roll_ref = written.ra_ref, written.dec_ref, written.roll_ref
    info.v3yangle, info.vparity = geometry.v3yangle, geometry.vparity
    info.s_region = s_region(wcs, geometry.shape)
    for key, value in fits_wcsinfo(wcs, geometry.ref_pixel).items():
        setattr(info, key, value)
    for key, value in _v1_pointing(plan, written).items():
        setattr(meta.pointing, key, value)
    meta.velocity_aberration.scale_factor = VA_SCALE
    meta.velocity_aberration.va_ra_ref, meta.velocity_aberration.va_dec_ref = written.ra_ref, written.dec_ref

    for step in instrument.level2_steps:
        setattr(meta.cal_step, step, "COMPLETE")
    return model
