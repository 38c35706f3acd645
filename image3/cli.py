"""``image3``: run the workflow without knowing Snakemake, or make demo data.

    image3 run ASN [--cores N] [--profile P] [--set step.param=value ...] [--output-dir D]
    image3 synth --out DIR -n N [...]          (the synthetic generator, see image3.synth)

``run`` becomes Snakemake (``exec``: the same process, so a SIGTERM or Ctrl-C reaches Snakemake
itself and no Snakemake is left running without its ``image3``) on the Snakefile shipped beside
the package, in the current directory, keeping Snakemake's own progress output; extra arguments
after ``--`` go to Snakemake.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import NoReturn

SNAKEFILE = Path(__file__).resolve().parents[1] / "Snakefile"


def _overrides(settings: list[str]) -> list[str]:
    """``step.param=value`` pairs as Snakemake ``--config 'step={param: value}'`` items."""
    by_step: dict[str, list[str]] = {}
    items = []
    for setting in settings:
        key, sep, value = setting.partition("=")
        if not sep:
            raise SystemExit(f"image3: --set {setting!r}: expected step.param=value")
        step, dot, param = key.partition(".")
        if dot:
            by_step.setdefault(step, []).append(f"{param}: {value}")
        else:
            items.append(f"{key}={value}")
    items += [f"{step}={{{', '.join(pairs)}}}" for step, pairs in by_step.items()]
    return items


def run(args: argparse.Namespace, extra: list[str]) -> NoReturn:
    """Replace this process by Snakemake on the shipped Snakefile (never returns)."""
    if not SNAKEFILE.exists():
        raise SystemExit(f"image3: the workflow's Snakefile is not at {SNAKEFILE}")
    config = [f"asn={Path(args.asn).resolve()}", *_overrides(args.set)]
    if args.output_dir:
        config.append(f"output_dir={Path(args.output_dir).resolve()}")
    cmd = [sys.executable, "-m", "snakemake", "--snakefile", str(SNAKEFILE),
           "--rerun-incomplete"]
    cmd += ["--profile", args.profile] if args.profile else ["--cores", str(args.cores)]
    cmd += [*extra, "--config", *config]
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(sys.executable, cmd)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    extra = []
    if "--" in argv:
        extra = argv[argv.index("--") + 1:]
        argv = argv[:argv.index("--")]
    parser = argparse.ArgumentParser(
        prog="image3", description="image3: run the workflow without knowing Snakemake, or make "
        "demo data. Snakemake options go after --, e.g. image3 run my_asn.json -- --dry-run")
    sub = parser.add_subparsers(dest="command", required=True)
    p_run = sub.add_parser(
        "run", help="run the workflow on an association or a _cal file",
        description="Run the workflow (Snakemake on the shipped Snakefile, in the current "
        "folder). Snakemake options go after --, e.g. -- --dry-run.")
    p_run.add_argument("asn", help="image3 association json, a single _cal.fits, or a folder "
                       "of *_asn.json (one product each)")
    p_run.add_argument("--cores", default="all", help="cores to use (default: all)")
    p_run.add_argument("--profile", help="a Snakemake profile, e.g. profiles/slurm")
    p_run.add_argument("--set", action="append", default=[], metavar="STEP.PARAM=VALUE",
                       help="override a parameter, e.g. --set resample.pixfrac=0.8")
    p_run.add_argument("--output-dir", help="where the products go (default: results)")
    sub.add_parser("synth", add_help=False, help="write a synthetic association (see --help)")
    args, rest = parser.parse_known_args(argv)
    if args.command == "synth":
        from .synth import main as synth_main

        synth_main(rest)
        return 0
    if rest:
        parser.error(f"unrecognised arguments: {' '.join(rest)}")
    run(args, extra)


if __name__ == "__main__":
    sys.exit(main())
