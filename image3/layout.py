"""The association's layout: every member's sky footprint (for skymatch) and the output
grid(s) (for outlier detection and resample), from one read of each member's gwcs.

Written by the tweakreg job right after the alignment when tweakreg runs (the corrected gwcs
sidecars are then on disk; one process less on the serial path between the per-member
phases: 1.5-2.5 s of imports and start-up here), by its own ``layout`` job otherwise.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence

from .datamodel import atomic_write_text
from .grid import build_grid, member_geometry, save_grid
from .parameters import OutputGrid
from .skymatch import footprints_table

log = logging.getLogger(__name__)


def write_layout(members: Sequence[Mapping], footprints_path: str,
                 grid_paths: Mapping[str, str], grid_params: Mapping[str, dict],
                 stepsize: int | None) -> None:
    """Write the footprints (JSON, :func:`~image3.skymatch.footprints_table`) and each grid
    of ``grid_paths`` (name -> path, built with ``grid_params[name]``, an
    :class:`~image3.parameters.OutputGrid`'s keys).

    ``members``: rows with ``member``, ``group_id``, ``cal`` and the ``wcs`` (corrected gwcs)
    and ``geometry`` sidecars, each empty where it does not exist (the _cal is read instead).
    """
    geometry = [member_geometry(row["cal"], row["wcs"] or None, row["geometry"] or None)
                for row in members]
    atomic_write_text(footprints_path, footprints_table(
        {row["member"]: (row["group_id"], g.wcs, g.shape) for row, g in zip(members, geometry)},
        stepsize=stepsize))
    log.info("footprints of %d members", len(members))
    for name, path in grid_paths.items():
        grid = build_grid(geometry, OutputGrid.from_config(grid_params[name]))
        save_grid(path, grid)
        log.info("%s: %d x %d pixels at %.4f arcsec", name, grid.shape[1], grid.shape[0],
                 grid.pixel_scale_arcsec)
