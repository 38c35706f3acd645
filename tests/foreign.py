"""Exposures made without image3.synth: MIRI-like imaging with a plain TAN gwcs
(detector -> world, no JWST v2v3 frame), no VAR_FLAT, a bad row band, sky levels
SKY_MJYSR + SKY_STEP_MJYSR x k, Gaussian stars and cosmic rays (1-50 MJy/sr, saved as
``<member>_cr.npy``). What another jwst-valid generator may write."""

import json
from pathlib import Path

import numpy as np
from astropy import coordinates as coord
from astropy import units as u
from astropy.modeling import models
from gwcs import coordinate_frames as cf
from gwcs import wcs as gwcs_wcs
from stdatamodels.jwst import datamodels

SKY_MJYSR = 12.0
SKY_STEP_MJYSR = 0.3
PRODUCT = "jw01234-o001_t001_miri_f770w"


def make_foreign_association(out: Path, ny: int = 1024, nx: int = 1032, n: int = 4,
                             seed: int = 7) -> Path:
    """Write ``n`` dithered exposures and their image3 ASN into ``out``; return the ASN path."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    scale = 0.11 / 3600
    ra0, dec0 = 80.5, -69.5
    nstar = max(int(150 * nx * ny / 1024 ** 2), 30)
    half = 0.55 * max(nx, ny) * 0.11
    sra = ra0 + rng.uniform(-half, half, nstar) / 3600 / np.cos(np.radians(dec0))
    sdec = dec0 + rng.uniform(-half, half, nstar) / 3600
    sflux = 10 ** rng.uniform(-1, 1.5, nstar)  # MJy/sr peak
    members = []
    for k, (dx, dy) in enumerate([(0, 0), (8.3, 5.1), (-6.2, 9.7), (4.4, -7.9)][:n]):
        crval = (ra0 + dx * 0.11 / 3600 / np.cos(np.radians(dec0)), dec0 + dy * 0.11 / 3600)
        det = cf.Frame2D(name="detector", axes_order=(0, 1), unit=(u.pix, u.pix))
        sky = cf.CelestialFrame(reference_frame=coord.ICRS(), name="world")
        tr = (models.Shift(-(nx - 1) / 2) & models.Shift(-(ny - 1) / 2)) | \
            (models.Scale(scale) & models.Scale(scale)) | models.Rotation2D(4.0) | \
            models.Pix2Sky_TAN() | models.RotateNative2Celestial(*crval, 180)
        w = gwcs_wcs.WCS([(det, tr), (sky, None)])
        w.bounding_box = ((-0.5, nx - 0.5), (-0.5, ny - 0.5))
        x, y = w.invert(sra, sdec)
        yy, xx = np.indices((ny, nx))
        img = np.full((ny, nx), SKY_MJYSR + SKY_STEP_MJYSR * k, np.float32)
        for a, b, f in zip(x, y, sflux):
            if -10 < a < nx + 10 and -10 < b < ny + 10:
                sl = (slice(max(int(b) - 8, 0), int(b) + 9), slice(max(int(a) - 8, 0), int(a) + 9))
                img[sl] += f * np.exp(-((xx[sl] - a) ** 2 + (yy[sl] - b) ** 2) / (2 * 1.1 ** 2))
        rn = 0.05
        var_p = np.abs(img) * 0.002
        data = img + rng.normal(0, 1, img.shape) * np.sqrt(rn ** 2 + var_p)
        cosmic_rays = np.where(rng.random(img.shape) < 5e-4,
                               rng.uniform(1, 50, img.shape), 0).astype(np.float32)
        data += cosmic_rays
        m = datamodels.ImageModel(data=data.astype(np.float32))
        m.err = np.sqrt(rn ** 2 + var_p).astype(np.float32)
        m.var_rnoise = np.full(img.shape, rn ** 2, np.float32)
        m.var_poisson = var_p.astype(np.float32)
        m.dq = np.zeros(img.shape, np.uint32)
        m.dq[100:104, :] = 1 | 4  # a bad row band
        m.meta.wcs = w
        m.meta.instrument.name = "MIRI"; m.meta.instrument.detector = "MIRIMAGE"
        m.meta.instrument.filter = "F770W"
        m.meta.exposure.type = "MIR_IMAGE"
        m.meta.exposure.exposure_time = 300.0; m.meta.exposure.effective_exposure_time = 300.0
        m.meta.exposure.measurement_time = 290.0
        m.meta.exposure.start_time = 60000.0 + k * 0.01; m.meta.exposure.end_time = 60000.005 + k * 0.01
        m.meta.exposure.mid_time = 60000.0025 + k * 0.01
        m.meta.observation.date = "2024-01-01"; m.meta.observation.time = "00:00:00"
        m.meta.observation.program_number = "01234"; m.meta.observation.observation_number = "001"
        m.meta.observation.visit_number = "001"; m.meta.observation.visit_group = "02"
        m.meta.observation.sequence_id = "1"; m.meta.observation.activity_id = "01"
        m.meta.observation.exposure_number = str(k + 1)
        m.meta.bunit_data = "MJy/sr"; m.meta.bunit_err = "MJy/sr"
        m.meta.target.type = "FIXED"
        m.meta.photometry.pixelarea_steradians = (0.11 / 206265) ** 2
        m.meta.photometry.pixelarea_arcsecsq = 0.11 ** 2
        m.meta.wcsinfo.ra_ref, m.meta.wcsinfo.dec_ref = crval
        m.meta.wcsinfo.roll_ref = 4.0; m.meta.wcsinfo.v2_ref = -453.5; m.meta.wcsinfo.v3_ref = -373.8
        m.meta.wcsinfo.v3yangle = 0.0; m.meta.wcsinfo.vparity = -1
        name = f"jw01234001001_02101_0000{k+1}_mirimage"
        m.meta.filename = f"{name}_cal.fits"
        m.save(str(out / f"{name}_cal.fits"))
        np.save(out / f"{name}_cr.npy", cosmic_rays)  # truth: injected MJy/sr per pixel
        members.append({"expname": f"{name}_cal.fits", "exptype": "science"})
    asn = {"asn_type": "image3", "asn_id": "o001", "program": "01234", "asn_pool": "x",
           "products": [{"name": PRODUCT, "members": members}]}
    path = out / "jw01234-o001_image3_asn.json"
    path.write_text(json.dumps(asn, indent=1))
    return path
