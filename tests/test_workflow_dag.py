"""The Snakefile as users run it: DAG for an association, lint, and one-line fatal errors."""

import json

import pytest
from astropy.io import fits

from image3.asn import write_association
from workflow import jobs_run, snakemake


@pytest.fixture
def header_only_asn(tmp_path):
    """An association of two exposures (different group ids) whose files hold only headers:
    enough for Snakemake to build the DAG, which reads headers, never pixels."""
    names = []
    for k in (1, 2):
        header = fits.Header(dict(PROGRAM="01234", OBSERVTN="001", VISIT="001", VISITGRP="02",
                                  SEQ_ID="1", ACT_ID="01", EXPOSURE=f"0000{k}"))
        name = f"jw01234001001_02101_0000{k}_nrca1_cal.fits"
        fits.PrimaryHDU(header=header).writeto(tmp_path / name)
        names.append(name)
    return write_association(tmp_path / "test_asn.json", "jw01234-o001_t001_nircam_clear-f200w",
                              "o001", names)


def test_dry_run_builds_the_dag(tmp_path, header_only_asn):
    proc = snakemake(tmp_path, "-n", config={"asn": header_only_asn, "output_dir": "out"})
    jobs = jobs_run(proc)
    assert jobs["grid"] == 1 and jobs["resample"] == 1
    assert "out/jw01234-o001_t001_nircam_clear-f200w_i2d.fits" in proc.stdout


def test_lint_is_clean(tmp_path, header_only_asn):
    proc = snakemake(tmp_path, "--lint", config={"asn": header_only_asn}, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Lints for" not in proc.stdout + proc.stderr


def test_demo_dry_run(tmp_path):
    proc = snakemake(tmp_path, "-n")
    jobs = jobs_run(proc)
    assert jobs["demo_data"] == 1 and jobs["resample"] == 1


@pytest.mark.parametrize("content,needle", [
    ("{broken", "not valid JSON"),
    (json.dumps({"products": [{"name": "p", "members": []}]}), "no science member"),
])
def test_fatal_association_errors_are_one_line_and_write_nothing(tmp_path, content, needle):
    asn = tmp_path / "bad_asn.json"
    asn.write_text(content)
    proc = snakemake(tmp_path, "-j1", config={"asn": asn, "output_dir": "out"}, check=False)
    assert proc.returncode != 0
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("image3: ERROR:") and str(asn) in last and needle in last
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "out").exists()


def test_bad_config_value_stops_before_any_job(tmp_path, header_only_asn):
    proc = snakemake(tmp_path, "-j1", config={"asn": header_only_asn, "output_dir": "out",
                                              "resample": "{pixfrac: 1.5}"}, check=False)
    assert proc.returncode != 0
    assert "resample.pixfrac = 1.5 is invalid" in proc.stderr.strip().splitlines()[-1]
    assert not (tmp_path / "out").exists()
