"""Work never reused from the wrong input (issue 29): each member's input identity, the members
the previous run used, and one lock per output folder.

Unit tests of image3.input_identity and image3.runtime.output_folder, then the cases through
the real Snakefile on two 256² exposures (source catalogue skipped: it reads only the _i2d)."""

import contextlib
import os
import shutil
import subprocess
import sys
import time

import numpy as np
import pytest
from astropy.io import fits
from stdatamodels.jwst import datamodels

from image3 import synth
from image3.datamodel import InputIdentity, SkyRecord
from image3.input_identity import update_stamp
from image3.runtime import output_folder
from workflow import jobs_run, snakemake

NO_CATALOG = {"source_catalog": "{skip: true}"}


def _copy_keeping_dates(src, dst):
    """A copy that keeps the old file's modification time, as ``cp -p`` does."""
    old = os.stat(dst)
    shutil.copyfile(src, dst)
    os.utime(dst, ns=(old.st_atime_ns, old.st_mtime_ns))


def test_identity_sees_a_new_file_under_the_old_date(tmp_path):
    a, b = tmp_path / "a.fits", tmp_path / "b.fits"
    a.write_bytes(b"x" * 100)
    b.write_bytes(b"y" * 100)
    stamp = tmp_path / "w" / "input.json"
    assert update_stamp(stamp, a)
    assert not update_stamp(stamp, a)  # unchanged: the stamp keeps its date
    before = InputIdentity.of(a)
    time.sleep(0.01)
    _copy_keeping_dates(b, a)
    after = InputIdentity.of(a)
    assert (after.size, after.mtime_ns) == (before.size, before.mtime_ns)
    assert after.ctime_ns != before.ctime_ns
    assert update_stamp(stamp, a)
    stamp.write_text("{not json")
    assert update_stamp(stamp, a)  # an unreadable stamp is rewritten


def test_missing_members_are_split_into_gone_and_taken_out():
    previous = {"m1": {"cal": "/d/m1_cal.fits", "crf": "o/m1_crf.fits"},
                "m2": {"cal": "/d/m2_cal.fits", "crf": "o/m2_crf.fits"},
                "m3": {"cal": "/d/m3_cal.fits", "crf": "o/m3_crf.fits"}}
    gone, dropped = output_folder.missing_members(previous, {"m1": {}},
                                                  {"/d/m1_cal.fits", "/d/m2_cal.fits"})
    assert list(gone) == ["m2"] and list(dropped) == ["m3"]


@contextlib.contextmanager
def _locked_by_another_process(folder):
    """The output folder's lock held by another process while the block runs; yields its pid."""
    holder = subprocess.Popen(
        [sys.executable, "-c", "import time; from image3.runtime import output_folder; "
         f"output_folder.lock({str(folder)!r}); print('held', flush=True); time.sleep(120)"],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        yield holder.pid
    finally:
        holder.kill()
        holder.wait()


def test_the_output_lock_names_the_run_holding_it(tmp_path):
    with _locked_by_another_process(tmp_path) as pid:
        with pytest.raises(output_folder.OutputLocked, match=f"pid {pid}"):
            output_folder.lock(tmp_path)
    output_folder.lock(tmp_path)  # released when its holder died
    output_folder.lock(tmp_path)  # and taking it again in this process is a no-op


@pytest.fixture(scope="module")
def two_fields(tmp_path_factory):
    """Two associations of two 256² exposures with the same file names but different data."""
    fields = []
    for seed in (8, 9):
        root = tmp_path_factory.mktemp(f"field{seed}")
        fields.append(synth.make_association(root, n=2, size=256, seed=seed))
    return fields


def _made_from(out, cal):
    """Whether the member's _crf holds the SCI of ``cal`` (but its outliers, NaN there)."""
    crf = fits.getdata(next(out.glob(f"{cal.name.replace('_cal.fits', '')}_*crf.fits")), "SCI")
    kept = np.isfinite(crf)
    return kept.mean() > 0.99 and np.array_equal(crf[kept], fits.getdata(cal, "SCI")[kept])


def _check_step_results(out, cal, work):
    """tweakreg's and skymatch's save_results files: the member's SCI, the _crf's corrected
    gwcs (same sky position of every tenth pixel), and the sky level skymatch recorded."""
    root = cal.name.replace("_cal.fits", "")
    with datamodels.open(next(out.glob(f"{root}_*crf.fits"))) as crf, \
            datamodels.open(next(out.glob(f"{root}_*tweakreg.fits"))) as tweaked, \
            datamodels.open(next(out.glob(f"{root}_*skymatch.fits"))) as matched:
        y, x = np.mgrid[0:256:10, 0:256:10]
        for saved in (tweaked, matched):
            assert np.array_equal(saved.data, fits.getdata(cal, "SCI"), equal_nan=True)
            assert np.allclose(saved.meta.wcs(x, y), crf.meta.wcs(x, y), rtol=0, atol=1e-10)
            assert saved.meta.cal_step.tweakreg == "COMPLETE"
        level = SkyRecord.read(work / root / "sky.json").level
        assert matched.meta.background.level == pytest.approx(level)
        assert tweaked.meta.background.level != pytest.approx(level)


@pytest.mark.workflow
def test_work_is_redone_for_another_input_of_the_same_name(tmp_path, two_fields):
    """Two associations with coinciding member names into one output folder, run from two
    folders; then a member's file replaced keeping its date (cp -p); then a member gone."""
    first, second = two_fields
    out = tmp_path / "out"
    snakemake(tmp_path / "run1", "--cores", "2", config={"asn": first, "output_dir": out,
                                                          **NO_CATALOG})
    saved = {"tweakreg": "{save_results: true}", "skymatch": "{save_results: true}"}
    proc = snakemake(tmp_path / "run2", "--cores", "2",
                     config={"asn": second, "output_dir": out, **saved, **NO_CATALOG})
    assert jobs_run(proc)["find_sources"] == 2  # nothing of the first association reused
    cals = [second.parent / synth.cal_filename(m) for m in synth.member_names(2)]
    for cal in cals:
        assert _made_from(out, cal) and not _made_from(out, first.parent / cal.name)
        _check_step_results(out, cal, tmp_path / "out" / "work")

    # the first member's file replaced by the other field's, its date kept
    _copy_keeping_dates(first.parent / cals[0].name, cals[0])
    proc = snakemake(tmp_path / "run2", "--cores", "2",
                     config={"asn": second, "output_dir": out, **saved, **NO_CATALOG})
    assert jobs_run(proc)["find_sources"] == 1
    assert _made_from(out, cals[0])

    # a member of the finished run gone: one line, nothing touched; allowed: its _crf goes
    cals[1].unlink()
    before = sorted(p.name for p in out.iterdir())
    proc = snakemake(tmp_path / "run2", "--cores", "2", check=False,
                     config={"asn": second, "output_dir": out, **saved, **NO_CATALOG})
    assert proc.returncode == 1
    errors = [line for line in proc.stderr.splitlines() if "ERROR" in line]
    assert len(errors) == 1 and str(cals[1]) in errors[0] and "allow_missing_members" in errors[0]
    assert sorted(p.name for p in out.iterdir()) == before
    snakemake(tmp_path / "run2", "--cores", "2", config={
        "asn": second, "output_dir": out, "allow_missing_members": "true", **saved,
        **NO_CATALOG})
    assert not list(out.glob(f"{cals[1].name.replace('_cal.fits', '')}_*crf.fits"))
    assert list(out.glob(f"{cals[0].name.replace('_cal.fits', '')}_*crf.fits"))


@pytest.mark.workflow
def test_a_run_into_a_locked_output_folder_stops_in_one_line(tmp_path, two_fields):
    out = tmp_path / "out"
    with _locked_by_another_process(out) as pid:
        config = {"asn": two_fields[0], "output_dir": out, **NO_CATALOG}
        dry = snakemake(tmp_path / "elsewhere", "-n", config=config)  # a dry run goes on
        assert "find_sources" in dry.stdout
        proc = snakemake(tmp_path / "elsewhere", "--cores", "1", check=False, config=config)
    assert proc.returncode != 0
    assert f"pid {pid}" in proc.stderr and "another image3 run writes here" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (out / "work" / "inspection.json").exists()  # no job ran
