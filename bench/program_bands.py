"""Three bands of one field as one program run against three separate runs (issue 28).

    .venv/bin/python bench/program_bands.py [--dithers 4] [--size 1024] [--cores 2]
                                            [--integer-ratio]

A synthetic NIRCam program (``image3.synth.make_program``): F200W and F444W taken together
(the same exposures, SW and LW), F150W in exposures of their own, ``--dithers`` each, one ASN
per band. Timed: the three ASNs run one after the other (each its own ``snakemake``, default
grids), then the three as one run (one DAG, one projection per target). Measured on the
program's products: whether every ``_i2d`` is on one projection (CRVAL, PC, pixel scale or an
integer ratio, CRPIX whole lattice pixels apart) and the positions of the sources with S/N > 50
in each band against the bluest band's (``image3.qa.band_offsets``), in mas and in SW pixels.
Results are printed and written to bench/results/.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from astropy.io import fits
from astropy.table import Table

from image3 import synth
from image3.asn import read_association
from image3.qa import band_offsets

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
SNAKEMAKE = [sys.executable, "-m", "snakemake", "--snakefile", str(ROOT / "Snakefile")]


def run(folder: Path, cores: int, *config: str) -> float:
    start = time.perf_counter()
    subprocess.run([*SNAKEMAKE, "--directory", str(folder), "--cores", str(cores), "--config",
                    "qa={plots: false}", *config], check=True, capture_output=True)
    return time.perf_counter() - start


def projection(i2d: Path) -> dict:
    h = fits.getheader(i2d, "SCI")
    return {k: h[k] for k in ("CRVAL1", "CRVAL2", "PC1_1", "PC1_2", "PC2_1", "PC2_2", "CDELT1",
                              "CDELT2", "CRPIX1", "CRPIX2")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dithers", type=int, default=4)
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--cores", type=int, default=2)
    parser.add_argument("--integer-ratio", action="store_true",
                        help="program.integer_ratio: LW at twice the SW pixel, as alone")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="image3-bands-") as tmp:
        folder = Path(tmp)
        asns = synth.make_program(folder / "data", n=args.dithers, size=args.size, seed=7,
                                  bands=("F200W+F444W", "F150W"))
        products = [read_association(a).product for a in asns]
        separate = sum(run(folder, args.cores, f"asn={a}", f"output_dir=alone{k}")
                       for k, a in enumerate(asns))
        program = [f"program={{integer_ratio: {str(args.integer_ratio).lower()}}}"]
        together = run(folder, args.cores, f"asn={folder / 'data'}", "output_dir=program",
                       *program)
        out = folder / "program"
        headers = {p.rsplit("-", 1)[1]: projection(out / f"{p}_i2d.fits") for p in products}
        bands = sorted(headers, key=lambda b: int(b[1:-1]))
        sw = abs(headers[bands[0]]["CDELT1"]) * 3600
        same = all(headers[b][k] == headers[bands[0]][k] for b in bands
                   for k in ("CRVAL1", "CRVAL2", "PC1_1", "PC1_2", "PC2_1", "PC2_2"))
        ratios = {b: abs(headers[b]["CDELT1"]) * 3600 / sw for b in bands}
        offsets = band_offsets({b: Table.read(out / f"{p}_cat.ecsv", format="ascii.ecsv")
                                for b in bands for p in products if p.endswith(b)})
    result = {
        "dithers": args.dithers, "size": args.size, "cores": args.cores,
        "integer_ratio": args.integer_ratio,
        "wall_s": {"three separate runs": round(separate, 1), "one program run": round(together, 1)},
        "one_projection": same, "pixel_ratio_to_finest": ratios,
        "band_offsets": [{**dict(zip(row.colnames, row.as_void().tolist())),
                          "offset_sw_px": float((row["dra_mas"] ** 2 + row["ddec_mas"] ** 2)
                                                ** 0.5 / 1000 / sw)} for row in offsets],
    }
    print(json.dumps(result, indent=1))
    RESULTS.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%dT%H%M%S")
    (RESULTS / f"program-bands-{args.size}-{stamp}.json").write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
