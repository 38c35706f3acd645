"""Sky tiles: the output grid cut into square tiles with overlapping margins.

A tile's inner region is ``size`` x ``size`` pixels of the grid (the last row and column of
tiles take what is left), named ``tRR-CC`` (0-based row and column of tiles, y then x); its
window is the inner region grown by ``margin`` pixels on each side, clipped to the grid. Each
tile's products (``_i2d``, ``_segm``, ``_cat``) cover its window, summed from the same
per-member contributions as the untiled mosaic, so neighbouring tiles hold the same pixel values
where their windows overlap. A source belongs to the tile whose inner region holds its centroid:
the merged catalogue (:func:`image3.catalog.merge_tile_catalogs`) lists it once, as long as the margin is
wider than the largest source's half-size (its segment must fit in the window of the tile that
owns it).

Conventions: regions are (y0, y1, x0, x1), half-open 0-based pixel ranges of the grid; a pixel
centre (x, y) lies in a region when x0 - 0.5 <= x < x1 - 0.5 and y0 - 0.5 <= y < y1 - 0.5.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from .runtime.resources import grid_shape

__all__ = ["Tile", "read_tiles", "tile_layout", "write_tiles"]


@dataclass(frozen=True)
class Tile:
    """One tile: its name, window and inner region (see the module docstring)."""

    name: str
    window: tuple[int, int, int, int]
    inner: tuple[int, int, int, int]


def tile_layout(shape: Sequence[int], size: int, margin: int) -> list[Tile]:
    """The tiles of a (ny, nx) grid, row by row."""
    ny, nx = (int(n) for n in shape)
    tiles = []
    for row in range(math.ceil(ny / size)):
        for col in range(math.ceil(nx / size)):
            y0, x0 = row * size, col * size
            y1, x1 = min(y0 + size, ny), min(x0 + size, nx)
            window = (max(0, y0 - margin), min(ny, y1 + margin),
                      max(0, x0 - margin), min(nx, x1 + margin))
            tiles.append(Tile(f"t{row:02d}-{col:02d}", window, (y0, y1, x0, x1)))
    return tiles


def write_tiles(path: str | Path, shape_path: str | Path, size: int, margin: int) -> str:
    """Write the tiles of the grid whose shape file is ``shape_path`` as JSON; returns a summary."""
    shape = grid_shape(shape_path)
    tiles = tile_layout(shape, size, margin)
    Path(path).write_text(json.dumps([t.__dict__ for t in tiles], indent=1) + "\n")
    return (f"{len(tiles)} tiles of {size}² pixels (margin {margin}) over the "
            f"{shape[1]} x {shape[0]} grid")


def read_tiles(path: str | Path) -> list[Tile]:
    """The tiles written by :func:`write_tiles`."""
    return [Tile(t["name"], tuple(t["window"]), tuple(t["inner"]))
            for t in json.loads(Path(path).read_text())]
