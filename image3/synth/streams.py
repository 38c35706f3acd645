"""Independent random streams of the generator, so that switching one effect off leaves the others unchanged.

Each draw comes from ``numpy.random.default_rng([seed, stream, *keys])``: the stream names the
effect, the keys the thing it is drawn for (an exposure set, a detector, an exposure).
"""

import numpy as np

(STREAM_POINTING, STREAM_SOURCES, STREAM_DETECTOR, STREAM_NOISE, STREAM_CR,
 STREAM_COLOURS, STREAM_VARIABLES, STREAM_NEBULA) = range(1, 9)


def rng(seed: int, stream: int, *keys: int) -> np.random.Generator:
    """The generator of ``stream`` for ``keys`` under ``seed``."""
    return np.random.default_rng([seed, stream, *keys])
