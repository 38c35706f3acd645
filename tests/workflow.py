"""Helpers to run the real Snakefile as a user would (a subprocess in a temporary directory)."""

import re
import subprocess
import sys
from pathlib import Path

import numpy as np
from astropy.coordinates import SkyCoord
from astropy.io import fits
from astropy.table import Table

ROOT = Path(__file__).resolve().parents[1]
SNAKEMAKE = [sys.executable, "-m", "snakemake", "--snakefile", str(ROOT / "Snakefile")]
#: Set by conftest for each test: only tests marked ``workflow`` may run the Snakefile.
SNAKEFILE_ALLOWED = True


def snakemake(workdir: Path, *args: str, config: dict | None = None, timeout: int = 900,
              check: bool = True) -> subprocess.CompletedProcess:
    """Run snakemake in ``workdir`` with ``--config key=value`` pairs; return the process.

    A run given a ``config`` makes no QA plots unless it sets ``qa`` itself: they take a few
    seconds each and only the QA and report tests (``qa={plots: true}``) look at them.
    """
    if not SNAKEFILE_ALLOWED:
        raise AssertionError("this test runs the Snakefile: mark it @pytest.mark.workflow")
    cmd = [*SNAKEMAKE, "--directory", str(workdir), *args]
    if config:
        config = {"qa": "{plots: false}", **config}
        cmd += ["--config", *[f"{k}={v}" for k, v in config.items()]]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"snakemake failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc


def jobs_run(proc: subprocess.CompletedProcess) -> dict[str, int]:
    """Rule → job count, from the block Snakemake logs for each job it runs (``rule X:``,
    ``localrule X:``, ``checkpoint X:``; inside group jobs too), so the jobs a checkpoint adds
    count as well; empty when nothing ran."""
    counts: dict[str, int] = {}
    for name in re.findall(r"^\s*(?:local)?(?:rule|checkpoint) (\w+):\s*$",
                           proc.stdout + proc.stderr, flags=re.MULTILINE):
        counts[name] = counts.get(name, 0) + 1
    return counts


def _products(out: Path, product: str) -> list[Path]:
    return sorted(out.glob("*_crf.fits")) + [out / f"{product}_i2d.fits",
                                             out / f"{product}_segm.fits"]


def assert_same_products(out: Path, reference: Path, product: str) -> None:
    """Every image array of the _crf, _i2d and _segm files and every value of the catalogue
    of ``out`` equal those of ``reference`` exactly."""
    for ref in _products(reference, product):
        with fits.open(ref) as a, fits.open(out / ref.name) as b:
            assert [h.name for h in a] == [h.name for h in b], ref.name
            for ha, hb in zip(a, b):
                if ha.is_image and ha.data is not None:
                    np.testing.assert_array_equal(ha.data, hb.data, err_msg=f"{ref.name}[{ha.name}]")
    cat_a = Table.read(reference / f"{product}_cat.ecsv")
    cat_b = Table.read(out / f"{product}_cat.ecsv")
    assert len(cat_a) > 10 and cat_a.colnames == cat_b.colnames
    for name in cat_a.colnames:
        np.testing.assert_array_equal(_values(cat_a[name]), _values(cat_b[name]), err_msg=name)


def _values(column) -> np.ndarray:
    """A catalogue column as plain numbers (sky coordinates as RA, Dec in degrees)."""
    if isinstance(column, SkyCoord):
        return np.stack([column.ra.deg, column.dec.deg])
    return np.asarray(column)
