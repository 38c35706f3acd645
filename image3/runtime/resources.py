"""Memory and time asked for by the jobs whose arrays span the output grid (or a sky tile of it),
from its size and the members they read.

A job's ``mem_mb`` is what a cluster scheduler reserves (sbatch ``--mem``) and what Snakemake
counts against ``--resources mem_mb``. Jobs that hold one exposure use fixed requests (their
rules say what they measured); the final resample, the catalogue and the outlier median hold
planes of the output grid, so their request follows its pixel count. Snakemake evaluates these
when the job is ready to run, once the grid (or the ``_i2d``) exists.

Measured peak RSS (6 dithered NIRCam exposures, --cores 2, 2026-12-05), output grid 1.55 and
6.2 million pixels: resample 210 / 512 MB (65 B per pixel + 110 MB), source_catalog 248 / 588 MB
(73 B per pixel + 135 MB; more with more sources), median 164 / 183 MB (4 B per pixel + 158
MB, with its 16-MB block of singles). The requests below are ~1.5-2x those slopes plus room for
the interpreter and libraries.

A job's ``runtime`` (minutes, sbatch ``-t``) is 10 minutes plus ~10x its measured rate (same
runs: the catalogue 0.9 s per million pixels; the resample from the flag jobs' contributions
0.3 s per million pixels, drizzling a 2048² member itself ~3 s; the median 0.3 s per million
pixels for 6 singles), so that a slow node is not killed and a small job is not queued as long.
"""

from __future__ import annotations

import json
from pathlib import Path

from astropy.io import fits

__all__ = ["DEFAULT_MEM_MB", "background_boxes_mem_mb", "background_boxes_runtime_min",
           "catalog_mem_mb", "catalog_runtime_min", "grid_pixels", "grid_shape",
           "image_pixels", "median_mem_mb", "median_runtime_min", "resample_mem_mb",
           "resample_runtime_min"]

#: Asked for when the grid's size is not known yet (a dry run).
DEFAULT_MEM_MB = 2000


def grid_shape(shape_path: str | Path) -> tuple[int, int]:
    """(ny, nx) of the grid whose shape file (``image3.grid.write_output_grid``) is at
    ``shape_path``."""
    ny, nx = json.loads(Path(shape_path).read_text())["shape"]
    return int(ny), int(nx)


def grid_pixels(shape_path: str | Path) -> int | None:
    """Pixels of the grid whose shape file is at ``shape_path`` (:func:`grid_shape`); None if
    it is not written yet."""
    try:
        ny, nx = grid_shape(shape_path)
    except (OSError, ValueError, KeyError):
        return None
    return ny * nx


def image_pixels(fits_path: str | Path, extension: str = "SCI") -> int | None:
    """Pixels of a FITS image extension, from its header; None if the file is not there yet."""
    try:
        header = fits.getheader(fits_path, extension)
    except (OSError, KeyError):
        return None
    return int(header.get("NAXIS1", 0)) * int(header.get("NAXIS2", 0))


def _request(pixels: int | None, base_mb: float, bytes_per_pixel: float) -> int:
    if pixels is None:
        return DEFAULT_MEM_MB
    return int(base_mb + bytes_per_pixel * pixels / 1e6)


def resample_mem_mb(pixels: int | None) -> int:
    """The final resample: ~44 bytes of sums per output pixel, the i2d planes, one member's
    contribution."""
    return _request(pixels, 500, 100)


def catalog_mem_mb(pixels: int | None) -> int:
    """The catalogue of an i2d of ``pixels``: background, convolved image, segmentation,
    deblending and measurements."""
    return _request(pixels, 600, 150)


def background_boxes_mem_mb(pixels: int | None) -> int:
    """The background statistics of the boxes over ``pixels``: the data, error and mask, and
    one tile's part of SCI, ERR and WHT being read."""
    return _request(pixels, 400, 40)


def median_mem_mb(pixels: int | None) -> int:
    """The outlier median on a grid of ``pixels``: a block of single rows, the median and count
    planes."""
    return _request(pixels, 400, 20)


#: Asked for when the grid's size is not known yet (a dry run), minutes.
DEFAULT_RUNTIME_MIN = 30


def _minutes(pixels: int | None, per_mpix_s: float, extra_s: float = 0.0) -> int:
    if pixels is None:
        return DEFAULT_RUNTIME_MIN
    return int(10 + 10 * (per_mpix_s * pixels / 1e6 + extra_s) / 60 + 0.999)


def resample_runtime_min(pixels: int | None, members: int, drizzled_here: bool) -> int:
    """The final resample of ``members`` onto ``pixels``: adding their contributions, or
    drizzling each itself (``drizzled_here``: without outlier detection)."""
    return _minutes(pixels, 0.3, members * (3.0 if drizzled_here else 0.1))


def catalog_runtime_min(pixels: int | None) -> int:
    """The catalogue of an i2d of ``pixels``."""
    return _minutes(pixels, 0.9)


def background_boxes_runtime_min(pixels: int | None) -> int:
    """The background statistics of the boxes over ``pixels``."""
    return _minutes(pixels, 0.5)


def median_runtime_min(pixels: int | None, singles: int) -> int:
    """The median of ``singles`` single images on ``pixels``."""
    return _minutes(pixels, 0.05 * singles)
