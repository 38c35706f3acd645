"""Memory of sky-tiled mosaics against their size, beside the reference on the same files.

    .venv/bin/python bench/tile_memory.py [--layouts 1x1 2x2 4x4] [--size 1024] [-n 2] \
        [--tile 1024] [--cores 2] [--reference-python /work/jwst-venv/bin/python]

For each layout, a synthetic NIRCam mosaic of that many pointings (``image3.synth.make_program``,
``-n`` dithers each, ``--size``² detectors) is reduced by our workflow with sky tiles of
``--tile``² pixels (``tiles: {above_pixels: 0}``) and, with ``--reference-python``, by jwst's
calwebb_image3 on our grid (bench/run_bench.py's ``run_reference``), both measured by
run_bench's sampler: the run's peak summed PSS (every process, Snakemake's own included) and,
for ours, the largest job's peak RSS with the rule it belongs to. Results are printed and
written as JSON to bench/results/. The issue's goal: ours at 4x4 within 1.1x ours at 1x1.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import tempfile
import time
from pathlib import Path

import run_bench

from image3 import synth

RESULTS = run_bench.RESULTS


def run_layout(layout: str, args) -> dict:
    folder = Path(tempfile.mkdtemp(prefix=f"image3-tiles-{layout}-"))
    asn = synth.make_program(folder / "data", args.n, args.size, args.seed,
                             layout=f"mosaic:{layout}")[0]
    members = len(json.loads(asn.read_text())["products"][0]["members"])
    # reserve 0: jwst is run on our grid, which the reserved room would only enlarge
    ours = run_bench.run_workflow(folder, asn, args.cores, config=(
        f"tiles={{above_pixels: 0, size: {args.tile}, margin: {args.margin}, reserve: 0}}",))
    tiles = len(json.loads((folder / "out" / "work" / "tiles.json").read_text()))
    rule, largest = max(((r, e["max_rss_mb"]) for r, e in ours["rules"].items()),
                        key=lambda item: item[1])
    result = {"layout": layout, "members": members, "tiles": tiles, "folder": str(folder),
              "ours": {"wall_s": ours["wall_s"], "peak_summed_pss_mb": ours["peak_summed_pss_mb"],
                       "processes_at_peak": ours["processes_at_peak"],
                       "largest_job_rss_mb": largest, "largest_job_rule": rule,
                       "rules": ours["rules"]}}
    print(f"{layout}: {members} members, {tiles} tiles; ours {ours['wall_s']:.0f} s, peak summed "
          f"PSS {ours['peak_summed_pss_mb']:.0f} MB, largest job {largest:.0f} MB ({rule})",
          flush=True)
    if args.reference_python:
        strun, version = run_bench.reference_strun(args.reference_python)
        theirs = run_bench.run_reference(strun, folder, asn)
        result["jwst"] = {"version": version, "wall_s": theirs["wall_s"],
                          "peak_summed_pss_mb": theirs["peak_summed_pss_mb"],
                          "steps": theirs["steps"]}
        print(f"{layout}: jwst {version} {theirs['wall_s']:.0f} s, peak summed PSS "
              f"{theirs['peak_summed_pss_mb']:.0f} MB", flush=True)
    if not args.keep:
        subprocess.run(["rm", "-rf", str(folder)], check=False)
    return result


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--layouts", nargs="+", default=["1x1", "2x2", "4x4"])
    parser.add_argument("-n", type=int, default=2, help="dithers per pointing")
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--tile", type=int, default=1024)
    parser.add_argument("--margin", type=int, default=100)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--cores", type=int, default=2)
    parser.add_argument("--reference-python", type=Path)
    parser.add_argument("--keep", action="store_true")
    args = parser.parse_args(argv)
    runs = [run_layout(layout, args) for layout in args.layouts]
    first = runs[0]["ours"]
    for run in runs:
        ours = run["ours"]
        line = (f"{run['layout']:>4}: {run['members']:3d} members {run['tiles']:3d} tiles | ours "
                f"PSS {ours['peak_summed_pss_mb']:6.0f} MB ({ours['peak_summed_pss_mb'] / first['peak_summed_pss_mb']:.2f}x "
                f"{runs[0]['layout']}), largest job {ours['largest_job_rss_mb']:5.0f} MB "
                f"({ours['largest_job_rule']}), wall {ours['wall_s']:5.0f} s")
        if "jwst" in run:
            line += (f" | jwst PSS {run['jwst']['peak_summed_pss_mb']:6.0f} MB, wall "
                     f"{run['jwst']['wall_s']:5.0f} s")
        print(line)
    RESULTS.mkdir(exist_ok=True)
    name = f"tile-memory-{'-'.join(args.layouts)}-{time.strftime('%Y%m%dT%H%M%S')}.json"
    (RESULTS / name).write_text(json.dumps({"args": {k: str(v) for k, v in vars(args).items()},
                                            "runs": runs}, indent=1) + "\n")
    print(f"written {RESULTS / name}")


if __name__ == "__main__":
    main()
