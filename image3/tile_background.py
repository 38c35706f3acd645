"""The background of a tiled mosaic, put together from its tiles (:mod:`image3.background`).

Each tile computes the statistics of the lattice boxes that start in its inner region
(:func:`write_box_statistics`), reading each box's pixels from the inner regions of the tiles
that hold them: its own and, since a box of ``bkg_boxsize`` pixels reaches past a tile's
margin, its neighbours'. One join makes the mosaic's mesh from every tile's boxes
(:func:`write_background_mesh`), and each tile's catalogue zooms it over its window
(:func:`image3.catalog.write_source_catalog`). A tile holds the mosaic's pixels (the same
contributions summed), so the mesh is the one the untiled mosaic makes itself, number for
number, and so are each tile's background and detection threshold: each source is detected
as in the untiled mosaic (when the tiled grid is the untiled one: ``tiles.reserve: 0``; with
room around it the lattice starts at another pixel).

When members are added to a finished run, a tile whose background the new boxes do not move
(:data:`KEPT_CHANGE`) is given the mesh its catalogue was made with, byte for byte, and its
catalogue is kept.

The statistics are of the catalogue's data, SCI and ERR in Jy per pixel
(:func:`image3.catalog.detection_arrays`). Regions are (y0, y1, x0, x1) of the grid's pixels.
"""

from __future__ import annotations

import logging
import shutil
import zipfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from astropy.io import fits

from .background import BackgroundMesh, BoxStatistics, Lattice, background_mesh, box_statistics
from .catalog import detection_arrays
from .datamodel import atomic_path
from .kept import KEPT_FOLDER
from .tiles import Tile, overlap

log = logging.getLogger(__name__)

__all__ = ["KEPT_CHANGE", "write_background_mesh", "write_box_statistics"]

#: A tile's catalogue made on a kept mesh is kept while a new mesh moves the tile's background
#: and RMS by at most this fraction of the median RMS, and its noise ratio by this fraction of
#: its median (members added elsewhere in the mosaic): the detection threshold moves by at most
#: 1 % of itself, and only sources that close to it can come or go. The spline zoom carries a
#: new box's change ~4x weaker per box further (3 x 3 NIRCam pointings in 1024² tiles, a
#: pointing added: 0.0029-0.0035 of the noise two to three tiles away).
KEPT_CHANGE = 0.01


def write_box_statistics(tile: Tile, sources: Sequence[tuple[Tile, str | Path]],
                         grid_shape: Sequence[int], box_size: int, out_path: str | Path) -> str:
    """Write (``.npz``) the statistics of the boxes that start in ``tile``'s inner region, on
    the lattice of ``box_size`` pixels over the grid of ``grid_shape``. ``sources`` are the
    tiles (with the paths of their ``_i2d``) that hold the boxes' pixels
    (:func:`image3.tiles.tiles_holding`). Returns a summary."""
    lattice = Lattice.of(grid_shape, box_size)
    boxes = lattice.boxes_starting_in(tile.inner)
    region = lattice.pixels(boxes)
    y0, y1, x0, x1 = region
    data = np.zeros((y1 - y0, x1 - x0), dtype=np.float32)
    error = np.full(data.shape, np.nan, dtype=np.float32)
    masked = np.ones(data.shape, dtype=bool)
    for source, path in sources:
        part = overlap(region, source.inner)
        if part is None:
            continue
        py0, py1, px0, px1 = part
        wy0, _, wx0, _ = source.window
        inside = (slice(py0 - wy0, py1 - wy0), slice(px0 - wx0, px1 - wx0))
        with fits.open(path, memmap=True) as i2d:
            values, sigma, uncovered = detection_arrays(
                *(i2d[name].data[inside] for name in ("SCI", "ERR", "WHT")),
                i2d["SCI"].header.get("PIXAR_SR"), source=path)
        here = (slice(py0 - y0, py1 - y0), slice(px0 - x0, px1 - x0))
        data[here], error[here], masked[here] = values, sigma, uncovered | ~np.isfinite(values)
    box_statistics(lattice, boxes, data, masked, error, origin=(y0, x0)).write(out_path)
    i0, i1, j0, j1 = boxes
    return f"{tile.name}: {(i1 - i0) * (j1 - j0)} boxes of {lattice.box} pixels"


def write_background_mesh(box_paths: Sequence[str | Path], grid_shape: Sequence[int],
                          box_size: int, tiles: Sequence[Tile], out_folder: str | Path,
                          keep_in: str | Path | None = None, refit: bool = False) -> str:
    """Write the mesh of the whole grid from the tiles' box statistics
    (:func:`image3.background.background_mesh`), once per tile: ``<out_folder>/<tile>.npz``.

    With ``keep_in`` (the work folder of a tiled run) each tile's file is also kept in
    ``<keep_in>/kept/background_mesh/``, and a later run (members added; not with ``refit``)
    writes a tile the mesh it kept for it when the new one moves the tile's background, RMS
    and noise ratio by at most :data:`KEPT_CHANGE` (:meth:`BackgroundMesh.largest_change`): the
    file's bytes are then the same, and Snakemake does not redo the tile's catalogue. Returns
    a summary."""
    mesh = background_mesh(Lattice.of(grid_shape, box_size),
                           [BoxStatistics.read(path) for path in box_paths])
    out_folder = Path(out_folder)
    out_folder.mkdir(parents=True, exist_ok=True)
    kept_folder = Path(keep_in, KEPT_FOLDER, "background_mesh") if keep_in is not None else None
    taken = 0
    for tile in tiles:
        out_path = out_folder / f"{tile.name}.npz"
        kept_path = kept_folder / out_path.name if kept_folder is not None else None
        previous = None if refit or kept_path is None else _readable_mesh(kept_path)
        if previous is not None:
            change = previous.largest_change(mesh, tile.window)
            log.info("%s: the new mesh moves its maps by %.2g of the noise at most: %s", tile.name,
                     change, "kept" if change <= KEPT_CHANGE else "made again")
            if change <= KEPT_CHANGE:
                shutil.copyfile(kept_path, out_path)
                taken += 1
                continue
        mesh.write(out_path)
        if kept_path is not None:
            kept_folder.mkdir(parents=True, exist_ok=True)
            with atomic_path(kept_path) as tmp:
                shutil.copyfile(out_path, tmp)
    return (f"background mesh of {mesh.lattice.counts} boxes of {mesh.lattice.box} pixels for "
            f"{len(tiles)} tiles ({taken} as made before)")


def _readable_mesh(path: Path) -> BackgroundMesh | None:
    """The mesh kept at ``path``, or None when there is none or it cannot be read (the tile's
    catalogue is then made again)."""
    try:
        return BackgroundMesh.read(path)
    except (OSError, ValueError, KeyError, zipfile.BadZipFile):
        return None
