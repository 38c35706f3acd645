"""Interrupted runs and determinism (issue 10).

A run killed part-way (SIGTERM to Snakemake, or SIGKILL to its whole process group) and restarted
with the README's restart command (``--unlock`` if the folder is locked, then
``--rerun-incomplete``) must finish without redoing the jobs that had completed and give products
equal to an uninterrupted run; two uninterrupted runs (with different job orders: ``--cores 2``
and ``--cores 1``) must give equal products. "Equal" is exact: every array of every extension of
the _i2d, _segm and _crf files, and every value of the catalogue.
"""

import os
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
from astropy.coordinates import SkyCoord
from astropy.io import fits
from astropy.table import Table

from image3 import synth
from workflow import SNAKEMAKE, jobs_run, snakemake

PRODUCT = synth.PRODUCT_NAME


@pytest.fixture(scope="module")
def asn(tmp_path_factory):
    return synth.make_association(tmp_path_factory.mktemp("data"), n=3, size=256, seed=21)


@pytest.fixture(scope="module")
def uninterrupted(asn, tmp_path_factory):
    """The products of one uninterrupted run with --cores 2."""
    work = tmp_path_factory.mktemp("uninterrupted")
    snakemake(work, "--cores", "2", config={"asn": asn, "output_dir": "out"})
    return work / "out"


def _products(out: Path) -> list[Path]:
    return sorted(out.glob("*_crf.fits")) + [out / f"{PRODUCT}_i2d.fits",
                                             out / f"{PRODUCT}_segm.fits"]


def assert_same_products(out: Path, reference: Path) -> None:
    """Every image array and the catalogue of ``out`` equal those of ``reference`` exactly."""
    for ref in _products(reference):
        with fits.open(ref) as a, fits.open(out / ref.name) as b:
            assert [h.name for h in a] == [h.name for h in b], ref.name
            for ha, hb in zip(a, b):
                if ha.is_image and ha.data is not None:
                    np.testing.assert_array_equal(ha.data, hb.data, err_msg=f"{ref.name}[{ha.name}]")
    cat_a = Table.read(reference / f"{PRODUCT}_cat.ecsv")
    cat_b = Table.read(out / f"{PRODUCT}_cat.ecsv")
    assert len(cat_a) > 10 and cat_a.colnames == cat_b.colnames
    for name in cat_a.colnames:
        np.testing.assert_array_equal(_values(cat_a[name]), _values(cat_b[name]), err_msg=name)


def _values(column) -> np.ndarray:
    """A catalogue column as plain numbers (sky coordinates as RA, Dec in degrees)."""
    if isinstance(column, SkyCoord):
        return np.stack([column.ra.deg, column.dec.deg])
    return np.asarray(column)


def _start(work: Path, asn: Path) -> subprocess.Popen:
    """Snakemake in its own process group (so the group can be killed as a terminal would)."""
    cmd = [*SNAKEMAKE, "--directory", str(work), "--cores", "2",
           "--config", f"asn={asn}", "output_dir=out"]
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
                     config={"asn": asn, "output_dir": "out"})


def test_two_runs_give_equal_products(asn, uninterrupted, tmp_path):
    snakemake(tmp_path, "--cores", "1", config={"asn": asn, "output_dir": "out"})
    assert_same_products(tmp_path / "out", uninterrupted)


def test_sigterm_then_rerun_incomplete(asn, uninterrupted, tmp_path):
    proc = _start(tmp_path, asn)
    # Stop once the alignment join has finished, while the sky jobs run.
    _wait_for(tmp_path / "out" / "work" / "tweakreg_report.ecsv", proc)
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=120)
    assert not (tmp_path / "out" / f"{PRODUCT}_i2d.fits").exists()
    resumed = _resume(tmp_path, asn)
    rerun = jobs_run(resumed)
    assert "find_sources" not in rerun and "tweakreg" not in rerun, rerun
    assert rerun.get("resample") == 1
    assert_same_products(tmp_path / "out", uninterrupted)


def test_sigkill_to_the_process_group_then_unlock_and_rerun(asn, uninterrupted, tmp_path):
    proc = _start(tmp_path, asn)
    # Kill everything, jobs included, while the per-group drizzles are being written.
    _wait_for(tmp_path / "out" / "work" / "median.fits", proc)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=60)
    locked = snakemake(tmp_path, "--cores", "2", "--rerun-incomplete",
                       config={"asn": asn, "output_dir": "out"}, check=False)
    assert locked.returncode != 0 and "--unlock" in locked.stderr
    snakemake(tmp_path, "--cores", "1", "--unlock", config={"asn": asn, "output_dir": "out"})
    rerun = jobs_run(_resume(tmp_path, asn))
    for done in ("find_sources", "tweakreg", "sky_statistics", "skymatch", "single"):
        assert done not in rerun, rerun
    assert rerun.get("resample") == 1
    assert_same_products(tmp_path / "out", uninterrupted)
