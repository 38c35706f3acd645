"""What the Snakemake process itself needs at the start of a run (its ``onstart``)."""

from __future__ import annotations

import signal
import threading

__all__ = ["handle_sigterm_off_the_main_thread"]


def handle_sigterm_off_the_main_thread() -> None:
    """Snakemake 9's SIGTERM handler (``JobScheduler.exit_gracefully``) takes the scheduler's
    lock, which the main thread holds while it post-processes a finished job: a SIGTERM at
    that moment hangs Snakemake for ever (tests/test_resume.py caught it, once jobs ended
    faster with the job server). Run the handler in a thread, which waits for the lock."""
    handler = signal.getsignal(signal.SIGTERM)
    if callable(handler):
        signal.signal(signal.SIGTERM, lambda signum, frame: threading.Thread(
            target=handler, args=(signum, frame), daemon=True).start())
