"""Run a local run's jobs in processes forked from one that has imported the package already.

Every Snakemake ``script:`` job is a fresh Python process that first imports gwcs, astropy,
asdf, stdatamodels, drizzle and photutils: a 6 x 2048² association's 31 jobs take 88 CPU-s
that way and 58 CPU-s with the server (bench/README.md). On a local run the Snakefile starts
one *job server* (:func:`start`), which imports those modules once and then waits on a Unix
socket. Each job script begins with :func:`delegate`: Snakemake's process for the job becomes
a thin client that hands the server its script, working folder, environment and standard
streams; the server forks a *worker* (a copy of itself, its modules shared until written) that
runs the script exactly as the job's own process would, and the client waits and exits with
the worker's status. A worker runs in its own process group; a
signal the client gets (Snakemake cancelling a job, Ctrl-C) is passed on to that group, and a
client that vanishes gets its worker terminated.

Where there is no server (cluster jobs, ``job_server: false``, a server that could not start)
:func:`delegate` returns at once and the job runs in its own process as before; a client whose
request is not taken before the worker starts also runs the job itself. Snakemake's
``benchmark:`` files still time each job's wall clock, but see only the client's CPU time and
memory: the server writes each worker's figures (CPU s, peak RSS MB) to ``jobserver.tsv`` in
the run's log folder.
"""

from __future__ import annotations

import atexit
import ctypes
import gc
import importlib
import json
import os
import runpy
import selectors
import signal
import socket
import subprocess
import sys
import time
import traceback
from pathlib import Path

#: Environment variables: the server's socket address (set for the jobs of a local run), and
#: the mark a worker carries so that the script it runs does not delegate again.
ADDRESS_VARIABLE = "IMAGE3_JOB_SERVER"
WORKER_VARIABLE = "IMAGE3_JOB_WORKER"

#: What the server imports before it serves: what every job's Snakemake preamble and script
#: import (numpy, scipy, astropy, gwcs, asdf, stdatamodels, drizzle, photutils, tweakwcs come
#: with the image3 modules). Modules imported only inside a function that few jobs call
#: (photutils.segmentation) are left to those jobs.
PRELOAD = (
    "snakemake.iocontainers",
    "image3.catalog", "image3.datamodel", "image3.detection", "image3.grid",
    "image3.median", "image3.mosaic", "image3.outlier", "image3.refcat", "image3.resample",
    "image3.runtime.runjob", "image3.sip", "image3.skymatch", "image3.tweakreg",
)

#: The figures of each worker, appended by the server to this file in the run's log folder.
RECORD_FILE = "jobserver.tsv"
RECORD_COLUMNS = ("rule", "job", "wall_s", "cpu_s", "max_rss_mb", "exit_status")

_MESSAGE_BYTES = 1 << 20
#: Signals a client passes on to its worker (what Snakemake and a terminal send to stop a job).
_FORWARDED = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


def start(log_dir: str | Path) -> subprocess.Popen | None:
    """Start a job server for this process's jobs and point them at it.

    The server is a child of this process (Snakemake's main process): it is stopped when this
    process exits (:func:`stop`, registered at exit), and stops by itself within a second if
    this process dies otherwise (it watches its parent's pid). Its own messages go to
    ``jobserver.log`` in ``log_dir``, its workers' figures to :data:`RECORD_FILE` there.
    ``None`` (no server) off Linux.
    """
    if not sys.platform.startswith("linux"):  # abstract sockets and prctl are Linux's
        return None
    address = f"image3-jobs-{os.getpid()}-{time.time_ns()}"
    log_dir = Path(log_dir)
    log_dir.mkdir(parents=True, exist_ok=True)
    (log_dir / RECORD_FILE).write_text("\t".join(RECORD_COLUMNS) + "\n")
    # Bound here, so that a job started right after this call queues on the socket while the
    # server is still starting, instead of finding no server and running by itself.
    with socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET) as listener:
        listener.bind(_socket_address(address))
        listener.listen(64)
        with (log_dir / "jobserver.log").open("w") as log:
            server = subprocess.Popen(
                [sys.executable, "-m", "image3.runtime.jobserver", str(listener.fileno()),
                 str(log_dir / RECORD_FILE)],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                pass_fds=[listener.fileno()])
    os.environ[ADDRESS_VARIABLE] = address
    atexit.register(stop, server)
    return server


def stop(server: subprocess.Popen) -> None:
    """Stop a server made by :func:`start` (its running workers are terminated)."""
    os.environ.pop(ADDRESS_VARIABLE, None)
    if server.poll() is None:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def _socket_address(address: str) -> str:
    """An abstract-namespace Unix socket name (Linux): nothing on disk to leave behind."""
    return "\0" + address


def delegate(snakemake) -> None:
    """Run this job script in a worker of the run's job server, and exit with its status.

    Call it first in a job script, before the heavy imports. Returns (so the script goes on
    in this process) when there is no server, inside a worker, or when the server does not
    take the job (it stopped or never started).
    """
    address = os.environ.get(ADDRESS_VARIABLE)
    if not address or os.environ.get(WORKER_VARIABLE):
        return
    # Snakemake's preamble keeps the path it runs as __real_file__ and sets __file__ to the
    # workflow's script; the worker runs the file this process runs (preamble included)
    main = sys.modules["__main__"]
    script = getattr(main, "__real_file__", None) or getattr(main, "__file__", None)
    if not script:
        return
    client = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    try:
        client.connect(_socket_address(address))
        request = {"script": os.path.abspath(script), "argv": sys.argv, "cwd": os.getcwd(),
                   "env": dict(os.environ), "umask": _current_umask(),
                   "rule": snakemake.rule, "job": _job_name(snakemake)}
        # signals wait (pending) until the waiter below can pass them on to the worker
        signal.pthread_sigmask(signal.SIG_BLOCK, _FORWARDED)
        socket.send_fds(client, [json.dumps(request).encode()], [0, 1, 2])
        started = client.recv(_MESSAGE_BYTES)
    except OSError:
        started = b""
    if not started:  # the job was not taken: run it here
        client.close()
        signal.pthread_sigmask(signal.SIG_UNBLOCK, _FORWARDED)
        return
    # The client only waits now: it becomes a bare interpreter (~8 MB instead of ~17 MB with
    # this job's imports and Snakemake's) keeping its pid, so Snakemake waits on it as before.
    os.set_inheritable(client.fileno(), True)
    sys.stdout.flush()
    sys.stderr.flush()
    forwarded = ",".join(str(int(signum)) for signum in _FORWARDED)
    os.execv(sys.executable, [sys.executable, "-S", "-I", "-c", _WAITER, str(client.fileno()),
                              str(json.loads(started)["pid"]), forwarded, script])


#: The client once its job has started (``python -S -I -c``; arguments: the socket's file
#: descriptor, the worker's pid, the :data:`_FORWARDED` signal numbers, the script): pass
#: those signals on to the worker's process group, wait for the exit status and exit with it.
_WAITER = """\
import os, signal, socket, sys
connection = socket.socket(fileno=int(sys.argv[1]))
worker = int(sys.argv[2])
def forward(signum, frame):
    try:
        os.killpg(worker, signum)
    except ProcessLookupError:
        pass
forwarded = [int(number) for number in sys.argv[3].split(",")]
for signum in forwarded:
    signal.signal(signum, forward)
signal.pthread_sigmask(signal.SIG_UNBLOCK, forwarded)  # blocked since before the request
finished = connection.recv(4096)
if not finished:
    sys.exit(f"image3: error: the job server stopped while running {sys.argv[4]}")
sys.exit(int(finished))
"""


def _job_name(snakemake) -> str:
    wildcards = dict(snakemake.wildcards.items())
    return ",".join(f"{key}={value}" for key, value in wildcards.items()) or "-"


def _current_umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _die_with_parent(signum: int) -> None:
    """Have the kernel send ``signum`` to this process when its parent dies (Linux prctl
    PR_SET_PDEATHSIG), so that a worker never outlives its server however that ends (``kill
    -9`` of the run's process group included). The server is single-threaded: its thread
    that forks is the one that lives as long as it does."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, signum)  # 1: PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def _signal_group(pid: int, signum: int) -> None:
    try:
        os.killpg(pid, signum)
    except ProcessLookupError:
        pass


def serve(listener_fd: int, record: str | Path) -> None:
    """The server, on the listening socket :func:`start` made (clients queue on it): import
    :data:`PRELOAD`, then fork a worker per request until terminated or until the process
    that started it is gone."""
    # Not PR_SET_PDEATHSIG here: it fires when the *thread* that started the server ends,
    # and Snakemake (or a test runner) may start it from a thread that ends before the run.
    parent = os.getppid()
    listener = socket.socket(fileno=listener_fd)
    # OpenBLAS reads this when it is loaded, here, not the value Snakemake sets for each job:
    # with its default of a thread per core the workers' idle BLAS threads spin (a 6 x 2048²
    # run: 58 -> 88-104 CPU-s, most in sky_statistics)
    os.environ["OPENBLAS_NUM_THREADS"] = os.environ.get("OPENBLAS_NUM_THREADS", "1")
    started = time.perf_counter()
    for name in PRELOAD:
        importlib.import_module(name)
    gc.collect()
    # the imported objects stay out of every collection, in the server and in its workers: a
    # collection that visited them would write to (and so copy) the pages the workers share
    gc.freeze()
    print(f"imported {len(PRELOAD)} modules in {time.perf_counter() - started:.2f} s", flush=True)

    wake_read, wake_write = os.pipe()
    os.set_blocking(wake_write, False)
    signal.set_wakeup_fd(wake_write)
    signal.signal(signal.SIGCHLD, lambda *_: None)
    stopping = []
    signal.signal(signal.SIGTERM, lambda *_: stopping.append(True))
    signal.signal(signal.SIGINT, lambda *_: stopping.append(True))
    selector = selectors.DefaultSelector()
    selector.register(listener, selectors.EVENT_READ, "listener")
    selector.register(wake_read, selectors.EVENT_READ, "wake")
    workers: dict[int, tuple[socket.socket, dict, float]] = {}
    record = Path(record)

    while not stopping and os.getppid() == parent:
        for key, _ in selector.select(timeout=1.0):
            if key.data == "listener":
                connection, _ = listener.accept()
                pid, request = _fork_worker(connection, listener, selector, workers)
                if pid:
                    workers[pid] = (connection, request, time.perf_counter())
                    selector.register(connection, selectors.EVENT_READ, pid)
            elif key.data == "wake":
                os.read(wake_read, 4096)
            else:  # a client's socket became readable: it went away; stop its worker
                _signal_group(key.data, signal.SIGTERM)
                selector.unregister(key.fileobj)
        _reap(workers, selector, record)
    for pid in workers:
        _signal_group(pid, signal.SIGTERM)


def _fork_worker(connection, listener, selector, workers):
    """Receive one request and fork its worker; returns (pid, request), pid 0 on failure."""
    try:
        message, fds, _, _ = socket.recv_fds(connection, _MESSAGE_BYTES, 3)
        request = json.loads(message)
        if len(fds) != 3:
            raise ValueError(f"{len(fds)} file descriptors instead of 3")
    except (OSError, ValueError) as error:
        print(f"request refused: {error}", flush=True)
        connection.close()
        return 0, None
    pid = os.fork()
    if pid == 0:
        selector.close()
        listener.close()
        for other, _, _ in workers.values():
            other.close()
        _run_worker(request, fds)  # never returns
    try:  # the worker's own process group, before its client is told whom to signal
        os.setpgid(pid, pid)
    except OSError:  # the worker did it first (or has already exited)
        pass
    for fd in fds:
        os.close(fd)
    try:
        connection.send(json.dumps({"pid": pid}).encode())
    except OSError:
        _signal_group(pid, signal.SIGTERM)
    return pid, request


def _run_worker(request: dict, fds: list[int]) -> None:
    """In the forked child: become the job's process, run its script, exit with its status."""
    status = 1
    server = os.getppid()
    try:
        _die_with_parent(signal.SIGKILL)
        if os.getppid() != server:  # the server died before that took effect
            return
        os.setpgid(0, 0)
        signal.set_wakeup_fd(-1)
        for signum in (signal.SIGCHLD, signal.SIGTERM, signal.SIGHUP):
            signal.signal(signum, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        for target, fd in enumerate(fds):
            os.dup2(fd, target)
            os.close(fd)
        os.chdir(request["cwd"])
        os.umask(request["umask"])
        os.environ.clear()
        os.environ.update(request["env"])
        os.environ[WORKER_VARIABLE] = "1"
        sys.argv = list(request["argv"])
        runpy.run_path(request["script"], run_name="__main__")
        status = 0
    except SystemExit as leaving:
        if leaving.code is None or isinstance(leaving.code, int):
            status = leaving.code or 0
        else:
            print(leaving.code, file=sys.stderr)
    except BaseException:  # a job's bug: its traceback, as its own process would print it
        traceback.print_exc()
    finally:
        try:
            atexit._run_exitfuncs()
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(status)


def _reap(workers: dict, selector, record: Path) -> None:
    """Collect finished workers: tell each client its status, record the figures."""
    while workers:
        try:
            pid, status, usage = os.wait4(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        if pid not in workers:
            continue
        connection, request, began = workers.pop(pid)
        exit_status = os.waitstatus_to_exitcode(status)
        if exit_status < 0:  # killed by a signal, as a shell reports it
            exit_status = 128 - exit_status
        try:
            selector.unregister(connection)
        except KeyError:
            pass
        try:
            connection.send(str(exit_status).encode())
        except OSError:
            pass
        connection.close()
        row = (request["rule"], request["job"], f"{time.perf_counter() - began:.2f}",
               f"{usage.ru_utime + usage.ru_stime:.2f}", f"{usage.ru_maxrss / 1024:.1f}",
               str(exit_status))
        with record.open("a") as fh:
            fh.write("\t".join(row) + "\n")


if __name__ == "__main__":
    serve(int(sys.argv[1]), sys.argv[2])
