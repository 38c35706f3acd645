"""Reference files for the catalogue step, written to truth/: the PSFs, APCORR and ABVEGAOFFSET.

``psf.json`` describes the first band's PSF (``image3.synth.psf``); with several bands each also
has ``psf_<band>.json``. ``apcorr.fits`` (the instrument's APCORR datamodel) holds the rows of
every band of the program for its PSF on a native-scale mosaic (the pixel scale of the band's
first member's reference pixel), selected as the reference selects them (NIRCam, NIRISS:
filter and pupil; MIRI: filter and subarray). ``abvegaoffset.asdf`` (ABVegaOffsetModel) holds
each band's m_AB − m_Vega (NIRCam, NIRISS: by filter and pupil; MIRI: by filter).
"""

from pathlib import Path

import numpy as np
from astropy.table import Table, vstack
from stdatamodels.jwst import datamodels

from image3.synth import psf
from image3.synth.apertures import ARCSEC2_TO_SR
from image3.synth.instruments import INSTRUMENTS, Band
from image3.synth.layouts import MemberPlan

_APCORR_MODELS = {
    "NIRCAM": datamodels.NrcImgApcorrModel,
    "MIRI": datamodels.MirImgApcorrModel,
    "NIRISS": datamodels.NisImgApcorrModel,
}


def _selector(plan: MemberPlan) -> tuple:
    band = plan.band
    if band.instrument == "MIRI":
        return (("filter", band.filter), ("subarray", "FULL" if plan.geometry.is_full_frame else "GENERIC"))
    return (("filter", band.filter), ("pupil", band.pupil))


def write_reference_files(truth_dir: Path, plans: list[MemberPlan]) -> None:
    """psf.json (+ psf_<band>.json), apcorr.fits and abvegaoffset.asdf for the program's bands."""
    firsts = {}
    for plan in plans:
        firsts.setdefault(plan.band, plan)
    instrument = next(iter(firsts)).instrument
    tables = []
    for i, (band, plan) in enumerate(firsts.items()):
        scale = float(np.sqrt(plan.geometry.pixar_sr / ARCSEC2_TO_SR))
        components = psf.band_components(band.pivot_um)
        description = psf.psf_description(scale, components, band.name) + "\n"
        if i == 0:
            (truth_dir / "psf.json").write_text(description)
        if len(firsts) > 1:
            (truth_dir / f"psf_{band.name.lower()}.json").write_text(description)
        tables.append(psf.aperture_correction_table(scale, components, _selector(plan)))
    apcorr = _APCORR_MODELS[instrument]()
    apcorr.apcorr_table = vstack(tables, metadata_conflicts="silent").as_array()
    apcorr.meta.exposure.type = INSTRUMENTS[instrument].exp_type
    names = "/".join(b.name for b in firsts)
    _describe_reference(apcorr, "APCORR", f"Synthetic {names} aperture corrections (image3.synth.psf)",
                        instrument)
    apcorr.save(truth_dir / "apcorr.fits")
    abvega = datamodels.ABVegaOffsetModel()
    abvega.abvega_offset = _abvega_table(list(firsts))
    _describe_reference(abvega, "ABVEGAOFFSET", f"Synthetic {names} AB - Vega magnitude offset", instrument)
    abvega.save(truth_dir / "abvegaoffset.asdf")


def _abvega_table(bands: list[Band]) -> Table:
    columns = {"filter": [b.filter for b in bands]}
    if bands[0].instrument != "MIRI":
        columns["pupil"] = [b.pupil for b in bands]
    columns["abvega_offset"] = np.array([b.abvega_offset for b in bands], np.float32)
    return Table(columns)


def _describe_reference(model, reftype: str, description: str, instrument: str) -> None:
    meta = model.meta
    meta.reftype, meta.description = reftype, description
    meta.author, meta.pedigree, meta.useafter = "image3.synth", "DUMMY", "2022-01-01T00:00:00"
    meta.instrument.name = instrument
