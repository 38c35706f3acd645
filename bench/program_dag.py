"""Time to plan a program of many associations: ``snakemake -n``, the DAG build before the
first job, and a rerun with nothing to do.

    .venv/bin/python bench/program_dag.py [--associations 20] [--members 25] [--size 256]

One synthetic association of ``--members`` exposures (``image3.synth``) is copied into
``--associations`` ASN files, each with its own product name and asn_id (so their products and
_crf names differ), all in one folder: a program of that many products. Timed, from Snakemake's
start: a dry run (``-n``: parse, 20 modules, screening every member, the DAG); the real run's
DAG build (from the start to Snakemake's first "rule ...:" line, read from the log with its
timestamps); the rerun with nothing to do. Results are printed and written to bench/results/.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from image3 import synth

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"


def make_program(folder: Path, associations: int, members: int, size: int) -> Path:
    data = folder / "data"
    asn = synth.make_association(data, n=members, size=size, seed=5)
    spec = json.loads(asn.read_text())
    asn.unlink()
    for k in range(1, associations + 1):
        spec["asn_id"] = f"a{k:03d}"
        spec["products"][0]["name"] = f"jw99999-a{k:03d}_t001_nircam_clear-f200w"
        (data / f"jw99999-a{k:03d}_image3_00001_asn.json").write_text(json.dumps(spec, indent=1))
    return data


def timed(cmd: list[str], cwd: Path, until: str | None = None) -> tuple[float, str]:
    """Wall seconds of ``cmd``; with ``until``, the seconds until a line containing it appears
    on its output (then the run is stopped)."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)
    lines = []
    for line in proc.stdout:
        lines.append(line)
        if until and until in line:
            elapsed = time.perf_counter() - start
            proc.terminate()
            proc.wait()
            return elapsed, "".join(lines)
    proc.wait()
    if proc.returncode != 0:
        raise SystemExit("".join(lines)[-3000:])
    return time.perf_counter() - start, "".join(lines)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--associations", type=int, default=20)
    parser.add_argument("--members", type=int, default=25)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--cores", type=int, default=2)
    args = parser.parse_args(argv)
    folder = Path(tempfile.mkdtemp(prefix="image3-program-"))
    data = make_program(folder, args.associations, args.members, args.size)
    base = [sys.executable, "-m", "snakemake", "--snakefile", str(ROOT / "Snakefile"),
            "--cores", str(args.cores), "--config", f"asn={data}", "output_dir=out",
            "qa={plots: false}"]
    dry, log = timed([*base, "-n"], folder)
    jobs = sum(1 for line in log.splitlines() if line.startswith(("rule ", "localrule ")))
    first_job, _ = timed(base, folder, until="rule ")
    subprocess.run(["rm", "-rf", str(folder / "out"), str(folder / ".snakemake")], check=True)
    run, _ = timed(base, folder)
    rerun, log = timed(base, folder)
    assert "Nothing to be done" in log, log[-2000:]
    result = {"associations": args.associations, "members": args.members, "size": args.size,
              "jobs": jobs, "dry_run_s": round(dry, 1), "dag_before_first_job_s": round(first_job, 1),
              "run_s": round(run, 1), "rerun_nothing_to_do_s": round(rerun, 1)}
    print(json.dumps(result, indent=1))
    RESULTS.mkdir(exist_ok=True)
    name = f"program-dag-{args.associations}x{args.members}-{time.strftime('%Y%m%dT%H%M%S')}.json"
    (RESULTS / name).write_text(json.dumps(result, indent=1) + "\n")
    subprocess.run(["rm", "-rf", str(folder)], check=False)


if __name__ == "__main__":
    main()
