"""Outlier detection through the real Snakefile: _crf products, log lines, cosmic rays left in
the _i2d (against a cosmic-ray-free twin of the same field), and parameter-change reruns."""

import subprocess
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits
from scipy import ndimage
from stdatamodels.jwst import datamodels

from image3 import synth
from image3.outlier import DO_NOT_USE, OUTLIER
from workflow import SNAKEMAKE, jobs_run, snakemake

pytestmark = pytest.mark.workflow

# tweakreg/skymatch are not needed: the twin fields have true WCS and one sky level
OTHER_STEPS = {"tweakreg": "{skip: true}", "skymatch": "{skip: true}",
               "source_catalog": "{skip: true}"}


def _start(root: Path, cosmic_rays: bool, outlier: str | None) -> subprocess.Popen:
    asn = synth.make_association(root / "data", n=4, size=512, seed=11, wcs_errors=False,
                                 sky_offsets=False, cosmic_rays=cosmic_rays)
    config = {"asn": asn, "output_dir": root / "out", **OTHER_STEPS}
    if outlier:
        config["outlier_detection"] = outlier
    cmd = [*SNAKEMAKE, "--directory", str(root), "--cores", "1", "--config",
           *[f"{k}={v}" for k, v in config.items()]]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


@pytest.fixture(scope="module")
def twins(tmp_path_factory):
    """The field with cosmic rays (full outlier detection) and without (none needed), run side
    by side. Same seed: identical sky and noise, only the cosmic rays differ."""
    root = tmp_path_factory.mktemp("twins")
    runs = {"cr": _start(root / "cr", True, None),
            "twin": _start(root / "twin", False, "{skip: true}")}
    for name, proc in runs.items():
        out = proc.communicate(timeout=600)[0]
        assert proc.returncode == 0, f"{name} run failed:\n{out[-4000:]}"
    return root


def test_crf_products_keep_every_extension_and_flag_the_cosmic_rays(twins):
    data_dir, out = twins / "cr" / "data", twins / "cr" / "out"
    crfs = sorted(out.glob("*_o001_crf.fits"))
    assert len(crfs) == 4
    for crf in crfs:
        member = crf.name[:-len("_o001_crf.fits")]
        cal = data_dir / f"{member}_cal.fits"
        with fits.open(cal) as a, fits.open(crf) as b:
            assert [h.name for h in a] == [h.name for h in b]
        injected = fits.getdata(data_dir / "truth" / f"{member}_cr.fits")
        with datamodels.ImageModel(str(crf)) as model, datamodels.ImageModel(str(cal)) as before:
            assert model.meta.cal_step.outlier_detection == "COMPLETE"
            new = ((model.dq & OUTLIER) != 0) & ((before.dq & DO_NOT_USE) == 0)
            assert np.all(model.dq[new] & DO_NOT_USE)
            for name in ("data", "err", "var_poisson", "var_rnoise", "var_flat"):
                assert np.isnan(getattr(model, name)[new]).all()
            # most flags are cosmic rays, and the bright ones are gone
            assert (injected[new] > 0).mean() > 0.98
            with np.errstate(divide="ignore", invalid="ignore"):
                bright = injected / before.err >= 10
            assert new[bright].mean() > 0.98
            assert model.meta.wcs is not None and model.meta.wcsinfo.s_region
        log = (out / "work" / "logs" / "flag" / f"{member}.log").read_text()
        assert f"{member}: " in log and "outlier pixels flagged (" in log


def test_few_cosmic_rays_remain_in_the_mosaic(twins):
    """Peaks above 5σ (i2d ERR) in i2d(cosmic rays) − i2d(twin): 2 measured here; without
    outlier detection 287, with the reference's algorithm 31."""
    def i2d(name):
        return next((twins / name / "out").glob("*_i2d.fits"))

    with fits.open(i2d("cr")) as a, fits.open(i2d("twin")) as b:
        with np.errstate(invalid="ignore", divide="ignore"):
            z = (a["SCI"].data - b["SCI"].data) / b["ERR"].data
    _, peaks = ndimage.label(np.nan_to_num(z) > 5, structure=np.ones((3, 3)))
    assert peaks <= 6


def test_threshold_change_reruns_only_the_flag_jobs(twins):
    """snr is a parameter of rule flag alone: singles and median are reused."""
    root = twins / "cr"
    asn = next((root / "data").glob("*_asn.json"))
    proc = snakemake(root, "-n", config={"asn": asn, "output_dir": root / "out", **OTHER_STEPS,
                                          "outlier_detection": "{snr: '6.0 4.0'}"})
    jobs = jobs_run(proc)
    assert jobs.get("flag") == 4 and "single" not in jobs and "median" not in jobs
