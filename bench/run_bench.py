"""Per-stage wall time, CPU time and memory of the workflow on a synthetic association.

    .venv/bin/python bench/run_bench.py [-n 8] [--size 2048] [--cores 2] [--seed 1]
    .venv/bin/python bench/run_bench.py --scaling          # N = 2, 4, 8, 16 x cores = 1, 2

Makes the association with image3.synth (outside the timing), runs the real Snakefile in a fresh
folder, and reports, per rule, the sum of wall time and CPU time over its jobs and the largest
peak RSS of one job (Snakemake's ``benchmark:`` files), the total wall time, and two memory
figures: the peak over time of the summed PSS (proportional set size, /proc/PID/smaps_rollup)
of every process of the run, Snakemake's own included (sampled every 0.2 s), and the largest
single job's peak RSS. Results are printed and written as JSON to bench/results/.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"


def _children(pid: int) -> list[int]:
    """All descendants of ``pid`` (from /proc/*/stat parent links)."""
    parents = defaultdict(list)
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            parents[int(fields[1])].append(int(entry.name))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(parents.get(p, []))
    return out


def _pss_kb(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


class PssSampler(threading.Thread):
    """Samples the summed PSS of a process tree; ``peak_mb`` after ``stop()``."""

    def __init__(self, pid: int, interval: float = 0.2):
        super().__init__(daemon=True)
        self.pid, self.interval, self.peak_kb = pid, interval, 0
        self._done = threading.Event()

    def run(self):
        while not self._done.is_set():
            total = sum(_pss_kb(p) for p in _children(self.pid))
            self.peak_kb = max(self.peak_kb, total)
            time.sleep(self.interval)

    def stop(self) -> float:
        self._done.set()
        self.join()
        return self.peak_kb / 1024


def _benchmarks(work: Path) -> dict[str, dict]:
    """Per rule: jobs, summed wall s, summed CPU s, max peak RSS MB from benchmark TSVs."""
    rules: dict[str, dict] = {}
    for tsv in sorted((work / "benchmarks").rglob("*.tsv")):
        rel = tsv.relative_to(work / "benchmarks")
        rule = rel.parts[0] if len(rel.parts) > 1 else rel.stem
        with tsv.open() as fh:
            row = next(csv.DictReader(fh, delimiter="\t"))
        entry = rules.setdefault(rule, {"jobs": 0, "wall_s": 0.0, "cpu_s": 0.0, "max_rss_mb": 0.0})
        entry["jobs"] += 1
        entry["wall_s"] += float(row["s"])
        entry["cpu_s"] += float(row["cpu_time"])
        rss = row["max_rss"]
        entry["max_rss_mb"] = max(entry["max_rss_mb"], float(rss) if rss not in ("-", "NA") else 0)
    return rules


def run_once(n: int, size: int, cores: int, seed: int, keep: bool = False) -> dict:
    from image3 import synth

    folder = Path(tempfile.mkdtemp(prefix=f"image3-bench-n{n}-c{cores}-"))
    asn = synth.make_association(folder / "data", n=n, size=size, seed=seed)
    cmd = [sys.executable, "-m", "snakemake", "--snakefile", str(ROOT / "Snakefile"),
           "--directory", str(folder), "--cores", str(cores), "--config", f"asn={asn}",
           "output_dir=out"]
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    sampler = PssSampler(proc.pid)
    sampler.start()
    _, err = proc.communicate()
    wall = time.perf_counter() - started
    peak_pss = sampler.stop()
    if proc.returncode != 0:
        raise SystemExit(f"workflow failed in {folder}:\n{err[-3000:]}")
    rules = _benchmarks(folder / "out" / "work")
    result = {
        "n_exposures": n, "size": size, "cores": cores, "seed": seed,
        "wall_s": round(wall, 2), "peak_summed_pss_mb": round(peak_pss, 1),
        "largest_job_rss_mb": round(max(r["max_rss_mb"] for r in rules.values()), 1),
        "rules": rules, "folder": str(folder),
    }
    if not keep:
        subprocess.run(["rm", "-rf", str(folder)], check=False)
    return result


def print_result(r: dict) -> None:
    print(f"\nN = {r['n_exposures']} x {r['size']}², --cores {r['cores']}: "
          f"wall {r['wall_s']:.1f} s, peak summed PSS {r['peak_summed_pss_mb']:.0f} MB, "
          f"largest job {r['largest_job_rss_mb']:.0f} MB")
    print(f"{'rule':<18}{'jobs':>5}{'wall s':>9}{'cpu s':>9}{'max RSS MB':>12}")
    for rule, e in sorted(r["rules"].items(), key=lambda kv: -kv[1]["wall_s"]):
        print(f"{rule:<18}{e['jobs']:>5}{e['wall_s']:>9.1f}{e['cpu_s']:>9.1f}{e['max_rss_mb']:>12.0f}")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=8, help="exposures (default 8)")
    parser.add_argument("--size", type=int, default=2048)
    parser.add_argument("--cores", type=int, default=2)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--scaling", action="store_true",
                        help="N = 2, 4, 8, 16 with cores = 1, 2: time per exposure table")
    parser.add_argument("--keep", action="store_true", help="keep the run folders")
    args = parser.parse_args(argv)
    RESULTS.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%dT%H%M%S")
    if args.scaling:
        results = [run_once(n, args.size, c, args.seed, args.keep)
                   for n in (2, 4, 8, 16) for c in (1, 2)]
        print(f"\n{'N':>4}{'cores':>7}{'wall s':>9}{'s/exposure':>12}{'peak PSS MB':>13}")
        for r in results:
            print(f"{r['n_exposures']:>4}{r['cores']:>7}{r['wall_s']:>9.1f}"
                  f"{r['wall_s'] / r['n_exposures']:>12.1f}{r['peak_summed_pss_mb']:>13.0f}")
        out = RESULTS / f"scaling-{args.size}-{stamp}.json"
    else:
        results = [run_once(args.n, args.size, args.cores, args.seed, args.keep)]
        print_result(results[0])
        out = RESULTS / f"n{args.n}-{args.size}-c{args.cores}-{stamp}.json"
    out.write_text(json.dumps(results, indent=1) + "\n")
    print(f"\nwritten {out}")


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main()
