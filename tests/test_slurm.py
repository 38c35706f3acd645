"""Cluster execution: profiles/slurm and profiles/slurm-ci, and a real run through SLURM.

The run brings up the one-node SLURM cluster of tests/slurm/start-slurm.sh (Debian packages,
as root), runs the workflow on a synthetic 2 x 2 mosaic of 256² exposures in 4 sky tiles with
``--profile profiles/slurm-ci``, checks that the jobs went through SLURM (job ids from the
plugin, COMPLETED in ``squeue --states=all``, one log each in .snakemake/slurm_logs) and that
the per-member and per-tile rules were packed into group jobs, then stops the daemons it
started.

It needs root; on a user's machine it also needs ``sbatch`` already installed (it never installs
packages there) and skips with the reason otherwise. Under ``CI=true`` it always runs: the start
script installs munge and slurm from Debian when they are missing.

Time is the constraint. The SLURM plugin polls job status with a back-off (profiles/slurm-ci:
3 s after a job finished, then +10 s per check: +3, +16, +39 s), and a job pays two Snakemake
start-ups (sbatch and srun) before its script, so a DAG level costs 16 s, or 39 s when its job
takes longer (a group job running 2 members side by side on a busy 2-core machine does, and
under CI the other pytest worker keeps the machine busy). The whole workflow took 3.5 minutes
with 9 levels, 4 of them group jobs (10 and 5 since the sky statistics and the layout are jobs
of their own), so the run here covers tweakreg, skymatch and the tiled resample without QA
plots: 6 levels, 4 of them group jobs (find_sources; the layout's footprints and grid;
sky_statistics; the 4 tiles' resample), the tweakreg, grid and skymatch checkpoints and the
tiles checkpoint (a local rule, once skymatch has run): 107.8 s here (2026-12-05). 6 levels
(with 2 exposures and one mosaic, before the layout had its own job) took 3 minutes here and
did not finish within 3.7 on the CI machine; the run's timeout is 7 minutes.
outlier_detection and source_catalog are skipped; the grouping of outlier_detection's rules is
checked by the dry run of test_profiles_name_real_rules_and_build_the_dag.
"""

import fcntl
import os
import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest
import yaml

from image3 import synth
from workflow import SNAKEMAKE, jobs_run, snakemake

ROOT = Path(__file__).resolve().parents[1]
PROFILES = ROOT / "profiles"
SCRIPTS = ROOT / "tests" / "slurm"
IN_CI = os.environ.get("CI", "").lower() == "true"
SLURM_CONF = os.environ.get("IMAGE3_SLURM_CONF", "/etc/slurm/slurm.conf")
STATE_DIR = os.environ.get("IMAGE3_SLURM_STATE", "/var/lib/image3-slurm")
LOCK_FILE = "/run/lock/image3-slurm-test.lock"
REFUSED = 3  # start-slurm.sh: not root, not Debian, or somebody else's slurm.conf
RUN_TIMEOUT_S = 420  # SIGKILL: a hung SLURM plugin ignores SIGTERM
START_TIMEOUT_S = 180  # includes apt-get update + install on a cold machine


def _profile(name: str) -> dict:
    return yaml.safe_load((PROFILES / name / "config.yaml").read_text())


def _skip_or_fail(message: str):
    if IN_CI:
        pytest.fail(message + " (CI=true: this test must run)")
    pytest.skip(message)


# ---------------------------------------------------------------------------------------------
# Fast checks: no cluster needed.

def test_no_default_profile():
    """profiles/default would be applied to every run automatically (Snakemake >= 8)."""
    assert not (PROFILES / "default").exists()


#: The group each grouped rule names (``group:`` in rules/*.smk).
RULE_GROUPS = {"find_sources": "sources", "save_catalog": "sources", "footprints": "layout",
               "grid": "layout", "sky_statistics": "skystats", "single": "singles",
               "save_single": "singles", "flag": "flags", "save_blot": "flags",
               "median": "medians", "resample_tile": "tiles", "source_catalog_tile": "tiles"}


def test_ci_profile_groups_like_the_user_profile():
    user, ci = _profile("slurm"), _profile("slurm-ci")
    assert user["executor"] == ci["executor"] == "slurm"
    assert "groups" not in user and "groups" not in ci  # the rules name their groups
    assert ci["group-components"] == user["group-components"]
    assert set(user["group-components"]) == set(RULE_GROUPS.values())
    # without an accounting database the plugin hangs unless it polls with squeue
    assert ci["slurm-status-command"] == "squeue"
    assert ci["default-resources"]["slurm_partition"] == "debug"


@pytest.mark.workflow
def test_profiles_name_real_rules_and_build_the_dag(tmp_path):
    """Every rule the profiles name exists, and the grouped DAG is valid (a dry run builds the
    group jobs; a bad grouping is an error there)."""
    pytest.importorskip("snakemake_executor_plugin_slurm",
                        reason="pip install -e '.[test]' installs the SLURM executor plugin")
    asn = synth.make_association(tmp_path / "data", n=2, size=256, seed=4)
    # every rule: the optional files' too
    config = {"asn": asn, "output_dir": "out", "tweakreg": "{save_catalogs: true}",
              "outlier_detection": "{save_intermediate_results: true}"}
    rules = set(snakemake(tmp_path, "--list-rules", config=config).stdout.split())
    assert set(RULE_GROUPS) <= rules
    for name in ("slurm", "slurm-ci"):
        profile = _profile(name)
        named = set(profile.get("set-resources") or {}) | set(profile.get("set-threads") or {})
        assert named <= rules, f"profiles/{name} names rules the workflow lacks: {named - rules}"
        built = snakemake(tmp_path, "-n", "--profile", str(PROFILES / name),
                          config=config).stdout
        # the sky tiles' jobs exist once the tiles checkpoint has run: the SLURM run has them
        for group in set(profile["group-components"]) - {"tiles"}:
            assert f"Group job {group} " in built, f"profiles/{name}: no group {group}"


# ---------------------------------------------------------------------------------------------
# The real thing: a cluster on this machine.

@pytest.fixture(scope="module")
def slurm_cluster():
    """Start the local cluster (tests/slurm/start-slurm.sh); stop what it started afterwards.
    Yields the bring-up time in seconds."""
    if os.geteuid() != 0:
        _skip_or_fail("the local SLURM cluster needs root (tests/slurm/start-slurm.sh)")
    if not IN_CI and shutil.which("sbatch") is None:
        pytest.skip("sbatch is not installed: run tests/slurm/start-slurm.sh as root first "
                    "(it installs munge and slurm from Debian), or set CI=true")
    # The cluster is machine-wide: a second test session waits here rather than have the first
    # one stop the daemons under its run.
    with open(LOCK_FILE, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        up_before = _cluster_up()
        try:
            t0 = time.monotonic()
            proc = subprocess.run([str(SCRIPTS / "start-slurm.sh")], capture_output=True,
                                  text=True, timeout=START_TIMEOUT_S)
            bring_up = time.monotonic() - t0
            if proc.returncode == REFUSED:
                _skip_or_fail(f"start-slurm.sh refused: {proc.stderr.strip()}")
            assert proc.returncode == 0, f"start-slurm.sh failed:\n{proc.stdout}\n{proc.stderr}"
            yield bring_up
        finally:  # also after a half-done start
            if not up_before:  # leave a cluster somebody started by hand running
                subprocess.run([str(SCRIPTS / "stop-slurm.sh")], capture_output=True,
                               timeout=60)


def _cluster_up() -> bool:
    """Whether start-slurm.sh's controller is already running (recorded PID still alive).
    Not asked of sinfo: without a controller it retries for up to 60 s."""
    pid_file = Path(STATE_DIR, "slurmctld.pid")
    try:
        return Path(f"/proc/{pid_file.read_text().strip()}/comm").read_text().strip() == "slurmctld"
    except (OSError, ValueError):
        return False


def _env() -> dict:
    return {**os.environ, "SLURM_CONF": SLURM_CONF}


def _squeue_states(job_ids) -> dict[str, tuple[str, str]]:
    """SLURM job id -> (state, job name), finished jobs included (MinJobAge=600 keeps them)."""
    proc = subprocess.run(["squeue", "--states=all", "-h", "-o", "%i|%T|%j", "-j",
                           ",".join(job_ids)], capture_output=True, text=True, env=_env(),
                          timeout=30, check=True)
    rows = (line.split("|") for line in proc.stdout.split())
    return {job: (state, name) for job, state, name in rows}


@pytest.mark.slow
@pytest.mark.workflow
def test_workflow_runs_through_slurm(slurm_cluster, tmp_path, record_property):
    bring_up = slurm_cluster
    asn = synth.make_program(tmp_path / "data", n=1, size=256, seed=4, layout="mosaic:2x2")[0]
    product = "jw99999-o001_t001_nircam_clear-f200w"
    cmd = ["timeout", "-s", "KILL", str(RUN_TIMEOUT_S), *SNAKEMAKE,
           "--directory", str(tmp_path), "--profile", str(PROFILES / "slurm-ci"),
           "--config", f"asn={asn}", "output_dir=out", "qa={plots: false}",
           "tiles={above_pixels: 0, size: 256, margin: 32}",
           *(f"{step}={{skip: true}}" for step in ("outlier_detection", "source_catalog"))]
    t0 = time.monotonic()
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, env=_env(),
                              timeout=RUN_TIMEOUT_S + 30)
    finally:
        run_time = time.monotonic() - t0
        # A killed Snakemake leaves its jobs queued: cancel them (they carry the run ID as name).
        log_dir = Path(tmp_path, ".snakemake", "log")
        for path in log_dir.glob("*.snakemake.log") if log_dir.is_dir() else []:
            if found := re.search(r"SLURM run ID: (\S+)", path.read_text()):
                subprocess.run(["scancel", "--name", found.group(1)], env=_env(), timeout=30)
    log = proc.stdout + proc.stderr
    if proc.returncode in (-9, 137):
        pytest.fail(f"killed after {RUN_TIMEOUT_S} s (SLURM plugin hung?):\n{log[-4000:]}")
    assert proc.returncode == 0, log[-6000:]
    tiles = sorted((tmp_path / "out").glob(f"{product}_t??-??_i2d.fits"))
    assert len(tiles) == 4 and not (tmp_path / "out" / f"{product}_i2d.fits").exists()

    # Every job went through sbatch: ids from the plugin, each COMPLETED under this run's name.
    run_id = re.search(r"SLURM run ID: (\S+)", log).group(1)
    submitted = re.findall(r"has been submitted with SLURM jobid (\d+) \(log: (\S+)\)", log)
    job_ids = [job for job, _ in submitted]
    assert job_ids, log[-4000:]
    states = _squeue_states(job_ids)
    assert states == {job: ("COMPLETED", run_id) for job in job_ids}
    logs = {job: Path(path) for job, path in submitted}
    slurm_logs = tmp_path / ".snakemake" / "slurm_logs"
    assert all(path.is_file() and slurm_logs in path.parents for path in logs.values())

    # One cluster job per ungrouped rule job, one per group (4 members <= 20; the layout's
    # footprints and grid jobs <= 3; 4 tiles <= 4), named after the group and its rules; the
    # local rules (the tiles checkpoint) none.
    ran = jobs_run(proc)
    for local in ("all", "tiles"):
        assert ran.pop(local, 0) == 1, ran
    groups = RULE_GROUPS
    grouped = {rule for rule in ran if rule in groups}
    rules_of = {groups[rule]: sorted(r for r in grouped if groups[r] == groups[rule])
                for rule in grouped}
    expected = sum(n for rule, n in ran.items() if rule not in groups) + len(rules_of)
    assert len(job_ids) == expected, (ran, job_ids)
    for group, rules in rules_of.items():
        tag = f"group_{group}_{'_'.join(rules)}"
        assert sum(tag in str(path) for path in logs.values()) == 1, (group, logs)
    assert {"find_sources", "footprints", "grid", "sky_statistics", "resample_tile"} <= grouped, ran
    assert ran["resample_tile"] == 4, ran

    summary = (f"\nFIGURE SLURM bring-up {bring_up:.1f} s, workflow {run_time:.1f} s, "
               f"{len(job_ids)} SLURM jobs for {sum(ran.values())} rule jobs")
    record_property("slurm_bring_up_s", round(bring_up, 1))
    record_property("slurm_run_s", round(run_time, 1))
    record_property("slurm_jobs", len(job_ids))
    print(summary)
