"""The Snakefile as users run it: DAG for an association, lint, and one-line fatal errors."""

import json

import pytest

from image3 import synth
from workflow import jobs_run, snakemake

pytestmark = pytest.mark.workflow


@pytest.fixture
def small_asn(tmp_path):
    """Two small synthetic exposures (different group ids): enough for Snakemake to build the
    DAG, which reads headers and screens members, never runs a job here."""
    return synth.make_association(tmp_path / "data", n=2, size=256, seed=4)


def test_dry_run_builds_the_dag(tmp_path, small_asn):
    proc = snakemake(tmp_path, "-n", config={"asn": small_asn, "output_dir": "out"})
    jobs = {rule: n for rule, n in jobs_run(proc).items() if not rule.startswith("qa_")}
    # per member: find_sources, sky_statistics, single (one per exposure group), flag (+ its
    # drizzle onto the final grid); joins: tweakreg, the layout (one grid: outlier detection's
    # is the final one; the footprints file only for the QA plots and sky tiles), skymatch,
    # median, resample (sums the contributions), source_catalog
    assert jobs == {"find_sources": 2, "tweakreg": 1, "grid": 1,
                    "sky_statistics": 2, "skymatch": 1, "single": 2, "median": 1, "flag": 2,
                    "resample": 1, "source_catalog": 1, "all": 1}
    assert f"out/{synth.PRODUCT_NAME}_i2d.fits" in proc.stdout


def test_without_outlier_detection(tmp_path, small_asn):
    proc = snakemake(tmp_path, "-n", config={"asn": small_asn, "output_dir": "out",
                                             "outlier_detection": "{skip: true}"})
    jobs = {rule: n for rule, n in jobs_run(proc).items() if not rule.startswith("qa_")}
    assert jobs == {"find_sources": 2, "tweakreg": 1, "grid": 1,
                    "sky_statistics": 2, "skymatch": 1, "resample": 1, "source_catalog": 1,
                    "all": 1}


def test_without_tweakreg(tmp_path, small_asn):
    proc = snakemake(tmp_path, "-n", config={"asn": small_asn, "output_dir": "out",
                                             "tweakreg": "{skip: true}"})
    jobs = {rule: n for rule, n in jobs_run(proc).items() if not rule.startswith("qa_")}
    assert jobs == {"grid": 1, "sky_statistics": 2, "skymatch": 1, "single": 2,
                    "median": 1, "flag": 2, "resample": 1, "source_catalog": 1, "all": 1}


def test_a_final_grid_of_its_own_adds_outlier_detections_grid(tmp_path, small_asn):
    """Outlier detection drizzles onto the reference's default grid: a second grid job only
    when the final grid differs from it."""
    proc = snakemake(tmp_path, "-n", config={"asn": small_asn, "output_dir": "out",
                                             "resample": "{pixel_scale_ratio: 0.5}"})
    assert jobs_run(proc)["grid"] == 2
    assert "out/work/grid_outlier.pkl" in proc.stdout and "out/work/grid.pkl" in proc.stdout


def test_optional_products_have_rules_of_their_own(tmp_path, small_asn):
    """save_catalogs, save_intermediate_results and resample.single add one job per file they
    ask for (per member: the saved source list and the blot; per group: the single and its
    _i2d; the median), and the jobs of the other rules stay the same."""
    plain = jobs_run(snakemake(tmp_path, "-n", config={"asn": small_asn, "output_dir": "out"}))
    proc = snakemake(tmp_path, "-n", config={
        "asn": small_asn, "output_dir": "out", "tweakreg": "{save_catalogs: true}",
        "outlier_detection": "{save_intermediate_results: true}", "resample": "{single: true}"})
    jobs = jobs_run(proc)
    assert jobs == {**plain, "save_catalog": 2, "save_single": 2, "save_median": 1,
                    "save_blot": 2, "resample_single": 2}
    names = synth.member_names(2)
    saved = [f"{m}_cal_cat.ecsv" for m in names] + [f"{m}_o001_blot.fits" for m in names] \
        + [f"{m}_o001_outlier_i2d.fits" for m in names] + [f"{names[0]}_o001_median.fits"] \
        + [f"{m}_o001_single_i2d.fits" for m in names]
    for name in saved:
        assert f"out/{name}" in proc.stdout, name


def test_lint_is_clean(tmp_path, small_asn):
    proc = snakemake(tmp_path, "--lint", config={"asn": small_asn}, check=False)
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


def test_bad_config_value_stops_before_any_job(tmp_path, small_asn):
    proc = snakemake(tmp_path, "-j1", config={"asn": small_asn, "output_dir": "out",
                                              "resample": "{pixfrac: 1.5}"}, check=False)
    assert proc.returncode != 0
    assert "resample.pixfrac = 1.5 is invalid" in proc.stderr.strip().splitlines()[-1]
    assert not (tmp_path / "out").exists()
