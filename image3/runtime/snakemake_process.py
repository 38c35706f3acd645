"""What the Snakemake process itself needs at the start of a run (its ``onstart``)."""

from __future__ import annotations

import signal
import sys
import threading
from collections.abc import Sequence

__all__ = ["handle_sigterm_off_the_main_thread", "print_stop_reasons", "unwritable_folder"]


def handle_sigterm_off_the_main_thread() -> None:
    """Snakemake 9's SIGTERM handler (``JobScheduler.exit_gracefully``) takes the scheduler's
    lock, which the main thread holds while it post-processes a finished job: a SIGTERM at
    that moment hangs Snakemake for ever (tests/test_resume.py caught it, once jobs ended
    faster with the job server). Run the handler in a thread, which waits for the lock."""
    handler = signal.getsignal(signal.SIGTERM)
    if callable(handler):
        signal.signal(signal.SIGTERM, lambda signum, frame: threading.Thread(
            target=handler, args=(signum, frame), daemon=True).start())


def unwritable_folder(exc: OSError, folder: str) -> str:
    """The one line for an output or work folder the run cannot create or write."""
    return (f"{exc.filename or folder}: {exc.strerror or exc} (output_dir and work_dir must be "
            "folders this run can write)")


def print_stop_reasons(lines: Sequence[str]) -> None:
    """At the end of a failed run (its ``onerror``), the user-error lines of its jobs, each once,
    below everything Snakemake printed; nothing when there are none."""
    if lines:
        print("\nimage3 stopped because of:", file=sys.stderr)
        for line in dict.fromkeys(lines):
            print(f"  {line}", file=sys.stderr)
