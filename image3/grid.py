"""The association's layout on the sky: every member's footprint and the output grids.

Both come from each member's gwcs as tweakreg left it (its geometry and corrected gwcs
sidecars, or its _cal when tweakreg does not run), one job each (rules ``footprints`` and
``grid``). The footprints (JSON, polygons in degrees) tell the sky tiles and the QA plots
where the members lie; a grid (outlier detection's, and the final resample's when it differs) is
built from every member's footprint and the first member's scale and orientation, as the
reference's default, or read from a user's ASDF gwcs (``output_wcs``), and passed between jobs
as a small sidecar (:func:`image3.wcs.write_grid`). With sky tiles, the final grid's tiles and the
members each meets (:func:`write_grid_tiles`, :mod:`image3.tiles`).
"""

from __future__ import annotations

import json
import logging
import shutil
from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path

from .datamodel import (ExposureMeta, MemberFiles, atomic_write_text, open_meta, read_wcs,
                        sci_shape)
from .footprints import footprints_table, member_footprints
from .kept import keep_files, kept_files
from .parameters import OutputGrid
from .sidecar import read_sidecar, write_sidecar
from .tiles import assign_members, member_boxes, tile_layout, write_tiles
from .wcs import (
    Grid,
    footprint,
    grid_scale,
    grid_window,
    mean_pixel_area_sr,
    output_grid,
    read_grid,
    read_output_wcs,
    write_grid,
)

log = logging.getLogger(__name__)

__all__ = ["Grid", "MemberGeometry", "build_grid", "geometry_of", "load_geometry",
           "load_grid", "member_geometry", "save_geometry", "save_grid", "write_footprints",
           "write_grid_tiles", "write_output_grid"]


#: The ``meta.wcsinfo`` keywords the grid (ra/dec/roll_ref, v3yangle, vparity) and tweakreg's
#: tangent-plane corrector (v2_ref, v3_ref, roll_ref) need.
WCSINFO_KEYS = ("ra_ref", "dec_ref", "roll_ref", "v3yangle", "vparity", "v2_ref", "v3_ref")


@dataclass(frozen=True)
class MemberGeometry:
    """What the output grid, the sky footprints and the alignment need from one member: its
    gwcs, array shape (ny, nx), the :data:`WCSINFO_KEYS` of ``meta.wcsinfo`` and the nominal
    pixel area (sr)."""

    wcs: object
    shape: tuple[int, int]
    wcsinfo: dict
    pixel_area_sr: float

    def with_wcs(self, wcs) -> MemberGeometry:
        return replace(self, wcs=wcs)


def geometry_of(model, shape: tuple[int, int] | None = None) -> MemberGeometry:
    """The :class:`MemberGeometry` of an opened exposure; ``shape`` (ny, nx) if known, else
    that of its SCI array."""
    shape = tuple(int(n) for n in (shape or model.data.shape))
    info = model.meta.wcsinfo
    area = model.meta.photometry.pixelarea_steradians
    return MemberGeometry(model.meta.wcs, shape, {k: getattr(info, k) for k in WCSINFO_KEYS},
                          float(area) if area else mean_pixel_area_sr(model.meta.wcs, shape))


def member_geometry(cal: str | Path, wcs: str | Path | None = None,
                    geometry: str | Path | None = None) -> MemberGeometry:
    """A member's :class:`MemberGeometry`, from its geometry sidecar (:func:`save_geometry`)
    when given, else from the _cal; with the corrected gwcs of ``wcs`` when given."""
    if geometry is not None:
        found = load_geometry(geometry)
    else:
        with open_meta(cal) as model:
            found = geometry_of(model, sci_shape(cal))
    return found.with_wcs(read_wcs(wcs)) if wcs is not None else found


def save_geometry(path: str | Path, geometry: MemberGeometry, meta: ExposureMeta) -> None:
    """Write a member's geometry as a work sidecar (see :func:`image3.sidecar.write_sidecar`)
    with ``meta``, the metadata of its ``_cal`` :func:`image3.datamodel.read_exposure` reads
    from the sidecar instead of opening the datamodel."""
    write_sidecar(path, meta=meta,
                  **{f.name: getattr(geometry, f.name) for f in fields(geometry)})


def load_geometry(path: str | Path) -> MemberGeometry:
    items = read_sidecar(path)
    return MemberGeometry(**{f.name: items[f.name] for f in fields(MemberGeometry)})


def build_grid(members: Sequence[MemberGeometry], params: OutputGrid) -> Grid:
    """The output grid for these members: the reference's default from their footprints and
    the first member's scale and orientation, or the user's ``output_wcs``."""
    first = members[0]
    if params.output_wcs:
        return read_output_wcs(params.output_wcs, first.pixel_area_sr,
                               output_shape=params.output_shape)
    wcs = output_grid(first.wcs, first.wcsinfo, [footprint(m.wcs, m.shape) for m in members],
                      params)
    scale, ratio = grid_scale(first.wcs, first.wcsinfo, params)
    return Grid(wcs, tuple(int(n) for n in wcs.array_shape), float(scale), float(ratio))


save_grid = write_grid
load_grid = read_grid


def _geometries(members: Sequence[MemberFiles]) -> list[MemberGeometry]:
    return [member_geometry(m.cal, m.wcs, m.geometry) for m in members]


def write_footprints(path: str | Path, members: Sequence[MemberFiles],
                     stepsize: int | None) -> None:
    """Write every member's sky footprint (JSON, :func:`~image3.footprints.footprints_table`);
    ``stepsize``: skymatch's, pixels between the points along each edge (None: the corners)."""
    table = footprints_table({m.name: (m.group_id, g.wcs, g.shape)
                              for m, g in zip(members, _geometries(members))}, stepsize=stepsize)
    atomic_write_text(path, table)
    log.info("footprints of %d members", len(members))


def write_output_grid(path: str | Path, members: Sequence[MemberFiles],
                      params: OutputGrid, shape_path: str | Path,
                      keep_in: str | Path | None = None, reserve: int = 0,
                      refit: bool = False) -> Grid:
    """Build the grid of ``params`` (:func:`build_grid`) for ``members`` and write it, and its
    shape as JSON ``{"shape": [ny, nx]}`` at ``shape_path`` (what the jobs on that grid ask for
    in memory is computed from it, :mod:`image3.runtime.resources`).

    A tiled run's grid (``keep_in``, its work folder): the default grid grows by ``reserve``
    pixels on every side (room for members added later; no tile is made where no member is),
    and is kept (:mod:`image3.kept`); the next run with the same parameters writes the kept
    grid byte for byte when every member's footprint lies inside it, so the tiles keep their
    names and windows, else a new one (every tile is then redone); ``refit``: a new one
    whatever was kept."""
    geometries = _geometries(members)
    settings = {"grid": asdict(params), "reserve": reserve}
    inputs = {"grid": [params.output_wcs] if params.output_wcs else []}
    grid = None if refit else _kept_grid(keep_in, settings, inputs, geometries, path)
    if grid is None:
        grid = build_grid(geometries, params)
        if reserve and not params.output_wcs:
            ny, nx = grid.shape
            grid = grid_window(grid, (-reserve, ny + reserve, -reserve, nx + reserve))
        save_grid(path, grid)
        if keep_in is not None:
            keep_files(keep_in, "grid", settings, {"grid": path}, inputs)
    atomic_write_text(shape_path, json.dumps({"shape": [int(n) for n in grid.shape]}) + "\n")
    log.info("%s: %d x %d pixels at %.4f arcsec", Path(path).name, grid.shape[1], grid.shape[0],
             grid.pixel_scale_arcsec)
    return grid


def _kept_grid(keep_in, settings, inputs, geometries: Sequence[MemberGeometry],
               path) -> Grid | None:
    """The kept grid (copied to ``path``) if it holds every member's footprint, else None."""
    kept = kept_files(keep_in, "grid", settings, inputs) if keep_in is not None else {}
    if not kept:
        return None
    grid = load_grid(kept["grid"])
    boxes = member_boxes(grid, {k: footprint(g.wcs, g.shape) for k, g in enumerate(geometries)})
    ny, nx = grid.shape
    if not all(b0 >= 0 and c0 >= 0 and b1 <= ny and c1 <= nx
               for b0, b1, c0, c1 in boxes.values()):
        log.warning("members lie beyond the tile frame of the previous run: a new frame, every "
                    "tile is made again (tiles.reserve keeps more room around a mosaic)")
        return None
    shutil.copyfile(kept["grid"], path)
    log.info("the tile frame of the previous run holds every member: kept")
    return grid


def write_grid_tiles(path: str | Path, grid_path: str | Path, footprints_path: str | Path,
                     size: int, margin: int) -> str:
    """Write the sky tiles (:mod:`image3.tiles`) of the grid at ``grid_path`` that the members
    of ``footprints_path`` (:func:`write_footprints`) meet; returns a summary."""
    grid = load_grid(grid_path)
    every = tile_layout(grid.shape, size, margin)
    tiles = assign_members(every, member_boxes(grid, member_footprints(footprints_path)))
    write_tiles(path, tiles)
    ny, nx = grid.shape
    return (f"{len(tiles)} tiles of {size}² pixels (margin {margin}) over the {nx} x {ny} grid"
            f" ({len(every) - len(tiles)} without any member left out); at most "
            f"{max((len(t.members) for t in tiles), default=0)} members per tile")
