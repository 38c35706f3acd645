"""``python -m image3.synth`` (and ``image3 synth``): write a synthetic program from the command line."""

import argparse
import time
from pathlib import Path

from image3.errors import ConfigError
from image3.synth.sources import DEFAULT_DENSITY_PER_ARCSEC2
from image3.synth.program import make_program

EPILOG = """\
examples:
  python -m image3.synth --out data -n 4                      # 4 dithered NIRCam F200W NRCB1 exposures
  python -m image3.synth --out d -n 2 --size 256 --detectors AB --bands F200W+F444W,F150W
  python -m image3.synth --out d -n 2 --layout mosaic:3x3 --density 0.15
  python -m image3.synth --out d -n 3 --instrument miri --bands F770W --size 1024
  python -m image3.synth --out d -n 3 --misregister 2:1.0:0.1 --nebula 5 --variables 2 --movers 1
Each band gets its own ASN (jw99999-o001_image3_<nnnnn>_asn.json when there are several).
The model and the truth files: pydoc image3.synth"""


def _misregister(text: str) -> tuple[int, float, float]:
    parts = text.split(":")
    try:
        exposure = int(parts[0])
        shift = float(parts[1]) if len(parts) > 1 else 1.0
        roll = float(parts[2]) if len(parts) > 2 else 0.1
    except (ValueError, IndexError):
        raise argparse.ArgumentTypeError(f"expected K[:SHIFT_ARCSEC[:ROLL_DEG]], got {text!r}") from None
    return exposure, shift, roll


def _detectors(text: str):
    return int(text) if text.isdigit() else text.upper()


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m image3.synth",
        description="Synthetic JWST level-2 (_cal) imaging exposures of a known sky, with truth and image3 ASNs.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True, type=Path, help="output directory")
    parser.add_argument("-n", type=int, required=True, help="number of exposures (dithers per pointing)")
    parser.add_argument("--size", type=int, default=1024,
                        help="array side in pixels, 256 up to the full frame's height (2048; MIRI 1024 = "
                             "its 1032x1024 full frame); smaller is a centred subarray")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--no-wcs-errors", action="store_true", help="write the true WCS for every exposure")
    parser.add_argument("--no-sky-offsets", action="store_true", help="same sky level in every exposure")
    parser.add_argument("--no-cosmic-rays", action="store_true")
    parser.add_argument("--detectors", type=_detectors, default=1,
                        help="1: one detector (NIRCam NRCB1/NRCBLONG); 2: NRCB1 and a compact companion "
                             "beside it; A, B or AB: the NIRCam modules (4 short detectors, 1 long each)")
    parser.add_argument("--instrument", default="NIRCAM", type=str.upper, choices=("NIRCAM", "MIRI", "NIRISS"))
    parser.add_argument("--bands",
                        help="exposure sets separated by ',', bands taken together joined by '+' "
                             "(NIRCam: one short and one long), e.g. F200W+F444W,F150W (default: NIRCam F200W, "
                             "MIRI F770W, NIRISS F150W)")
    parser.add_argument("--layout", default="dither",
                        help="'dither' (one pointing) or 'mosaic:CxR' (C x R pointings ~10%% overlapped)")
    parser.add_argument("--density", type=float, default=DEFAULT_DENSITY_PER_ARCSEC2,
                        help="sources (stars + galaxies) per arcsec^2")
    parser.add_argument("--misregister", type=_misregister, metavar="K[:SHIFT[:ROLL]]",
                        help="exposure K (1-based, time order) keeps a written-WCS error of SHIFT arcsec "
                             "(default 1) and ROLL degrees (default 0.1)")
    parser.add_argument("--nebula", type=float, default=0.0,
                        help="add a nebula of this rms in units of the sky noise (P(k) ~ k^-3)")
    parser.add_argument("--variables", type=int, default=0, help="number of variable stars")
    parser.add_argument("--movers", type=int, default=0, help="number of moving (asteroid-like) sources")
    parser.add_argument("--truth-images", action="store_true",
                        help="also write noise-free images (and the nebula) to truth/")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    try:
        asns = make_program(
            args.out, n=args.n, size=args.size, seed=args.seed,
            wcs_errors=not args.no_wcs_errors, sky_offsets=not args.no_sky_offsets,
            cosmic_rays=not args.no_cosmic_rays, detectors=args.detectors,
            truth_images=args.truth_images, density=args.density, layout=args.layout,
            instrument=args.instrument, bands=args.bands.split(",") if args.bands else None, misregister=args.misregister,
            nebula=args.nebula, variables=args.variables, movers=args.movers,
        )
    except ConfigError as error:
        parser.exit(2, f"image3.synth: {error}\n")
    print(f"wrote {', '.join(str(a) for a in asns)} in {time.perf_counter() - started:.1f} s")
