"""Sky levels, seams and star completeness on a synthetic mosaic, image3 and jwst side by side.

Makes a program with ``image3.synth`` (default: a 2 x 2 NIRCam mosaic of 1024² pointings, 2
dithers each), runs the workflow with default settings (``bench/run_bench.py``'s run) and, given
``--reference-python``, jwst's calwebb_image3 on the same association and our grid, and reports
for each:

- relative sky levels: each ``_crf``'s BKGLEVEL minus its true sky, the mean removed, in units
  of the per-pixel noise sigma (``noise_sigma_mjysr`` of the truth);
- the seam statistic: for every exposure edge, the median of (i2d - the true nebula - the
  i2d's overall offset) over the pixels within 20 px of the edge on both sides (sources masked:
  the run's own segmentation map grown by 4 px; edges with < 5000 such pixels skipped), in
  sigma; the largest and the rms over edges;
- star completeness (``compare.completeness_of_runs``): stars with PSF-fit S/N >= 10 found, the
  brighter half, and those with S/N >= 25 within 10 px of an uncovered pixel.

    .venv/bin/python bench/sky_and_edges.py --nebula 10 --reference-python /work/jwst-venv/bin/python
    .venv/bin/python bench/sky_and_edges.py --instrument miri --density 0.05 --seed 2
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from astropy.io import fits
from astropy.table import Table
from astropy.wcs import WCS
from scipy.ndimage import binary_dilation, map_coordinates

sys.path.insert(0, str(Path(__file__).resolve().parent))
import compare  # noqa: E402
import run_bench  # noqa: E402

from stdatamodels.jwst import datamodels  # noqa: E402

from image3 import synth  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
BAND_PX = 20
MIN_BAND_PIXELS = 5000


def edge_bands(x: np.ndarray, y: np.ndarray, shape: tuple[int, int], band_px: float):
    """(name, bool mask) per edge of a ny x nx exposure: output pixels whose position in the
    exposure (``x``, ``y``, from the exposure's inverse WCS, outside its bounds too) lies within
    ``band_px`` of that edge, on either side, along the edge's length."""
    ny, nx = shape
    for name, across, edge, along, length in (("left", x, -0.5, y, ny), ("right", x, nx - 0.5, y, ny),
                                              ("bottom", y, -0.5, x, nx), ("top", y, ny - 0.5, x, nx)):
        with np.errstate(invalid="ignore"):
            yield name, (np.abs(across - edge) <= band_px) & (along >= -0.5) & (along <= length - 0.5)


def seam_statistic(residual: np.ndarray, masked: np.ndarray, exposures) -> dict:
    """Medians of ``residual`` (in sigma) in each band of :func:`edge_bands` of ``exposures``
    (name, x, y, shape), pixels in ``masked`` left out: the largest |median| and the rms."""
    medians = {}
    for name, x, y, shape in exposures:
        for edge, band in edge_bands(x, y, shape, BAND_PX):
            band &= ~masked
            if band.sum() >= MIN_BAND_PIXELS:
                medians[f"{name} {edge}"] = float(np.median(residual[band]))
    values = np.array(list(medians.values()))
    return {"edges": len(values), "max_abs_sigma": float(np.abs(values).max()),
            "rms_sigma": float(np.sqrt(np.mean(values ** 2))), "per_edge": medians}


def measure_run(asn: Path, run_dir: Path, product: str, members: list[str]) -> dict:
    """Relative sky levels, seams and star completeness of one run's products."""
    truth_dir = asn.parent / "truth"
    exposures = Table.read(truth_dir / "exposures.ecsv")
    sigma = float(np.median(exposures["noise_sigma_mjysr"]))
    asn_id = json.loads(asn.read_text())["asn_id"]
    crfs = [run_dir / f"{m}_{asn_id}_crf.fits" for m in members]
    levels = [fits.getheader(c, 0).get("BKGLEVEL", np.nan) for c in crfs]
    true_sky = [float(exposures[exposures["member"] == m]["sky_mjysr"][0]) for m in members]
    errors = compare.sky_level_errors(levels, true_sky)  # MJy/sr, the common offset removed
    result = {"sky_levels": {"rms_sigma": errors["rms_mjysr"] / sigma,
                             "max_sigma": errors["max_abs_mjysr"] / sigma}}

    with fits.open(run_dir / f"{product}_i2d.fits") as i2d:
        sci = i2d["SCI"].data.astype(float)
        wcs = WCS(i2d["SCI"].header)
    segm = fits.getdata(run_dir / f"{product}_segm.fits")
    yy, xx = np.mgrid[0:sci.shape[0], 0:sci.shape[1]]
    ra, dec = wcs.pixel_to_world_values(xx, yy)
    nebula = np.zeros_like(sci)
    if (truth_dir / "nebula.fits").exists():
        with fits.open(truth_dir / "nebula.fits") as neb:
            px, py = WCS(neb[0].header).world_to_pixel_values(ra, dec)
            nebula = map_coordinates(neb[0].data, [py, px], order=1, mode="nearest")
        nebula *= float(exposures["nebula_mjysr"][0])
    residual = sci - nebula
    masked = binary_dilation(segm > 0, iterations=4) | ~np.isfinite(residual)
    residual = (residual - np.median(residual[~masked])) / sigma
    bands = []
    for m, crf in zip(members, crfs, strict=True):
        with datamodels.open(crf) as model:
            x, y = model.meta.wcs.invert(ra, dec, with_bounding_box=False)
        bands.append((m, np.asarray(x), np.asarray(y), fits.getdata(crf, "SCI").shape))
    result["seams"] = seam_statistic(residual, masked, bands)
    return result


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--instrument", default="NIRCAM")
    parser.add_argument("--layout", default="mosaic:2x2")
    parser.add_argument("-n", type=int, default=2, help="dithers per pointing")
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--nebula", type=float, default=0.0, help="nebula rms / sky noise")
    parser.add_argument("--density", type=float, default=synth.DEFAULT_DENSITY_PER_ARCSEC2)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--cores", type=int, default=2)
    parser.add_argument("--reference-python", type=Path)
    parser.add_argument("--keep", action="store_true")
    parser.add_argument("--measure-only", type=Path, metavar="FOLDER",
                        help="measure the runs of a folder kept with --keep")
    args = parser.parse_args(argv)

    result = {"args": {k: str(v) for k, v in vars(args).items()}}
    if args.measure_only:
        folder = args.measure_only
        asn = next((folder / "data").glob("*_asn.json"))
    else:
        folder = Path(tempfile.mkdtemp(prefix="image3-sky-edges-"))
        asn = synth.make_program(folder / "data", args.n, args.size, args.seed, truth_images=True,
                                 density=args.density, layout=args.layout,
                                 instrument=args.instrument.upper(), nebula=args.nebula)[0]
        result["ours_wall_s"] = run_bench.run_workflow(folder, asn, args.cores)["wall_s"]
        if args.reference_python:
            strun, version = run_bench.reference_strun(args.reference_python)
            result["jwst_version"] = version
            result["jwst_wall_s"] = run_bench.run_reference(strun, folder, asn)["wall_s"]
    result["folder"] = str(folder)
    spec = json.loads(asn.read_text())["products"][0]
    product = spec["name"]
    members = [m["expname"].removesuffix("_cal.fits") for m in spec["members"]]
    runs = {run: folder / sub for run, sub in (("ours", "out"), ("jwst", "reference"))
            if (folder / sub / f"{product}_i2d.fits").exists()}
    for run, run_dir in runs.items():
        result[run] = measure_run(asn, run_dir, product, members)
    truth = Table.read(asn.parent / "truth" / "sources.ecsv")
    catalogues = {run: compare._catalogue(d / f"{product}_cat.ecsv") for run, d in runs.items()}
    completeness = compare.completeness_of_runs(
        truth, json.loads((asn.parent / "truth" / "psf.json").read_text()),
        folder / "out" / f"{product}_i2d.fits", catalogues)
    for run, figures in result.items():
        if run in runs:
            figures["stars"] = completeness[run]
            sky, seams, stars = figures["sky_levels"], figures["seams"], figures["stars"]
            print(f"{run:5s}: relative sky rms {sky['rms_sigma']:.4f} max {sky['max_sigma']:.4f} sigma; "
                  f"seams over {seams['edges']} edges max {seams['max_abs_sigma']:.4f} rms "
                  f"{seams['rms_sigma']:.4f} sigma; stars S/N >= 10 {stars['completeness']:.4f} of "
                  f"{stars['stars']} (bright half {stars['bright_half']:.4f}); S/N >= 25 "
                  f"{stars['strong_completeness']:.4f} of {stars['strong_stars']}, within 10 px of an edge {stars['edge_completeness']:.3f} of {stars['edge_stars']}")
    RESULTS.mkdir(exist_ok=True)
    name = (f"sky-edges-{args.instrument.lower()}-{args.layout.replace(':', '')}-neb{args.nebula:g}-"
            f"{time.strftime('%Y%m%dT%H%M%S')}.json")
    (RESULTS / name).write_text(json.dumps(result, indent=1) + "\n")
    print(f"written {RESULTS / name}")
    if not (args.keep or args.measure_only):
        subprocess.run(["rm", "-rf", str(folder)], check=False)


if __name__ == "__main__":
    main()
