"""Shared fixtures and the test markers' rules.

Markers (pyproject.toml): ``workflow`` tests run the real Snakefile (``pytest -m "not workflow"``
is the unit loop; :func:`workflow.snakemake` refuses to run for a test without the marker);
``real`` tests compare with the real JWST files in ``../shared/data/real`` and are deselected,
not skipped, when that folder is absent, except under CI (``CI=true``), where they must run.

``small_run`` is one complete run of the workflow (``snakemake --cores all``) on a small
synthetic association, made once per session and shared by the tests that compare other runs
with it or rerun a copy of it (test_resume) or read what it left (test_report). Under
pytest-xdist (``make test``: ``-n 2 --dist loadfile``) those two files go to the same worker
(:func:`pytest_xdist_make_scheduler`), so the run is made once, not once per worker.
"""

import os
from pathlib import Path

import pytest

import workflow
from image3 import synth
from workflow import snakemake

ROOT = Path(__file__).resolve().parents[1]
REAL_DATA = ROOT.parent / "shared" / "data" / "real"
IN_CI = os.environ.get("CI", "").lower() == "true"
REAL_FIXTURES = {"real_data_dir", "nircam_wcs_file", "miri_i2d_files"}


#: Test files that use ``small_run``: one xdist worker runs them all.
SMALL_RUN_FILES = {"test_resume.py", "test_report.py"}


def pytest_xdist_make_scheduler(config, log):
    """With ``--dist loadfile``, the files of :data:`SMALL_RUN_FILES` as one unit of work."""
    if config.getoption("dist") != "loadfile":
        return None
    from xdist.scheduler import LoadFileScheduling

    class SmallRunFilesTogether(LoadFileScheduling):
        def _split_scope(self, nodeid: str) -> str:
            scope = super()._split_scope(nodeid)
            return "small_run" if Path(scope).name in SMALL_RUN_FILES else scope

    return SmallRunFilesTogether(config, log)


def pytest_collection_modifyitems(config, items):
    """Deselect the ``real`` tests when ``../shared/data/real`` is absent (not under CI); a test
    that takes a real-data fixture without the marker is an error."""
    unmarked = [item.nodeid for item in items if REAL_FIXTURES & set(item.fixturenames)
                and item.get_closest_marker("real") is None]
    if unmarked:
        raise pytest.UsageError(f"tests using ../shared need @pytest.mark.real: {unmarked}")
    if REAL_DATA.exists() or IN_CI:
        return
    real = [item for item in items if item.get_closest_marker("real")]
    if real:
        config.hook.pytest_deselected(items=real)
        items[:] = [item for item in items if item.get_closest_marker("real") is None]


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item):
    """Tell :mod:`workflow` whether this test may run the Snakefile (before its fixtures)."""
    workflow.SNAKEFILE_ALLOWED = item.get_closest_marker("workflow") is not None


def require(path: Path, why: str) -> Path:
    """Return ``path`` if it exists; otherwise skip (or fail under CI)."""
    if not path.exists():
        message = f"{path} is absent: {why}"
        if IN_CI:
            pytest.fail(message + " (CI=true: this test must run)")
        pytest.skip(message)
    return path


@pytest.fixture(scope="session")
def nircam():
    """A full-frame NRCB1 gwcs of the synthetic sky (the SIAF distortion, jwst's frames and sky
    rotation) and the ``meta.wcsinfo`` items the grid needs (angles in degrees)."""
    pointing = synth.Pointing(synth.FIELD_RA_DEG, synth.FIELD_DEC_DEG, synth.FIELD_ROLL_DEG)
    wcs = synth.exposure_wcs(synth.detector_geometry("NRCB1", synth.FULL_FRAME), pointing)
    info = {"ra_ref": pointing.ra_ref, "dec_ref": pointing.dec_ref, "roll_ref": pointing.roll_ref,
            "v3yangle": synth.V3_IDEAL_Y_ANGLE_DEG, "vparity": synth.V_IDEAL_PARITY}
    return wcs, info


@pytest.fixture(scope="session")
def real_data_dir() -> Path:
    """``../shared/data/real``: the only real JWST material available offline."""
    return require(REAL_DATA, "the real JWST test files live in ../shared")


@pytest.fixture(scope="session")
def nircam_wcs_file(real_data_dir) -> Path:
    return require(real_data_dir / "nircam-wcs" / "nrcb1-wcs.asdf", "real NIRCam gwcs")


@pytest.fixture(scope="session")
def miri_i2d_files(real_data_dir) -> list[Path]:
    files = sorted((real_data_dir / "miri-i2d").glob("*_i2d.fits"))
    if not files:
        require(real_data_dir / "miri-i2d" / "missing", "real MIRI i2d products")
    return files


@pytest.fixture(scope="session")
def small_association(tmp_path_factory) -> Path:
    """3 dithered 256² synthetic NIRCam exposures (seed 21) with WCS errors, sky offsets and
    cosmic rays: every stage runs."""
    return synth.make_association(tmp_path_factory.mktemp("small_data"), n=3, size=256, seed=21)


@pytest.fixture(scope="session")
def small_run(small_association, tmp_path_factory) -> Path:
    """The folder of one uninterrupted ``snakemake --cores all`` run on ``small_association``
    (products in ``out/``)."""
    work = tmp_path_factory.mktemp("small_run")
    snakemake(work, "--cores", "all", config={"asn": small_association, "output_dir": "out",
                                              "qa": "{plots: true}"})
    return work
