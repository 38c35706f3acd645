"""One pointing added to a finished tiled mosaic: which jobs the rerun runs, and its wall time
against a full run of the grown mosaic.

    .venv/bin/python bench/tile_add.py [--size 1024] [-n 2] [--tile 1024] [--cores 2]

A synthetic NIRCam mosaic of 3 x 4 pointings (``image3.synth.make_program``, ``-n`` dithers
each, ``--size``² detectors) is cut to its first three rows (3 x 3) and reduced with sky tiles of
``--tile``² pixels (defaults otherwise: ``tiles.reserve`` 2, ``keep_previous`` true); then the
first pointing of the fourth row is added to the association and the same output folder run
again; last, the 3 x 3 + 1 association from scratch in another folder. Printed and written as
JSON to bench/results/: each run's wall time and the jobs it ran per rule, the tiles the new
pointing touches, the new members' alignment against the generator's true gwcs, and the merged
catalogue of the rerun against the full run's (matched within 0.1") and the truth.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np
from astropy.table import Table

import compare
import run_bench

from image3 import synth
from image3.datamodel import read_wcs
from image3.tiles import read_tiles

RESULTS = run_bench.RESULTS


def jobs_by_rule(out: Path, since: float) -> dict[str, int]:
    """Jobs per rule that wrote a benchmark file after ``since`` (epoch seconds)."""
    counts: dict[str, int] = {}
    for tsv in (out / "work" / "benchmarks").rglob("*.tsv"):
        if tsv.stat().st_mtime >= since:
            rule = tsv.relative_to(out / "work" / "benchmarks").parts[0].removesuffix(".tsv")
            counts[rule] = counts.get(rule, 0) + 1
    return dict(sorted(counts.items()))


def run(folder: Path, asn: Path, args) -> dict:
    folder.mkdir(exist_ok=True)
    start = time.time()
    measured = run_bench.run_workflow(folder, asn, args.cores, config=(
        f"tiles={{above_pixels: 0, size: {args.tile}, margin: {args.margin}}}",))
    return {"wall_s": measured["wall_s"], "jobs": jobs_by_rule(folder / "out", start)}


def subset(asn: Path, members: list[str], name: str) -> Path:
    table = json.loads(asn.read_text())
    table["products"][0]["members"] = [m for m in table["products"][0]["members"]
                                       if m["expname"].removesuffix("_cal.fits") in members]
    path = asn.with_name(name)
    path.write_text(json.dumps(table, indent=1))
    return path


def truth_error_mas(data: Path, member: str, wcs) -> float:
    """RMS [mas] of wcs(true pixel position) - true position over the true stars on it."""
    import asdf

    sources = Table.read(data / "truth" / "sources.ecsv")
    with asdf.open(data / "truth" / f"{member}_wcs.asdf") as af:
        true_wcs = af.tree["wcs"]
        nx, ny = true_wcs.pixel_shape
        x, y = synth.sky_to_pixel(true_wcs, sources["ra"], sources["dec"])
    inside = (x > -0.5) & (x < nx - 0.5) & (y > -0.5) & (y < ny - 0.5)
    ra, dec = wcs(x[inside], y[inside], with_bounding_box=False)
    east, north = synth._tangent_offsets(ra, dec, sources["ra"][inside], sources["dec"][inside])
    return float(np.sqrt(np.mean(east**2 + north**2)) * 1000.0)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=2, help="dithers per pointing")
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--tile", type=int, default=1024)
    parser.add_argument("--margin", type=int, default=100)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--cores", type=int, default=2)
    parser.add_argument("--keep", action="store_true")
    args = parser.parse_args(argv)

    folder = Path(tempfile.mkdtemp(prefix="image3-tile-add-"))
    data = folder / "data"
    asn = synth.make_program(data, args.n, args.size, args.seed, layout="mosaic:3x4")[0]
    exposures = Table.read(data / "truth" / "exposures.ecsv")
    rows = sorted({float(y) for y in exposures["pointing_y_px"]})
    first = [str(r["member"]) for r in exposures if float(r["pointing_y_px"]) in rows[:3]]
    fourth_row = [r for r in exposures if float(r["pointing_y_px"]) == rows[3]]
    x0 = min(float(r["pointing_x_px"]) for r in fourth_row)
    added = [str(r["member"]) for r in fourth_row if float(r["pointing_x_px"]) == x0]
    nine = subset(asn, first, "mosaic_3x3_asn.json")
    ten = subset(asn, first + added, "mosaic_3x3_plus1_asn.json")

    result = {"layout": "3x3 + 1", "dithers": args.n, "size": args.size, "tile": args.tile,
              "members": len(first), "added": added, "folder": str(folder)}
    incremental = folder / "incremental"
    result["first"] = run(incremental, nine, args)
    result["added_run"] = run(incremental, ten, args)
    result["full"] = run(folder / "full", ten, args)
    tiles = read_tiles(incremental / "out" / "work" / "tiles.json")
    result["tiles"] = len(tiles)
    result["tiles_touched"] = sorted(t.name for t in tiles if set(added) & set(t.members))
    work = incremental / "out" / "work"
    result["added_alignment_mas"] = {
        m: round(truth_error_mas(data, m, read_wcs(work / m / "wcs.pkl")), 2) for m in added}
    full_work = folder / "full" / "out" / "work"
    result["full_alignment_mas"] = {
        m: round(truth_error_mas(data, m, read_wcs(full_work / m / "wcs.pkl")), 2)
        for m in added}
    product = json.loads(asn.read_text())["products"][0]["name"]
    catalogues = {run: compare._catalogue(folder / run / "out" / f"{product}_cat.ecsv")
                  for run in ("incremental", "full")}
    matched, _, _ = compare.match_sky(*(catalogues[run][c] for run in ("incremental", "full")
                                        for c in ("ra", "dec")))
    truth = Table.read(data / "truth" / "sources.ecsv")
    found = compare.detections_against_truth(catalogues["incremental"], catalogues["full"], truth)
    result["catalogue"] = {"added_run": len(catalogues["incremental"]),
                           "full": len(catalogues["full"]), "matched": len(matched),
                           "vs_truth": {"added_run": found["ours"], "full": found["theirs"]}}
    ratio = result["added_run"]["wall_s"] / result["full"]["wall_s"]
    print(f"3x3 mosaic, {len(first)} members, {len(tiles)} tiles after adding "
          f"{len(added)} members (one pointing), touching {len(result['tiles_touched'])} tiles\n"
          f"  first run   {result['first']['wall_s']:6.1f} s  {result['first']['jobs']}\n"
          f"  added run   {result['added_run']['wall_s']:6.1f} s  {result['added_run']['jobs']}\n"
          f"  full run    {result['full']['wall_s']:6.1f} s  {result['full']['jobs']}\n"
          f"  added / full wall time {ratio:.2f}; new members' alignment vs truth "
          f"{result['added_alignment_mas']} mas (full run: {result['full_alignment_mas']})\n"
          f"  merged catalogues: added run {result['catalogue']['added_run']}, full run "
          f"{result['catalogue']['full']}, matched within 0.1\" {result['catalogue']['matched']}; "
          f"true / spurious {result['catalogue']['vs_truth']}", flush=True)
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"tile-add-{time.strftime('%Y%m%dT%H%M%S')}.json"
    path.write_text(json.dumps(result, indent=1) + "\n")
    print(f"written {path}")
    if not args.keep:
        subprocess.run(["rm", "-rf", str(folder)], check=False)


if __name__ == "__main__":
    main()
