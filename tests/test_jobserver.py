"""The job server (image3/runtime/jobserver.py): jobs forked from it behave as their own processes
would (streams, exit status, working folder, environment, signals), and without a server the job
runs in its own process."""

import csv
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from image3.runtime import jobserver

# A job script as Snakemake runs it: its preamble defines `snakemake`, then delegate() comes first.
SCRIPT = '''\
import os, sys, time, types
wildcards = types.SimpleNamespace(items=lambda: {"member": "m1"}.items())
snakemake = types.SimpleNamespace(rule="probe", wildcards=wildcards)
from image3.runtime.jobserver import delegate
delegate(snakemake)
print("pid", os.getpid(), "worker", os.environ.get("IMAGE3_JOB_WORKER", "no"),
      "cwd", os.getcwd(), "probe", os.environ.get("PROBE", "-"), flush=True)
print("to stderr", file=sys.stderr, flush=True)
action = sys.argv[1]
if action == "sleep":
    time.sleep(60)
elif action == "raise":
    raise RuntimeError("a bug in the job")
sys.exit(int(action))
'''


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """A running job server (its address in os.environ, as the Snakefile's onstart leaves it)."""
    logs = tmp_path_factory.mktemp("logs")
    started = jobserver.start(logs)
    yield logs
    jobserver.stop(started)
    assert started.returncode is not None


def _script(tmp_path: Path) -> Path:
    path = tmp_path / "probe.py"
    path.write_text(SCRIPT)
    return path


def _run(script: Path, action: str, cwd: Path, **env) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(script), action], cwd=cwd, capture_output=True,
                          text=True, timeout=60, env={**os.environ, **env})


def _fields(stdout: str) -> dict:
    words = stdout.split()
    return dict(zip(words[::2], words[1::2], strict=True))


def test_job_runs_in_a_worker_with_the_clients_streams_folder_and_environment(server, tmp_path):
    script = _script(tmp_path)
    folder = tmp_path / "elsewhere"
    folder.mkdir()
    done = _run(script, "0", folder, PROBE="from-the-client")
    assert done.returncode == 0, done.stderr
    seen = _fields(done.stdout)
    assert seen["worker"] == "1"  # ran in a forked worker, not in the client
    assert seen["cwd"] == str(folder)
    assert seen["probe"] == "from-the-client"
    assert done.stderr.strip() == "to stderr"
    with (server / jobserver.RECORD_FILE).open() as fh:
        rows = [row for row in csv.DictReader(fh, delimiter="\t")]
    assert {"rule": "probe", "job": "member=m1", "exit_status": "0"}.items() <= rows[-1].items()
    assert float(rows[-1]["max_rss_mb"]) > 10


@pytest.mark.parametrize("action, status", [("3", 3), ("raise", 1)])
def test_exit_status_and_traceback_reach_the_client(server, tmp_path, action, status):
    done = _run(_script(tmp_path), action, tmp_path)
    assert done.returncode == status
    assert _fields(done.stdout)["worker"] == "1"
    if action == "raise":
        assert "RuntimeError: a bug in the job" in done.stderr


def test_without_a_server_the_job_runs_in_its_own_process(tmp_path):
    done = _run(_script(tmp_path), "5", tmp_path,
                **{jobserver.ADDRESS_VARIABLE: "image3-no-such-server"})
    assert done.returncode == 5
    assert _fields(done.stdout)["worker"] == "no"


def _start_sleeper(script: Path, cwd: Path) -> tuple[subprocess.Popen, int]:
    client = subprocess.Popen([sys.executable, str(script), "sleep"], cwd=cwd,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    worker = int(_fields(client.stdout.readline())["pid"])
    assert worker != client.pid
    return client, worker


def _gone(pid: int, within: float = 10.0) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.05)
    return False


def test_a_signal_to_the_client_reaches_the_worker(server, tmp_path):
    client, worker = _start_sleeper(_script(tmp_path), tmp_path)
    client.send_signal(signal.SIGTERM)
    assert client.wait(timeout=20) == 128 + signal.SIGTERM  # as a shell reports a signal
    assert _gone(worker)


def test_a_client_that_vanishes_takes_its_worker_with_it(server, tmp_path):
    client, worker = _start_sleeper(_script(tmp_path), tmp_path)
    client.kill()
    client.wait(timeout=20)
    assert _gone(worker)


def test_workers_die_with_their_server(tmp_path, monkeypatch):
    """Nothing outlives a server killed outright (``kill -9`` of the run's process group):
    its workers are killed by the kernel and their clients fail with one line."""
    monkeypatch.setenv(jobserver.ADDRESS_VARIABLE, "restored-after-the-test")
    own = jobserver.start(tmp_path / "logs")
    try:
        client, worker = _start_sleeper(_script(tmp_path), tmp_path)
        own.kill()
        own.wait(timeout=10)
        assert _gone(worker)
        assert client.wait(timeout=20) == 1
        assert "the job server stopped" in client.stderr.read()
    finally:
        jobserver.stop(own)
