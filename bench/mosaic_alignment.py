"""Relative alignment of a synthetic mosaic against its truth, image3 and jwst side by side.

Makes a mosaic with ``image3.synth`` (default: 3 x 3 NIRCam pointings of 1024², 2 dithers
each, 0.15 sources/arcsec², so that each overlap holds 3-9 common stars), runs image3's
tweakreg jobs (``find_exposure_sources``, ``align_members``, default settings) and, given
``--reference-python``, jwst's ``strun tweakreg`` on the same association (offline, as
``bench/run_bench.py`` runs calwebb_image3), and reports per group the RMS [mas] of (fitted -
true) sky positions over a 9 x 9 grid of its pixels, after removing the offset and rotation
common to the whole mosaic (the absolute frame is not relative alignment's to fix).

    .venv/bin/python bench/mosaic_alignment.py --reference-python /work/jwst-venv/bin/python
    .venv/bin/python bench/mosaic_alignment.py --instrument miri --layout mosaic:2x2 --density 0.5
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import asdf
import numpy as np

from image3 import synth
from image3.config import schema_defaults
from image3.datamodel import read_wcs, sci_shape
from image3.parameters import AlignmentFit, SourceFinding
from image3.tweakreg import align_members, find_exposure_sources

RESULTS = Path(__file__).resolve().parent / "results"


def members_of(asn: Path) -> list[str]:
    return [m["expname"][:-len("_cal.fits")]
            for m in json.loads(asn.read_text())["products"][0]["members"]]


def residuals_mas(asn: Path, wcs: dict) -> dict[str, float]:
    """Per group, RMS [mas] of (fitted - true) positions after the common offset and rotation."""
    true, fitted, groups = [], [], []
    for name, fitted_wcs in wcs.items():
        ny, nx = sci_shape(asn.parent / f"{name}_cal.fits")
        x, y = (a.ravel() for a in np.meshgrid(np.linspace(0, nx - 1, 9),
                                               np.linspace(0, ny - 1, 9)))
        with asdf.open(asn.parent / "truth" / f"{name}_wcs.asdf") as af:
            true.append(np.column_stack(af["wcs"](x, y)))
        fitted.append(np.column_stack(fitted_wcs(x, y)))
        groups += [synth.group_id(name)] * len(x)
    true, fitted, groups = np.vstack(true), np.vstack(fitted), np.array(groups)
    t, f = tangent_arcsec(true, *true[0]), tangent_arcsec(fitted, *true[0])
    design = np.zeros((2 * len(t), 3))
    design[0::2, 0], design[1::2, 1] = 1.0, 1.0
    design[0::2, 2], design[1::2, 2] = -f[:, 1], f[:, 0]
    common = np.linalg.lstsq(design, (t - f).ravel(), rcond=None)[0]
    left = f + common[:2] + common[2] * np.column_stack([-f[:, 1], f[:, 0]]) - t
    return {g: 1000.0 * float(np.sqrt(np.mean(np.sum(left[groups == g] ** 2, axis=1))))
            for g in dict.fromkeys(groups)}


def tangent_arcsec(radec: np.ndarray, ra0: float, dec0: float) -> np.ndarray:
    ra, dec = np.deg2rad(radec.T)
    ra0, dec0 = np.deg2rad(ra0), np.deg2rad(dec0)
    c = np.sin(dec0) * np.sin(dec) + np.cos(dec0) * np.cos(dec) * np.cos(ra - ra0)
    east = np.cos(dec) * np.sin(ra - ra0) / c
    north = (np.cos(dec0) * np.sin(dec) - np.sin(dec0) * np.cos(dec) * np.cos(ra - ra0)) / c
    return np.rad2deg(np.column_stack([east, north])) * 3600.0


def run_ours(asn: Path, work: Path) -> tuple[dict, str, float]:
    defaults = schema_defaults()["tweakreg"]
    start = time.perf_counter()
    rows = []
    for name in members_of(asn):
        cal = asn.parent / f"{name}_cal.fits"
        find_exposure_sources(cal, work / f"{name}.ecsv", work / f"{name}.pkl",
                              SourceFinding.from_config(defaults))
        rows.append({"member": name, "group_id": synth.group_id(name), "cal": cal,
                     "geometry": work / f"{name}.pkl", "sources": work / f"{name}.ecsv"})
    paths = [work / f"{row['member']}_wcs.pkl" for row in rows]
    summary = align_members(rows, AlignmentFit.from_config(defaults), "", paths,
                            work / "residuals.ecsv", work / "report.ecsv")
    wall = time.perf_counter() - start
    return {row["member"]: read_wcs(p) for row, p in zip(rows, paths)}, summary, wall


def run_jwst(python: Path, asn: Path, out: Path) -> tuple[dict, float]:
    """jwst's tweakreg step alone (default parameters), offline; the members' gwcs."""
    from stdatamodels.jwst import datamodels

    crds = out / "crds"
    crds.mkdir(parents=True)
    env = {**os.environ, "STPIPE_DISABLE_CRDS_STEPPARS": "True", "CRDS_PATH": str(crds),
           "CRDS_SERVER_URL": "http://localhost:1"}
    start = time.perf_counter()
    done = subprocess.run([str(python.parent / "strun"), "tweakreg", str(asn),
                           f"--output_dir={out}", "--save_results=True"], env=env,
                          capture_output=True, text=True, cwd=out)
    if done.returncode:
        sys.exit(f"jwst tweakreg failed:\n{done.stderr[-2000:]}")
    wall = time.perf_counter() - start
    wcs = {}
    for name in members_of(asn):
        with datamodels.ImageModel(str(out / f"{name}_tweakregstep.fits")) as model:
            wcs[name] = model.meta.wcs
    return wcs, wall


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--layout", default="mosaic:3x3")
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("-n", type=int, default=2, help="dithers per pointing")
    parser.add_argument("--density", type=float, default=0.15)
    parser.add_argument("--instrument", default="nircam")
    parser.add_argument("--seed", type=int, default=3)
    parser.add_argument("--reference-python", type=Path)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        asn = synth.make_association(tmp / "data", n=args.n, size=args.size, seed=args.seed,
                                     layout=args.layout, density=args.density,
                                     instrument=args.instrument.upper())
        (tmp / "ours").mkdir()
        ours, summary, our_wall = run_ours(asn, tmp / "ours")
        result = {"layout": args.layout, "size": args.size, "dithers": args.n,
                  "density": args.density, "instrument": args.instrument, "seed": args.seed,
                  "written": residuals_mas(asn, {m: _written(asn, m) for m in ours}),
                  "image3": residuals_mas(asn, ours), "image3_wall_s": our_wall,
                  "image3_summary": summary}
        if args.reference_python:
            theirs, wall = run_jwst(args.reference_python, asn, tmp / "jwst")
            result.update(jwst=residuals_mas(asn, theirs), jwst_wall_s=wall)
    for key in ("written", "image3", "jwst"):
        if key in result:
            values = np.array(list(result[key].values()))
            print(f"{key:8s} per-group RMS vs truth [mas]: median {np.median(values):.2f}, "
                  f"max {values.max():.2f}; groups <= 2 mas: {(values <= 2).sum()}/{len(values)}")
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / (f"mosaic-{args.instrument}-{args.layout.replace(':', '')}-{args.size}-"
                      f"{time.strftime('%Y%m%dT%H%M%S')}.json")
    path.write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {path}", file=sys.stderr)


def _written(asn: Path, name: str):
    """The gwcs written in the member's _cal (before any alignment)."""
    from stdatamodels.jwst import datamodels

    with datamodels.ImageModel(str(asn.parent / f"{name}_cal.fits")) as model:
        return model.meta.wcs


if __name__ == "__main__":
    main()
