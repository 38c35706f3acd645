"""Synthetic JWST level-2 (``_cal``) imaging exposures of a known sky, with truth.

Every later stage is tested against what this package writes, so its physics and bookkeeping
are exact and stated in the docstrings of its modules:

- ``instruments``: NIRCam (short NRCA1-4/NRCB1-4, long NRCALONG/NRCBLONG), MIRI (MIRIMAGE) and
  NIRISS (NIS) imaging: detectors, bands (filter/pupil, sky, PHOTMJSR, AB − Vega), readouts.
- ``siaf`` and ``apertures``: each detector's SIAF distortion and placement in V2V3; centred
  subarrays; pixel areas. ``wcs``: attitudes and the jwst-style gwcs, exact sky ↔ pixel.
- ``layouts``: dithers, mosaics (``mosaic:CxR``), exposure sets of bands, pointing errors (and
  a chosen misregistration), sky levels, times. ``naming``: exposures, groups, files, ASNs and
  the reference's product names.
- ``sources``: stars and galaxies, fluxes per band, variable stars and moving sources;
  ``psf``: the PSF per band; ``nebula``: an extended nebula with a power-law spectrum;
  ``render``: noise-free images through the TRUE wcs.
- ``detector``: noise, bad pixels (MIRI's reference and coronagraph columns) and cosmic rays;
  ``calfile``: the ``_cal`` ImageModel and its metadata; ``truth`` and ``references``: the
  truth files and the catalogue's reference files; ``program``: the whole program and its
  ASNs; ``cli``: ``python -m image3.synth``.

Usage::

    python -m image3.synth --out DIR -n 4 --size 1024 --seed 1
    make_association(out_dir, n=4, size=1024, seed=1) -> DIR/jw99999-o001_image3_asn.json
    make_program(out_dir, n=2, size=256, detectors="AB", bands=("F200W+F444W", "F150W"),
                 layout="mosaic:2x2", nebula=5, variables=2, movers=1, misregister=(3, 1.0, 0.1))
        -> one ASN per band

Options (``make_program``/``make_association`` keyword = command-line option):

- ``n`` (``-n``): dithers per pointing; ``size`` (``--size``): the array side, 256 up to the
  full frame's height (a centred subarray below it; MIRI 1024 = its 1032 × 1024 full frame).
- ``instrument`` (``--instrument``): NIRCAM (default), MIRI or NIRISS.
- ``bands`` (``--bands F200W+F444W,F150W``): exposure sets; bands joined by '+' are taken in
  the same exposures (NIRCam: one short, one long) and share their pointing errors; each set
  has exposures of its own. One ASN per band, the reference's product name.
- ``detectors`` (``--detectors``): 1 (NRCB1, or the band's one detector), 2 (NRCB1 and a
  compact companion, the tests' pair), or the NIRCam modules A, B, AB (4 short detectors and
  1 long per module, placed by the SIAF, one pointing error per exposure).
- ``layout`` (``--layout``): ``dither`` (default) or ``mosaic:CxR`` (pointings 90% of the field
  apart: ~10% overlaps, small dithers inside each).
- ``density`` (``--density``): sources per arcsec² (0.5); e.g. 0.15-0.2 at 1024² or 2.5 at
  256² leaves 5-10 common stars in a mosaic's overlaps (tweakreg's minobj is 15).
- ``misregister=(k, shift_arcsec, roll_deg)`` (``--misregister K[:SHIFT[:ROLL]]``, default 1"
  and 0.1°): exposure k keeps that written-WCS error; ``nebula`` (``--nebula A``): a nebula of
  rms A × the sky noise; ``variables``, ``movers`` (``--variables``, ``--movers``): how many
  variable stars and moving sources.
- ``wcs_errors``, ``sky_offsets``, ``cosmic_rays`` (``--no-...``), ``truth_images``
  (``--truth-images``: noise-free images and the nebula in truth/), ``seed`` (``--seed``).

The default program: exposure k (1-based) of detector NRCB1 is
``jw99999001001_02101_{k:05d}_nrcb1`` (file ``<member>_cal.fits``), NIRCam F200W/CLEAR, one
pointing with dithers; the image3 ASN ``jw99999-o001_image3_asn.json`` (asn_id ``o001``)
makes ``PRODUCT_NAME``. Exposure 1 puts NRCB1's reference point at (FIELD_RA_DEG,
FIELD_DEC_DEG) at roll_ref FIELD_ROLL_DEG and is written with its true WCS; every later
exposure is dithered by 5-15% of the array and written with a 0.05-0.3", ±0.02° pointing
error. Pixels are always rendered through the TRUE wcs, which the truth holds.
"""

from image3.synth import siaf
from image3.synth.apertures import (
    COMPACT_PAIR_GAP_PX as DETECTOR_GAP_PX,
    DetectorGeometry,
    compact_pair_geometry,
    detector_geometry,
)
from image3.synth.calfile import build_cal_model
from image3.synth.cli import main
from image3.synth.detector import (
    DQ_DEAD,
    DQ_DO_NOT_USE,
    DQ_HOT,
    DQ_NON_SCIENCE,
    DQ_REFERENCE_PIXEL,
    Exposure,
    cosmic_rays,
    nominal_noise_sigma,
    observe,
)
from image3.synth.instruments import DETECTORS as DETECTOR_TABLE
from image3.synth.instruments import Band, band, band_detectors, bands
from image3.synth.layouts import (
    FIELD_DEC_DEG,
    FIELD_RA_DEG,
    FIELD_ROLL_DEG,
    Layout,
    MemberPlan,
    parse_layout,
    plan_members,
)
from image3.synth.naming import (
    ASN_ID,
    DETECTORS,
    PRODUCT_NAME,
    PROGRAM,
    asn_filename,
    cal_filename,
    exposure_name,
    group_id,
    member_names,
    product_name,
)
from image3.synth.nebula import Nebula, make_nebula, nebula_on_detector
from image3.synth.program import make_association, make_program, noise_free_image
from image3.synth.render import render_sources
from image3.synth.sources import (
    DEFAULT_DENSITY_PER_ARCSEC2,
    SERSIC_MIXTURES,
    make_sources,
    positions_at,
    seen_by,
    sersic_mixture,
)
from image3.synth.wcs import (
    Pointing,
    exposure_wcs,
    pointing_at,
    sky_jacobian,
    sky_to_pixel,
    tangent_offsets,
)

#: The default program's band and detector frame.
INSTRUMENT, FILTER, PUPIL = "NIRCAM", "F200W", "CLEAR"
FULL_FRAME = 2048
#: NRCB1's ideal frame (the default program's wcsinfo): angle of its y axis from +V3, and parity.
V3_IDEAL_Y_ANGLE_DEG = siaf.aperture("NRCB1")["V3IdlYAngle"]
V_IDEAL_PARITY = siaf.aperture("NRCB1")["VIdlParity"]
_tangent_offsets = tangent_offsets  # the name the tests have always used
