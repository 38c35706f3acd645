"""The edge between a Snakemake job and the image3 package.

Every ``scripts/<rule>.py`` runs inside :func:`job`: log lines go to the rule's log file, warnings
also to the terminal, and a user error (:class:`~image3.errors.Image3Error`) becomes one line
naming the file and the problem — on the terminal, in the log, and in ``errors.txt`` of the
workflow's log folder (the ``logs`` folder above the rule's log file), so the ``onerror`` handler
can repeat it as the last thing the user reads — and exit status 1, never a traceback. An
``OSError`` (a full disk, a read-only or forbidden folder) is also one line naming the file, with
its traceback in the log. Unexpected exceptions (bugs) keep their traceback, in the log only; the
terminal gets one line pointing at it.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import re
import sys
import traceback
import warnings
from pathlib import Path

from ..errors import Image3Error, first_line

ERRORS_FILE = "errors.txt"


def _configure_logging(log_path: str | None) -> None:
    root = logging.getLogger()
    root.handlers.clear()
    root.setLevel(logging.INFO)
    fmt = logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s", "%H:%M:%S")
    if log_path:
        Path(log_path).parent.mkdir(parents=True, exist_ok=True)
        to_file = logging.FileHandler(log_path, mode="w")
        to_file.setFormatter(fmt)
        root.addHandler(to_file)
    to_terminal = logging.StreamHandler(sys.stderr)
    to_terminal.setLevel(logging.WARNING)
    to_terminal.setFormatter(logging.Formatter("image3: %(levelname)s: %(message)s"))
    root.addHandler(to_terminal)
    logging.captureWarnings(True)
    # a log that cannot be written (a full disk) must not add a "--- Logging error ---" wall
    logging.raiseExceptions = False
    # Library chatter (astropy/gwcs deprecations) belongs in the log, not on the terminal.
    logging.getLogger("py.warnings").propagate = False
    if log_path:
        logging.getLogger("py.warnings").addHandler(to_file)


def record_error(log_path: str | Path, line: str) -> None:
    """Append a user-error line to ``errors.txt`` in the ``logs`` folder holding ``log_path``."""
    log_path = Path(log_path).resolve()
    logs = next((p for p in log_path.parents if p.name == "logs"), log_path.parent)
    with (logs / ERRORS_FILE).open("a") as fh:
        fh.write(line.rstrip("\n") + "\n")


def recorded_errors(logs: str | Path) -> list[str]:
    """The user-error lines recorded in the ``logs`` folder (:func:`record_error`), each once,
    in the order first recorded; none when there is no record."""
    path = Path(logs, ERRORS_FILE)
    return list(dict.fromkeys(path.read_text().splitlines())) if path.exists() else []


def clear_errors(logs: str | Path) -> None:
    """Forget the user-error lines of an earlier run (at the start of a run)."""
    Path(logs, ERRORS_FILE).unlink(missing_ok=True)


#: Blocks of at least this many bytes get a memory mapping of their own (see below).
MMAP_THRESHOLD_BYTES = 8 * 2**20


def _return_freed_arrays_to_the_system() -> None:
    """Make glibc give every freed full-frame array back to the system at once.

    glibc raises its mmap threshold (up to 32 MB) each time a mapped block is freed, so after
    the first 2048² array (16.8 MB) is freed the next ones come from the heap, where freed
    blocks stay part of the process: a job that releases a datamodel's arrays before
    drizzling kept them (measured: 50 MB more peak memory in the flag job). A fixed threshold
    (``mallopt(M_MMAP_THRESHOLD)``, as ``MALLOC_MMAP_THRESHOLD_`` does) stops that. Each
    mapped block costs page faults when it is filled (system time): 8 MB maps full frames
    of 2048² exposures and keeps row blocks, masks and smaller frames on the heap (measured
    on the flag job: 4 MB +1.0 s, 8 MB +0.5 s of system time over glibc's default). Elsewhere
    than glibc this does nothing.
    """
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(-3, MMAP_THRESHOLD_BYTES)  # -3: M_MMAP_THRESHOLD
    except (OSError, AttributeError):
        pass


def _parse_yaml_in_c() -> None:
    """Make ``yaml.safe_load`` use libyaml's parser (``CSafeLoader``) when PyYAML has it.

    The first datamodel a process opens or writes makes asdf read the ~50 manifests of its
    extensions with ``yaml.safe_load``, PyYAML's pure-Python parser: 0.9-1.3 s for that first
    open of a 2048² ``_cal``, 0.6-0.75 s with the C parser (measured here), in every job that
    touches a datamodel. ``CSafeLoader`` differs from ``SafeLoader`` only in its scanner and
    parser, both libyaml's: the same safe constructor builds the same objects. asdf already
    reads ASDF trees themselves with libyaml.
    """
    import yaml

    if not getattr(yaml, "__with_libyaml__", False):
        return

    def safe_load(stream):
        return yaml.load(stream, Loader=yaml.CSafeLoader)  # noqa: S506 (a safe loader)

    safe_load.__doc__ = yaml.safe_load.__doc__
    yaml.safe_load = safe_load


@contextlib.contextmanager
def job(snakemake):
    """Run a rule's body with logging set up and user errors turned into one line."""
    _return_freed_arrays_to_the_system()
    _parse_yaml_in_c()
    log_path = snakemake.log[0] if len(snakemake.log) else None
    _configure_logging(log_path)
    log = logging.getLogger("image3")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("default")
            yield log
    except Image3Error as exc:
        line = first_line(exc)
        _stop(log, log_path, line)
    except OSError as exc:
        log.info("%s", traceback.format_exc())  # the log file only (the terminal shows warnings)
        where = f"; details in {log_path}" if log_path else ""
        outputs = [str(o) for o in getattr(snakemake, "output", ())]
        _stop(log, log_path, f"{_os_error_line(exc, outputs)} (rule {snakemake.rule}{where})")
    except Exception:
        log.info("unexpected failure (a bug, please report):\n%s", traceback.format_exc())
        print(f"image3: ERROR: unexpected failure in rule {snakemake.rule}; see {log_path}",
              file=sys.stderr)
        sys.exit(1)


def _stop(log: logging.Logger, log_path: str | None, line: str) -> None:
    log.error(line)
    if log_path:
        try:
            record_error(log_path, line)
        except OSError:  # e.g. the disk that stopped the job is still full
            pass
    sys.exit(1)


def _os_error_line(exc: OSError, outputs: list[str]) -> str:
    """``<file>: <reason>`` of an OSError; one that names no file (a write on a full disk)
    names what the job was making, its ``outputs``."""
    if exc.filename:
        target = f"{exc.filename} -> {exc.filename2}" if exc.filename2 else exc.filename
        return f"{target}: {exc.strerror or exc}"
    text = exc.strerror or re.sub(r"^\[Errno \d+\] ", "", first_line(exc))
    making = ""
    if outputs:
        more = f" and {len(outputs) - 1} more" if len(outputs) > 1 else ""
        making = f" while making {outputs[0]}{more}"
    return f"{text} ({type(exc).__name__}){making}"
