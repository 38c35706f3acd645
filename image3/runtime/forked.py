"""A map over a few chunks of work, the chunks after the first each in a forked child.

For the joins that leave a core idle: a child made by ``fork`` starts with the parent's
memory (modules imported, arrays and caches built, shared until written), so handing it
part of a loop costs no imports and no copies in; only the results come back, pickled
through a pipe. Where ``fork`` is not available (or one worker is asked for) the map runs
in this process, with the same results.
"""

from __future__ import annotations

import multiprocessing
import traceback
from collections.abc import Callable, Sequence


def fork_available() -> bool:
    """True where processes can be forked (Linux, macOS)."""
    return "fork" in multiprocessing.get_all_start_methods()


def map_forked(function: Callable, chunks: Sequence, workers: int) -> list:
    """``[function(chunk) for chunk in chunks]``, on up to ``workers`` processes.

    This process computes ``chunks[0]`` while one forked child computes each other chunk,
    so give at most ``workers`` chunks. A child's exception is raised here as a
    ``RuntimeError`` carrying its traceback.
    """
    if workers < 2 or len(chunks) < 2 or not fork_available():
        return [function(chunk) for chunk in chunks]
    if len(chunks) > workers:
        raise ValueError(f"{len(chunks)} chunks for {workers} workers")
    context = multiprocessing.get_context("fork")
    children = []
    for chunk in chunks[1:]:
        receive, send = context.Pipe(duplex=False)
        child = context.Process(target=_send_result, args=(function, chunk, send), daemon=True)
        child.start()
        send.close()
        children.append((child, receive))
    try:
        results = [function(chunks[0])]
        for child, receive in children:
            ok, value = receive.recv()
            if not ok:
                raise RuntimeError(f"in a forked worker:\n{value}")
            results.append(value)
    finally:
        for child, receive in children:
            receive.close()
            child.join(timeout=5)
            if child.is_alive():
                child.kill()
                child.join()
    return results


def _send_result(function, chunk, send) -> None:
    try:
        message = (True, function(chunk))
    except BaseException:  # noqa: BLE001 (everything goes back to the parent)
        message = (False, traceback.format_exc())
    send.send(message)
    send.close()
