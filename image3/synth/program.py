"""A whole synthetic program: plan, sky, every member's files, the truth and one ASN per band.

``make_program`` is the generator's one entry point (``make_association`` is it for the
programs of one band); everything it writes is deterministic for a given seed and arguments.
"""

import json
from pathlib import Path

import numpy as np
from astropy.table import Table

from image3 import __version__
from image3.synth import naming
from image3.synth.calfile import build_cal_model
from image3.synth.detector import observe
from image3.synth.layouts import (
    FIELD_DEC_DEG,
    FIELD_RA_DEG,
    Layout,
    MemberPlan,
    exposure_sets,
    parse_layout,
    plan_members,
)
from image3.synth.nebula import Nebula, make_nebula, nebula_on_detector
from image3.synth.psf import band_components
from image3.synth.references import write_reference_files
from image3.synth.render import render_sources
from image3.synth.sources import DEFAULT_DENSITY_PER_ARCSEC2, make_sources, seen_by
from image3.synth.truth import epoch_rows, exposure_row, exposures_table, write_image, write_true_wcs
from image3.synth.wcs import exposure_wcs, footprint, tangent_offsets


def noise_free_image(plan: MemberPlan, sources: Table, nebula: Nebula | None) -> tuple[np.ndarray, np.ndarray]:
    """(model, nebula part) [MJy/sr] of one member: its sources, the nebula and its sky level."""
    wcs = exposure_wcs(plan.geometry, plan.true_pointing)
    image = render_sources(seen_by(sources, plan), wcs, plan.geometry.shape,
                           band_components(plan.band.pivot_um), plan.geometry.detector.pixel_scale_arcsec)
    cloud = np.zeros_like(image)
    if nebula is not None:
        cloud = nebula.mjysr(plan.band) * nebula_on_detector(nebula, wcs, plan.geometry.shape)
    return image + cloud + plan.sky_mjysr, cloud


def _program_nebula(plans: list[MemberPlan], amplitude: float, seed: int) -> Nebula | None:
    if amplitude <= 0:
        return None
    offsets = [tangent_offsets(*footprint(exposure_wcs(p.geometry, p.true_pointing), p.geometry.shape),
                               FIELD_RA_DEG, FIELD_DEC_DEG) for p in plans]
    extent = 2 * max(np.abs(np.concatenate([np.ravel(o) for o in offsets])))
    step = min(p.geometry.detector.pixel_scale_arcsec for p in plans)
    return make_nebula(extent, step, amplitude, seed)


def _write_asn(out_dir: Path, product: str, members: list[str], sequence: int | None) -> Path:
    asn = {
        "asn_type": "image3",
        "asn_rule": "candidate_Asn_Lv3Image",
        "asn_id": naming.ASN_ID,
        "asn_pool": "image3_synth_pool",
        "program": naming.PROGRAM,
        "target": "1",
        "version_id": None,
        "code_version": f"image3 {__version__}",
        "degraded_status": "No known degraded exposures in association.",
        "constraints": "synthetic data from image3.synth",
        "products": [
            {
                "name": product,
                "members": [{"expname": naming.cal_filename(m), "exptype": "science"} for m in members],
            }
        ],
    }
    path = out_dir / naming.asn_filename(sequence)
    path.write_text(json.dumps(asn, indent=2) + "\n")
    return path


def make_program(
    out_dir,
    n: int = 4,
    size: int = 1024,
    seed: int = 1,
    wcs_errors: bool = True,
    sky_offsets: bool = True,
    cosmic_rays: bool = True,
    detectors=1,
    truth_images: bool = False,
    density: float = DEFAULT_DENSITY_PER_ARCSEC2,
    *,
    layout: str | Layout = "dither",
    instrument: str = "NIRCAM",
    bands=None,
    misregister: tuple[int, float, float] | None = None,
    nebula: float = 0.0,
    variables: int = 0,
    movers: int = 0,
) -> list[Path]:
    """Write a synthetic program, its truth and one image3 ASN per band; return the ASN paths.

    ``n`` dithers per pointing of ``layout`` (``dither`` or ``mosaic:CxR``), each an exposure of
    every exposure set of ``bands`` (e.g. ``("F200W+F444W", "F150W")``: F200W and F444W taken
    together, F150W in exposures of its own; default the instrument's F200W, F770W or F150W) with ``instrument``'s ``detectors`` (1; 2: NRCB1 and
    its compact companion; NIRCam modules "A", "B", "AB") as size² (sub)arrays. ``misregister``
    = (exposure, shift [arcsec], roll [deg]), ``nebula`` = its rms in units of the sky noise,
    ``variables`` / ``movers`` = how many. See the module docstrings of ``image3.synth``.
    """
    out_dir = Path(out_dir)
    truth_dir = out_dir / "truth"
    truth_dir.mkdir(parents=True, exist_ok=True)
    layout = parse_layout(layout) if isinstance(layout, str) else layout
    plans = plan_members(n, size, seed, wcs_errors, sky_offsets, detectors, layout=layout,
                         instrument=instrument, bands=bands, misregister=misregister)
    sources = make_sources(plans, seed, density, variables, movers)
    cloud = _program_nebula(plans, nebula, seed)
    rows, epochs = [], []
    for plan in plans:
        model, added = noise_free_image(plan, sources, cloud)
        keys = (plan.serial, plan.geometry.detector.key)
        exposure = observe(model, plan.geometry, plan.band, seed, keys, cosmic_rays)
        build_cal_model(plan, exposure).save(out_dir / naming.cal_filename(plan.member))
        write_true_wcs(truth_dir / f"{plan.member}_wcs.asdf", plan)
        write_image(truth_dir / f"{plan.member}_cr.fits", exposure.cosmic_rays, plan.member, "injected cosmic rays")
        if truth_images:
            write_image(truth_dir / f"{plan.member}_model.fits", exposure.model, plan.member,
                        "noise-free image, sky included")
            if cloud is not None:
                write_image(truth_dir / f"{plan.member}_nebula.fits", added, plan.member, "nebula added")
        rows.append(exposure_row(plan, exposure, cloud.mjysr(plan.band) if cloud is not None else 0.0))
        epochs += epoch_rows(plan, sources)

    settings = {
        "generator": f"image3.synth {__version__}",
        "seed": seed,
        "n": n,
        "size": size,
        "detectors": detectors,
        "wcs_errors": wcs_errors,
        "sky_offsets": sky_offsets,
        "cosmic_rays": cosmic_rays,
        "density_per_arcsec2": density,
        "layout": layout.name,
        "instrument": instrument.upper(),
        "bands": ["+".join(b.name for b in taken) for taken in exposure_sets(instrument, bands)],
        "misregister": list(misregister) if misregister else None,
        "nebula": nebula,
        "variables": variables,
        "movers": movers,
    }
    sources.meta.update(settings)
    sources.write(truth_dir / "sources.ecsv", overwrite=True)
    exposures_table(rows, settings).write(truth_dir / "exposures.ecsv", overwrite=True)
    if epochs:
        Table(epochs, meta=settings).write(truth_dir / "epochs.ecsv", overwrite=True)
    if truth_images and cloud is not None:
        write_image(truth_dir / "nebula.fits", cloud.pattern, "all", "nebula pattern (unit rms)", cloud.header())
    write_reference_files(truth_dir, plans)

    by_band = {}
    for plan in plans:
        by_band.setdefault(plan.band, []).append(plan.member)
    several = len(by_band) > 1
    return [_write_asn(out_dir, naming.product_name(b.instrument, b.optical_elements), members,
                       i if several else None)
            for i, (b, members) in enumerate(by_band.items(), start=1)]


def make_association(out_dir, n: int = 4, size: int = 1024, seed: int = 1, wcs_errors: bool = True,
                     sky_offsets: bool = True, cosmic_rays: bool = True, detectors=1,
                     truth_images: bool = False, density: float = DEFAULT_DENSITY_PER_ARCSEC2,
                     **options) -> Path:
    """Write ``n`` exposures (× detectors) of a synthetic field, the ASN and the truth.

    Returns the path of the ASN file (of the first band when ``bands`` has several: see
    ``make_program``, which takes the same arguments). Deterministic for a given seed and
    arguments; see the module docstrings for the model and the file layout.
    """
    return make_program(out_dir, n, size, seed, wcs_errors, sky_offsets, cosmic_rays, detectors,
                        truth_images, density, **options)[0]
