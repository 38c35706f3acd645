"""image3.runtime.forked.map_forked: same results as a plain map, children's errors come back."""

import os

import numpy as np
import pytest

from image3.runtime.forked import fork_available, map_forked


def _pid_and_sum(chunk):
    return os.getpid(), np.asarray(chunk).sum()


@pytest.mark.parametrize("workers", [1, 2, 3])
def test_map_forked_returns_each_chunk_result_in_order(workers):
    data = np.arange(30.0)
    chunks = np.array_split(data, workers)
    results = map_forked(_pid_and_sum, chunks, workers)
    assert [s for _, s in results] == [c.sum() for c in chunks]
    pids = {pid for pid, _ in results}
    assert results[0][0] == os.getpid()
    assert len(pids) == (workers if fork_available() else 1)


def _fails(chunk):
    if chunk == "bad":
        raise ValueError("bad chunk")
    return chunk


def test_map_forked_raises_a_childs_error_with_its_traceback():
    if not fork_available():
        pytest.skip("no fork here")
    with pytest.raises(RuntimeError, match="ValueError: bad chunk"):
        map_forked(_fails, ["good", "bad"], 2)
    with pytest.raises(ValueError, match="3 chunks for 2 workers"):
        map_forked(_fails, ["a", "b", "c"], 2)
