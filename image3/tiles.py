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

Each tile lists the members whose footprint, grown by :data:`KERNEL_REACH_PX`, meets its window:
its jobs read only those members' files, so a member added elsewhere leaves it alone; a tile
whose inner region no member meets is not made (the grid of a tiled run has whole tiles of room
around the mosaic for members added later: :func:`image3.grid.write_output_grid`).

Conventions: regions are (y0, y1, x0, x1), half-open 0-based pixel ranges of the grid; a pixel
centre (x, y) lies in a region when x0 - 0.5 <= x < x1 - 0.5 and y0 - 0.5 <= y < y1 - 0.5.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from .datamodel import atomic_write_text
from .errors import GridError
from .sidecar import read_work_json

if TYPE_CHECKING:  # the Snakefile imports this module: not gwcs with it (0.5 s per parse)
    from .wcs import Grid

__all__ = ["MAX_TILES_A_SIDE", "KERNEL_REACH_PX", "MEDIAN_REACH_PX", "Tile", "assign_members",
           "member_boxes", "overlap", "read_tiles", "tile_layout", "tiles_holding", "write_tiles"]

#: Grid pixels beyond which no drop of a member lands: more than the reach of any drizzle kernel
#: (lanczos3: 3 input pixels) at pixel_scale_ratio >= 0.5, plus the footprint's straight edges
#: between its points. A member's footprint is grown by it before it is compared with the tiles'
#: windows, and a tile drizzled here is drizzled onto its window grown by it.
KERNEL_REACH_PX = 8


#: Grid pixels around a member's footprint box within which its outlier flagging reads the
#: median (the flag job's window has a 2-pixel margin; footprints are polygons through points
#: along the edges, a pixel or so inside a distorted edge).
MEDIAN_REACH_PX = 4


@dataclass(frozen=True)
class Tile:
    """One tile: its name, window and inner region (see the module docstring), the members
    that meet its window (their contributions are summed in it) and ``core``, those whose
    outlier flagging reads its piece of the median (:data:`MEDIAN_REACH_PX` of its inner
    region). A member's ``core`` tiles are made whatever other members do, so members added
    elsewhere leave the set of pieces it reads unchanged."""

    name: str
    window: tuple[int, int, int, int]
    inner: tuple[int, int, int, int]
    members: tuple[str, ...] = ()
    core: tuple[str, ...] = ()


#: Rows (and columns) of tiles at most: names have two digits each.
MAX_TILES_A_SIDE = 100


def tile_layout(shape: Sequence[int], size: int, margin: int) -> list[Tile]:
    """The tiles of a (ny, nx) grid, row by row (GridError beyond 100 x 100 tiles)."""
    ny, nx = (int(n) for n in shape)
    if max(ny, nx) > MAX_TILES_A_SIDE * size:
        raise GridError(f"a {nx} x {ny}-pixel grid needs more than {MAX_TILES_A_SIDE} tiles of "
                        f"{size}² pixels a side: check the inputs' pointing or raise tiles.size")
    tiles = []
    for row in range(math.ceil(ny / size)):
        for col in range(math.ceil(nx / size)):
            y0, x0 = row * size, col * size
            y1, x1 = min(y0 + size, ny), min(x0 + size, nx)
            window = (max(0, y0 - margin), min(ny, y1 + margin),
                      max(0, x0 - margin), min(nx, x1 + margin))
            tiles.append(Tile(f"t{row:02d}-{col:02d}", window, (y0, y1, x0, x1)))
    return tiles


def member_boxes(grid: Grid, polygons: Mapping[str, np.ndarray]) -> dict[str, tuple[int, ...]]:
    """Each member's bounding box (y0, y1, x0, x1) on ``grid`` from its sky footprint polygon
    ((N, 2) ra, dec degrees, :mod:`image3.footprints`), pixel centres included."""
    boxes = {}
    for name, polygon in polygons.items():
        x, y = grid.wcs.invert(polygon[:, 0], polygon[:, 1], with_bounding_box=False)
        boxes[name] = (math.floor(np.min(y) + 0.5), math.ceil(np.max(y) + 0.5),
                       math.floor(np.min(x) + 0.5), math.ceil(np.max(x) + 0.5))
    return boxes


def assign_members(tiles: Sequence[Tile], boxes: Mapping[str, Sequence[int]],
                   pad: int = KERNEL_REACH_PX) -> list[Tile]:
    """The tiles whose inner region some member's box meets (a tile with data in its margins
    only would catalogue nothing), each with the members whose box grown by ``pad`` meets its
    window, in the order of ``boxes``."""
    def meeting(region, pad):
        y0, y1, x0, x1 = region
        return tuple(name for name, (b0, b1, c0, c1) in boxes.items()
                     if b0 - pad < y1 and b1 + pad > y0 and c0 - pad < x1 and c1 + pad > x0)

    return [replace(tile, members=meeting(tile.window, pad),
                    core=meeting(tile.inner, MEDIAN_REACH_PX)) for tile in tiles
            if meeting(tile.inner, 0)]


def overlap(a: Sequence[int], b: Sequence[int]) -> tuple[int, int, int, int] | None:
    """The region two regions share, or None."""
    y0, y1, x0, x1 = max(a[0], b[0]), min(a[1], b[1]), max(a[2], b[2]), min(a[3], b[3])
    return (y0, y1, x0, x1) if y0 < y1 and x0 < x1 else None


def tiles_holding(region: Sequence[int], tiles: Sequence[Tile]) -> list[Tile]:
    """The tiles whose inner region meets ``region``: together they hold its pixels (a pixel
    outside every tile's inner region has no data)."""
    return [t for t in tiles if overlap(region, t.inner) is not None]


def write_tiles(path: str | Path, tiles: Sequence[Tile]) -> None:
    atomic_write_text(path, json.dumps([t.__dict__ for t in tiles], indent=1) + "\n")


def read_tiles(path: str | Path) -> list[Tile]:
    """The tiles written by :func:`write_tiles`."""
    return [Tile(t["name"], tuple(t["window"]), tuple(t["inner"]), tuple(t.get("members", ())),
                 tuple(t.get("core", ()))) for t in read_work_json(path)]
