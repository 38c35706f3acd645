"""Per-stage wall time, CPU time and memory of the workflow on a synthetic association, and
a side-by-side run of the reference pipeline (jwst calwebb_image3) on the same data.

    .venv/bin/python bench/run_bench.py [-n 8] [--size 2048] [--cores 2] [--seed 1]
    .venv/bin/python bench/run_bench.py --scaling          # N = 2, 4, 8, 16 x cores = 1, 2
    .venv/bin/python bench/run_bench.py --no-job-server    # each job its own process (a cluster)
    .venv/bin/python bench/run_bench.py -n 6 --size 2048 --cores 2 \
        --reference-python /work/jwst-venv/bin/python      # side by side with jwst
    .venv/bin/python bench/run_bench.py --compare-only FOLDER   # products of a kept run again

Makes the association with image3.synth (outside the timing), runs the real Snakefile in a fresh
folder (QA plots off: the reference makes none), and reports, per rule, the sum of wall time and CPU time over its jobs and the largest
peak RSS of one job (Snakemake's ``benchmark:`` files), the total wall time, and two memory
figures: the peak over time of the summed PSS (proportional set size, /proc/PID/smaps_rollup)
of every process of the run, Snakemake's own included (sampled every 0.2 s), and the largest
single job's peak RSS. The source catalogue uses the APCORR and ABVEGAOFFSET files the
generator writes for its PSF. Results are printed and written as JSON to bench/results/.

Side by side with the reference
-------------------------------
jwst is never a dependency of image3: it needs older asdf and drizzle, so it lives in its own
virtual environment, outside the repository, which the user creates once::

    python3 -m venv /work/jwst-venv
    /work/jwst-venv/bin/pip install jwst==3.0.0

``--reference-python`` takes that environment's python (its ``strun`` is used; without the
option the side-by-side is skipped with one line saying so). Our workflow runs first; then
``strun calwebb_image3`` runs on the same association with the same PSS sampler, offline:

* ``STPIPE_DISABLE_CRDS_STEPPARS=True`` (otherwise the pipeline asks CRDS for its ``pars-*``
  parameter files first and stops), ``CRDS_PATH`` an empty folder and ``CRDS_SERVER_URL`` an
  unused local port (``http://localhost:1``), so any CRDS request fails at once;
* the only reference files calwebb_image3 then asks CRDS for on NIRCam imaging are
  source_catalog's ``apcorr`` and ``abvegaoffset``, given as ``override_apcorr`` /
  ``override_abvegaoffset`` (the generator's ``truth/apcorr.fits`` and
  ``truth/abvegaoffset.asdf``, which jwst's stdatamodels opens);
* ``--steps.resample.output_wcs`` is our final grid (``work/grid.pkl``) written as an ASDF
  file (a gwcs under ``wcs`` with ``pixel_shape``, ``array_shape`` and ``pixel_scale``, as
  jwst's ``load_custom_wcs`` reads it: ``image3.wcs.write_output_wcs``), so both ``_i2d`` are
  on one grid. Outlier detection keeps each pipeline's default grid.

Reported: wall time, CPU time (user + system of the process tree, with the CPU seconds other
processes used meanwhile: on a shared machine compare CPU times) and peak summed PSS of both and
their ratios (ours / jwst), jwst's per-step wall time and peak PSS (from its ``Step X
running/done`` log lines and the PSS samples), and the product comparison of
``bench/compare.py``: i2d difference statistics, outlier pixels per ``_crf`` with
recall/precision against the injected cosmic rays, matched catalogue fluxes and isolated-star
fluxes against the truth. The run folder (``data/``, ``out/`` = ours,
``reference/`` = jwst with ``jwst.log``) is kept with ``--keep``.
"""

from __future__ import annotations

import argparse
import compileall
import csv
import json
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from pathlib import Path

from image3.wcs import read_grid, write_output_wcs

import compare

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


def _command(pid: int) -> str:
    """A short name for a process: its program and, for python, the script or module it runs."""
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")
    except OSError:
        return "?"
    words = [Path(argv[0]).name] + [a if a.startswith("-") else Path(a).name for a in argv[1:3] if a]
    return " ".join(words)


class PssSampler(threading.Thread):
    """Samples the summed PSS of a process tree every ``interval`` s; after ``stop()``,
    ``samples`` holds (POSIX seconds, MB) pairs, ``at_peak`` the processes of the peak sample
    ({"command", "pss_mb"}, largest first), and ``stop()`` returns the peak in MB."""

    def __init__(self, pid: int, interval: float = 0.2):
        super().__init__(daemon=True)
        self.pid, self.interval, self.samples, self.at_peak = pid, interval, [], []
        self._done = threading.Event()

    def run(self):
        peak_kb = -1
        while not self._done.is_set():
            per_process = {p: _pss_kb(p) for p in _children(self.pid)}
            total_kb = sum(per_process.values())
            self.samples.append((time.time(), total_kb / 1024))
            if total_kb > peak_kb:
                peak_kb = total_kb
                self.at_peak = [{"command": _command(p), "pss_mb": round(kb / 1024, 1)}
                                for p, kb in sorted(per_process.items(), key=lambda kv: -kv[1])
                                if kb > 10240]
            time.sleep(self.interval)

    def stop(self) -> float:
        self._done.set()
        self.join()
        return max((mb for _, mb in self.samples), default=0.0)


def _machine_busy_s() -> float:
    """CPU seconds all processors of the machine have been busy since boot (/proc/stat)."""
    fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(f) for f in fields[:8])
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def _children_cpu_s() -> float:
    """User + system CPU seconds of this process's terminated, waited-for descendants."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _run_measured(cmd: list[str], log: Path, env: dict | None = None, cwd: Path | None = None) -> dict:
    """Run ``cmd`` with its output in ``log``; wall time (s), CPU time of its process tree (s),
    CPU seconds used meanwhile by everything else on the machine (other users' work and this
    script's sampler: a shared machine inflates wall times, not CPU times), peak summed PSS
    (MB), the processes of the peak sample (over 10 MB), PSS samples, start and end (POSIX s).
    Stops with the log's tail if the command fails."""
    with log.open("w") as out:
        cpu_before, busy_before = _children_cpu_s(), _machine_busy_s()
        started, started_perf = time.time(), time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=cwd)
        sampler = PssSampler(proc.pid)
        sampler.start()
        proc.wait()
        wall = time.perf_counter() - started_perf
        peak = sampler.stop()
        cpu, busy = _children_cpu_s() - cpu_before, _machine_busy_s() - busy_before
    if proc.returncode != 0:
        raise SystemExit(f"{cmd[0]} failed, see {log}:\n{log.read_text()[-3000:]}")
    return {"wall_s": round(wall, 2), "cpu_s": round(cpu, 1),
            "other_cpu_s": round(max(busy - cpu, 0.0), 1),
            "peak_summed_pss_mb": round(peak, 1), "processes_at_peak": sampler.at_peak,
            "samples": sampler.samples, "started": started, "ended": started + wall}


def _benchmarks(work: Path) -> dict[str, dict]:
    """Per rule: jobs, summed wall s, summed CPU s, max peak RSS MB from benchmark TSVs (and
    the job server's record of its workers, when there is one)."""
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
    # With the job server (image3/runtime/jobserver.py) Snakemake's files time each job but measure
    # only its client: the worker's CPU time is added and its peak RSS replaces the client's.
    workers = work / "logs" / "jobserver.tsv"
    if workers.exists():
        with workers.open() as fh:
            for row in csv.DictReader(fh, delimiter="\t"):
                if row["rule"] in rules:
                    entry = rules[row["rule"]]
                    entry["cpu_s"] += float(row["cpu_s"])
                    entry["max_rss_mb"] = max(entry["max_rss_mb"], float(row["max_rss_mb"]))
    return rules


def make_data(n: int, size: int, seed: int, cores: int) -> tuple[Path, Path]:
    """A fresh run folder and the synthetic association in its ``data/`` (not timed)."""
    from image3 import synth

    folder = Path(tempfile.mkdtemp(prefix=f"image3-bench-n{n}-c{cores}-"))
    return folder, synth.make_association(folder / "data", n=n, size=size, seed=seed)


def run_workflow(folder: Path, asn: Path, cores: int, qa_plots: bool = False,
                 job_server: bool = True, config: tuple[str, ...] = ()) -> dict:
    """Our workflow on ``asn`` into ``folder/out``: wall and CPU time, peak summed PSS, per-rule
    table. QA plots are off unless asked for: the reference makes none. Without the job server
    every job is its own process, as on a cluster. ``config``: more ``key=value`` settings."""
    truth = asn.parent / "truth"
    # Every job imports image3: compile it first, as a user's second run finds it (pip did the
    # same for both venvs' site-packages), also where PYTHONDONTWRITEBYTECODE keeps jobs from
    # caching it (measured: ~0.4 s of compiling per job otherwise).
    compileall.compile_dir(ROOT / "image3", quiet=1)
    cmd = [sys.executable, "-m", "snakemake", "--snakefile", str(ROOT / "Snakefile"),
           "--directory", str(folder), "--cores", str(cores), "--config", f"asn={asn}",
           "output_dir=out", f"source_catalog={{apcorr_file: {truth / 'apcorr.fits'}, "
           f"abvegaoffset_file: {truth / 'abvegaoffset.asdf'}}}",
           f"qa={{plots: {'true' if qa_plots else 'false'}}}",
           f"job_server={'true' if job_server else 'false'}", *config]
    run = _run_measured(cmd, folder / "snakemake.log")
    rules = _benchmarks(folder / "out" / "work")
    largest_mb = round(max(r["max_rss_mb"] for r in rules.values()), 1)
    return {**_summary(run), "largest_job_rss_mb": largest_mb, "rules": rules}


def reference_strun(python: Path) -> tuple[Path, str]:
    """The ``strun`` beside the reference venv's ``python`` and its jwst version."""
    strun = python.parent / "strun"
    found = subprocess.run([str(python), "-c", "import jwst; print(jwst.__version__)"],
                           capture_output=True, text=True) if strun.exists() else None
    if found is None or found.returncode != 0:
        raise SystemExit(f"{python}: not the python of a virtual environment with jwst installed "
                         "(see the docstring of bench/run_bench.py)")
    return strun, found.stdout.strip()


def run_reference(strun: Path, folder: Path, asn: Path) -> dict:
    """jwst's calwebb_image3 (``strun``) on ``asn`` into ``folder/reference``, offline, on our
    output grid. Returns wall and CPU time, peak summed PSS and per-step wall time and peak PSS."""
    out, crds = folder / "reference", folder / "crds-empty"
    out.mkdir()
    crds.mkdir()
    env = {**os.environ, "STPIPE_DISABLE_CRDS_STEPPARS": "True", "CRDS_PATH": str(crds),
           "CRDS_SERVER_URL": "http://localhost:1"}
    truth = asn.parent / "truth"
    grid = folder / "grid.asdf"  # our final grid as a reference-style output_wcs file
    write_output_wcs(grid, read_grid(folder / "out" / "work" / "grid.pkl"))
    cmd = [str(strun), "calwebb_image3", str(asn), f"--output_dir={out}",
           f"--steps.source_catalog.override_apcorr={truth / 'apcorr.fits'}",
           f"--steps.source_catalog.override_abvegaoffset={truth / 'abvegaoffset.asdf'}",
           f"--steps.resample.output_wcs={grid}"]
    run = _run_measured(cmd, out / "jwst.log", env=env, cwd=out)
    steps = compare.step_table(compare.step_intervals((out / "jwst.log").read_text()),
                               run["samples"], run["started"], run["ended"])
    return {**_summary(run), "steps": steps}


def _summary(run: dict) -> dict:
    """The figures of a :func:`_run_measured` result that go into the JSON."""
    keys = ("wall_s", "cpu_s", "other_cpu_s", "peak_summed_pss_mb", "processes_at_peak")
    return {key: run[key] for key in keys}


def side_by_side(args) -> dict:
    """Ours, then jwst on the same association with our grid, and the product comparison."""
    strun, version = reference_strun(args.reference_python)
    folder, asn = make_data(args.n, args.size, args.seed, args.cores)
    ours = run_workflow(folder, asn, args.cores, job_server=args.job_server)
    result = {"n_exposures": args.n, "size": args.size, "cores": args.cores, "seed": args.seed,
              "job_server": args.job_server, "folder": str(folder), "ours": ours}
    print_result(result)
    theirs = {"jwst_version": version, **run_reference(strun, folder, asn)}
    result["reference"] = theirs
    result["ratios_ours_over_reference"] = {
        "wall": round(ours["wall_s"] / theirs["wall_s"], 3),
        "cpu": round(ours["cpu_s"] / theirs["cpu_s"], 3),
        "peak_summed_pss": round(ours["peak_summed_pss_mb"] / theirs["peak_summed_pss_mb"], 3)}
    result["comparison"] = compare.compare_products(asn, folder / "out", folder / "reference")
    print_reference(result)
    print_comparison(result["comparison"])
    if not args.keep:
        subprocess.run(["rm", "-rf", str(folder)], check=False)
    return result


def compare_only(folder: Path) -> dict:
    """The product comparison of a kept side-by-side folder."""
    asn = next((folder / "data").glob("*_asn.json"))
    result = {"folder": str(folder),
              "comparison": compare.compare_products(asn, folder / "out", folder / "reference")}
    print_comparison(result["comparison"])
    return result


def run_once(n: int, size: int, cores: int, seed: int, keep: bool = False,
             job_server: bool = True) -> dict:
    """Our workflow alone on a fresh synthetic association."""
    folder, asn = make_data(n, size, seed, cores)
    result = {"n_exposures": n, "size": size, "cores": cores, "seed": seed,
              "job_server": job_server, "folder": str(folder),
              "ours": run_workflow(folder, asn, cores, job_server=job_server)}
    if not keep:
        subprocess.run(["rm", "-rf", str(folder)], check=False)
    return result


def print_result(r: dict) -> None:
    ours = r["ours"]
    server = "" if r.get("job_server", True) else " without the job server"
    print(f"\nN = {r['n_exposures']} x {r['size']}², --cores {r['cores']}{server}: "
          f"wall {ours['wall_s']:.1f} s, {_cpu(ours)}, peak summed PSS "
          f"{ours['peak_summed_pss_mb']:.0f} MB, largest job {ours['largest_job_rss_mb']:.0f} MB")
    print(f"{'rule':<18}{'jobs':>5}{'wall s':>9}{'cpu s':>9}{'max RSS MB':>12}")
    for rule, e in sorted(ours["rules"].items(), key=lambda kv: -kv[1]["wall_s"]):
        print(f"{rule:<18}{e['jobs']:>5}{e['wall_s']:>9.1f}{e['cpu_s']:>9.1f}{e['max_rss_mb']:>12.0f}")
    print(_at_peak(ours))


def _cpu(run: dict) -> str:
    return f"CPU {run['cpu_s']:.0f} s (other processes meanwhile: {run['other_cpu_s']:.0f} CPU s)"


def _at_peak(run: dict) -> str:
    return "at the PSS peak: " + ", ".join(f"{p['command']} {p['pss_mb']:.0f} MB"
                                           for p in run["processes_at_peak"])


def print_reference(r: dict) -> None:
    ref, ratios = r["reference"], r["ratios_ours_over_reference"]
    print(f"\njwst {ref['jwst_version']} calwebb_image3 (one process): wall {ref['wall_s']:.1f} s, "
          f"{_cpu(ref)}, peak summed PSS {ref['peak_summed_pss_mb']:.0f} MB")
    print(f"{'step':<20}{'wall s':>9}{'peak PSS MB':>13}")
    for row in ref["steps"]:
        peak = "-" if row["peak_pss_mb"] is None else f"{row['peak_pss_mb']:.0f}"
        print(f"{row['step']:<20}{row['wall_s']:>9.1f}{peak:>13}")
    print(_at_peak(ref))
    print(f"ours / jwst: wall {ratios['wall']:.2f}, CPU {ratios['cpu']:.2f}, "
          f"peak summed PSS {ratios['peak_summed_pss']:.2f}")


def print_comparison(c: dict) -> None:
    m = c["mosaic"]
    print(f"\ni2d ours - jwst over {m['pixels_common']} common pixels: median {m['median_mjysr']:.2e} "
          f"MJy/sr ({m['median_in_err']:.3f} ERR), robust std {m['robust_std_mjysr']:.2e} MJy/sr "
          f"({m['robust_std_in_err']:.3f} ERR), |diff| > 5 ERR: {m['fraction_above_5_err']:.2e}, "
          f"ERR ours/jwst {m['err_ratio_median']:.4f}")
    print(f"{'new OUTLIER pixels':<36}{'ours':>7}{'jwst':>7}{'both':>7}")
    for member, f in c["outliers"]["per_member"].items():
        print(f"{member:<36}{f['ours']:>7}{f['theirs']:>7}{f['both']:>7}")
    for run, s in c["outliers"].get("cosmic_rays", {}).items():
        print(f"cosmic rays, {run:<6}: recall 5-10σ {s['recall_5-10']:.3f}, ≥10σ "
              f"{s['recall_>=10']:.4f}, ≥5σ {s['recall_>=5']:.3f}; precision {s['precision']:.4f}")
    for run, sky in c.get("sky_levels", {}).items():
        print(f"sky levels vs truth, {run:<6}: RMS error {sky['rms_mjysr']:.2e} MJy/sr, "
              f"largest {sky['max_abs_mjysr']:.2e} MJy/sr")
    cat = c["catalogue"]
    ratio = cat["aper_total_flux_ratio"]
    print(f"catalogues: {cat['sources_ours']} ours, {cat['sources_theirs']} jwst, {cat['matched']} "
          f"matched within 0.1\" (median {cat['median_separation_mas']:.1f} mas); aper_total_flux "
          f"ours/jwst median {ratio['median']:.4f}, robust std {ratio['robust_std']:.4f}")
    for run, t in c.get("truth_photometry", {}).items():
        print(f"isolated stars vs truth, {run:<6}: {t['matched']} matched, position error "
              f"{t['median_position_error_mas']:.1f} mas, flux/true median "
              f"{t['flux_ratio']['median']:.4f}, robust std {t['flux_ratio']['robust_std']:.4f}")
    d = c.get("truth_detections")
    if d:
        print(f"true sources found: {d['found_by_both']} by both, {d['found_by_ours_only']} by ours "
              f"only, {d['found_by_theirs_only']} by jwst only; entries with no true source: "
              f"{d['ours']['spurious']} ours, {d['theirs']['spurious']} jwst")
    for run, k in c.get("star_completeness", {}).items():
        print(f"stars with PSF-fit S/N >= 10 found, {run:6s}: {k['completeness']:.4f} of {k['stars']}, "
              f"bright half {k['bright_half']:.4f}; S/N >= 25 {k['strong_completeness']:.4f} of "
              f"{k['strong_stars']}, within 10 px of an edge "
              f"{k['edge_completeness']:.3f} of {k['edge_stars']}")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=8, help="exposures (default 8)")
    parser.add_argument("--size", type=int, default=2048)
    parser.add_argument("--cores", type=int, default=2)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--scaling", action="store_true",
                        help="N = 2, 4, 8, 16 with cores = 1, 2: time per exposure table")
    parser.add_argument("--reference-python", type=Path, metavar="PATH",
                        help="python of a venv with jwst: run calwebb_image3 side by side")
    parser.add_argument("--compare-only", type=Path, metavar="FOLDER",
                        help="compare the products of a side-by-side folder kept with --keep")
    parser.add_argument("--no-job-server", dest="job_server", action="store_false",
                        help="every job its own process, as on a cluster")
    parser.add_argument("--keep", action="store_true", help="keep the run folders")
    args = parser.parse_args(argv)
    RESULTS.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%dT%H%M%S")
    if args.compare_only:
        results = [compare_only(args.compare_only)]
        out = RESULTS / f"compare-{args.compare_only.name}-{stamp}.json"
    elif args.scaling:
        results = [run_once(n, args.size, c, args.seed, args.keep, args.job_server)
                   for n in (2, 4, 8, 16) for c in (1, 2)]
        print(f"\n{'N':>4}{'cores':>7}{'wall s':>9}{'s/exposure':>12}{'peak PSS MB':>13}")
        for r in results:
            ours = r["ours"]
            print(f"{r['n_exposures']:>4}{r['cores']:>7}{ours['wall_s']:>9.1f}"
                  f"{ours['wall_s'] / r['n_exposures']:>12.1f}{ours['peak_summed_pss_mb']:>13.0f}")
        out = RESULTS / f"scaling-{args.size}-{stamp}.json"
    elif args.reference_python:
        results = [side_by_side(args)]
        out = RESULTS / f"n{args.n}-{args.size}-c{args.cores}-vs-jwst-{stamp}.json"
    else:
        print("side-by-side with jwst skipped: no --reference-python given")
        results = [run_once(args.n, args.size, args.cores, args.seed, args.keep, args.job_server)]
        print_result(results[0])
        server = "" if args.job_server else "-no-job-server"
        out = RESULTS / f"n{args.n}-{args.size}-c{args.cores}{server}-{stamp}.json"
    out.write_text(json.dumps(results, indent=1) + "\n")
    print(f"\nwritten {out}")


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main()
