"""Reruns: a finished run rerun (nothing to do; a changed parameter reruns only what it affects)
and interrupted runs (issue 10) resumed.

A run killed part-way (SIGTERM to Snakemake, or SIGKILL to its whole process group) and restarted
with the README's restart command (``--unlock`` if the folder is locked, then
``--rerun-incomplete``) must finish without redoing the jobs that had completed and give products
equal to an uninterrupted run (``small_run`` of conftest.py). "Equal" is exact: every array of
every extension of the _i2d, _segm and _crf files, and every value of the catalogue. The
interrupted run finished by the ``image3`` command (which always passes ``--rerun-incomplete``)
with ``--cores 1`` also checks that command against Snakemake, and that another job order gives
the same products.
"""

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from image3 import synth
from workflow import SNAKEMAKE, assert_same_products, jobs_run, snakemake

pytestmark = pytest.mark.workflow

PRODUCT = synth.PRODUCT_NAME


def _start(work: Path, asn: Path) -> subprocess.Popen:
    """Snakemake in its own process group (so the group can be killed as a terminal would)."""
    cmd = [*SNAKEMAKE, "--directory", str(work), "--cores", "2",  # config as snakemake()'s
           "--config", f"asn={asn}", f"output_dir={work / 'out'}", "qa={plots: false}"]
    return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)


def _wait_for(path: Path, proc: subprocess.Popen, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert proc.poll() is None, f"run ended before {path.name} appeared:\n{proc.stderr.read()}"
        assert time.monotonic() < deadline, f"{path} did not appear in {timeout} s"
        time.sleep(0.05)


def _resume(work: Path, asn: Path, *extra: str) -> subprocess.CompletedProcess:
    """The README's restart command."""
    return snakemake(work, "--cores", "2", "--rerun-incomplete", *extra,
                     config={"asn": asn, "output_dir": work / "out"})


def test_sigterm_then_rerun_incomplete(small_association, small_run, tmp_path):
    proc = _start(tmp_path, small_association)
    # Stop once the alignment join has finished, while the sky jobs run.
    _wait_for(tmp_path / "out" / "work" / "tweakreg_report.ecsv", proc)
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=120)
    assert not (tmp_path / "out" / f"{PRODUCT}_i2d.fits").exists()
    resumed = _resume(tmp_path, small_association)
    rerun = jobs_run(resumed)
    assert "find_sources" not in rerun and "tweakreg" not in rerun, rerun
    assert rerun.get("resample") == 1
    assert_same_products(tmp_path / "out", small_run / "out", PRODUCT)


def test_sigkill_to_the_process_group_then_unlock_and_rerun(small_association, small_run,
                                                            tmp_path):
    proc = _start(tmp_path, small_association)
    # Kill everything, jobs included, while the per-group drizzles are being written.
    _wait_for(tmp_path / "out" / "work" / "median" / "all.fits", proc)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=60)
    config = {"asn": small_association, "output_dir": tmp_path / "out"}
    locked = snakemake(tmp_path, "--cores", "2", "--rerun-incomplete", config=config,
                       check=False)
    assert locked.returncode != 0 and "--unlock" in locked.stderr
    snakemake(tmp_path, "--cores", "1", "--unlock", config=config)
    # finished by the image3 command, one job at a time
    printed = subprocess.run([sys.executable, "-m", "image3.cli", "run", str(small_association),
                              "--cores", "1", "--output-dir", "out", "--set", "qa.plots=false"],
                             cwd=tmp_path, capture_output=True, text=True)
    assert printed.returncode == 0, printed.stderr[-3000:]
    rerun = jobs_run(printed)
    for done in ("find_sources", "tweakreg", "sky_statistics", "skymatch", "single"):
        assert done not in rerun, rerun
    assert rerun.get("resample") == 1
    assert_same_products(tmp_path / "out", small_run / "out", PRODUCT)


def test_rerun_does_nothing_and_pixfrac_reruns_only_the_drizzles(small_association, small_run,
                                                                 tmp_path):
    """A new pixfrac reruns the jobs that drizzle onto the final grid (the flag jobs, which
    write each member's contribution, and the resample join) and what reads their products
    (the catalogue; the QA plots, not asked for here); nothing upstream (finding, alignment,
    sky, singles, median). The run is a copy of conftest's ``small_run`` (its folder with
    Snakemake's records, times kept)."""
    work = tmp_path / "run"
    shutil.copytree(small_run, work, ignore=shutil.ignore_patterns("locks", "report.*"))
    config = {"asn": small_association, "output_dir": "out"}  # small_run's, without QA plots
    again = snakemake(work, "--cores", "2", config=config)
    assert jobs_run(again) == {}
    assert "Nothing to be done" in again.stdout + again.stderr
    changed = snakemake(work, "--cores", "2", config={**config, "resample": "{pixfrac: 0.8}"})
    ran = jobs_run(changed)
    assert ran == {"flag": 3, "resample": 1, "source_catalog": 1, "all": 1}
