"""QA plots: what a user looks at after a run.

Each ``plot_*`` function draws on a matplotlib :class:`~matplotlib.figure.Figure` made by
:func:`new_figure` from arrays and tables, and returns its axes. Each job of rules/qa.smk is
one ``write_*`` function: it reads the job's files, draws the figure, writes it with
:func:`save_figure` (PNG, Agg, no pyplot state, atomically) and returns the line the job logs;
:func:`write_parameter_table` writes the run's parameters as an HTML table. Figures have fixed
sizes (``FIGURE_INCHES`` at ``DPI``), so a PNG is ``inches × DPI`` pixels whatever the data.

Conventions:

- Pixel coordinates are 0-based with the first pixel's centre at 0.0, (x, y) = (column, row),
  as everywhere in image3. Large images are shown as block means of ``factor × factor`` pixels
  (:func:`block_mean`, read a band of rows at a time, so memory is one band plus the result);
  a pixel position maps to the displayed image by :func:`to_display`.
- Images use an asinh stretch between the 1st and 99.8th percentiles of the finite values
  (:func:`image_norm`): faint sky noise and bright star cores are both visible.
- Sky positions are (RA, Dec) in degrees; tweakreg residuals are in arcsec on the sky
  (east, north), drawn in mas; sky levels in MJy/sr.
- Members and groups are labelled by their names without the prefix they all share
  (:func:`short_names`), and every plot gives a group the same colour (:func:`group_colours`).
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import numpy as np
from astropy.io import fits
from astropy.table import Table
from astropy.visualization import AsinhStretch, AsymmetricPercentileInterval, ImageNormalize
from astropy.wcs import WCS
from matplotlib import colormaps
from matplotlib.figure import Figure
from matplotlib.patches import Polygon, Rectangle

from .datamodel import atomic_path, open_meta
from .dqflags import DO_NOT_USE, OUTLIER
from .grid import load_grid
from .median import median_extent, read_median_window
from .skymatch import read_sky_stats
from .tiles import Tile, read_tiles

__all__ = [
    "DPI",
    "FIGURE_INCHES",
    "MAX_DISPLAY_PIXELS",
    "block_mean",
    "catalog_quantities",
    "display_factor",
    "group_colours",
    "image_norm",
    "new_figure",
    "outlier_positions",
    "plot_catalog",
    "plot_mosaic",
    "plot_outliers",
    "plot_sky_levels",
    "plot_tweakreg",
    "polygons_to_display",
    "read_display_image",
    "save_figure",
    "short_names",
    "sky_before_after",
    "to_display",
    "write_catalog_figure",
    "write_mosaic_figure",
    "write_outlier_figure",
    "write_parameter_table",
    "write_skymatch_figure",
    "write_tweakreg_figure",
]

DPI = 100
#: (width, height) in inches of each figure.
FIGURE_INCHES = {
    "mosaic": (8.0, 8.0),
    "tweakreg": (15.0, 5.0),
    "skymatch": (10.0, 5.0),
    "outliers": (13.0, 6.0),
    "catalog": (15.0, 5.0),
    "bands": (15.0, 7.0),
}
#: Length of the key arrow of the tweakreg residuals, as a fraction of the panel's width.
RESIDUAL_KEY_WIDTH = 0.08
#: Footprint legends list the groups when there are at most this many.
MAX_LEGEND_GROUPS = 12
#: Sources compared between bands: isophotal S/N above this, matched within
#: BAND_MATCH_ARCSEC (wide enough to show bands left misaligned).
BAND_MIN_SNR = 50.0
BAND_MATCH_ARCSEC = 0.5
#: Longest side [pixels] of a displayed image: larger images are block-averaged down to it.
MAX_DISPLAY_PIXELS = 1024

# block_mean reads bands of about this many rows (whole blocks; one block when it is taller).
_BAND_ROWS = 64


# --------------------------------------------------------------------------------------------
# Figures and images


def new_figure(kind: str) -> Figure:
    """An empty figure of the size for ``kind`` (a key of :data:`FIGURE_INCHES`)."""
    return Figure(figsize=FIGURE_INCHES[kind], dpi=DPI, layout="constrained")


def save_figure(fig: Figure, path: str | Path) -> None:
    """Write ``fig`` as a PNG of exactly its size × :data:`DPI`, atomically."""
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=DPI, format="png")


def display_factor(shape: Sequence[int], max_pixels: int = MAX_DISPLAY_PIXELS) -> int:
    """The block size that brings the longer side of ``shape`` (ny, nx) to ≤ ``max_pixels``."""
    return max(1, math.ceil(max(shape) / max_pixels))


def block_mean(read_rows: Callable[[int, int], np.ndarray], shape: Sequence[int],
               factor: int) -> np.ndarray:
    """Mean of the finite values in ``factor × factor`` blocks of an (ny, nx) image.

    ``read_rows(y0, y1)`` returns rows ``y0:y1`` (all columns); bands of whole blocks are read
    one after another. Edge blocks average the pixels they have; blocks without a finite value
    are NaN. Result shape: (ceil(ny / factor), ceil(nx / factor)).
    """
    ny, nx = shape
    out_ny, out_nx = math.ceil(ny / factor), math.ceil(nx / factor)
    out = np.full((out_ny, out_nx), np.nan, dtype=np.float32)
    band_blocks = max(1, _BAND_ROWS // factor)
    for b0 in range(0, out_ny, band_blocks):
        b1 = min(out_ny, b0 + band_blocks)
        rows = np.asarray(read_rows(b0 * factor, min(ny, b1 * factor)), dtype=np.float64)
        padded = np.full(((b1 - b0) * factor, out_nx * factor), np.nan)
        padded[:rows.shape[0], :nx] = rows
        blocks = padded.reshape(b1 - b0, factor, out_nx, factor)
        finite = np.isfinite(blocks)
        count = finite.sum(axis=(1, 3))
        total = np.where(finite, blocks, 0.0).sum(axis=(1, 3))
        with np.errstate(invalid="ignore", divide="ignore"):
            out[b0:b1] = np.where(count > 0, total / count, np.nan)
    return out


def read_display_image(path: str | Path, extname: str = "SCI") -> tuple[np.ndarray, int, object]:
    """A FITS image extension block-averaged for display (read a band of rows at a time).

    Returns (image, factor, header): the header carries the image's FITS WCS (the _i2d's TAN
    header) for :func:`polygons_to_display`.
    """
    with fits.open(path, memmap=True) as hdul:
        hdu = hdul[extname]
        factor = display_factor(hdu.shape)
        image = block_mean(lambda y0, y1: hdu.section[y0:y1, :], hdu.shape, factor)
        return image, factor, hdu.header.copy()


def tiles_extent(tiles: Sequence[Tile]) -> tuple[int, int, int, int]:
    """(y0, y1, x0, x1) of the grid that the tiles' inner regions span (the rest of a tiled
    grid is room for members added later)."""
    return (min(t.inner[0] for t in tiles), max(t.inner[1] for t in tiles),
            min(t.inner[2] for t in tiles), max(t.inner[3] for t in tiles))


def read_tiled_display_image(paths: Sequence[str | Path],
                             tiles: Sequence[Tile]) -> tuple[np.ndarray, int, object]:
    """:func:`read_display_image` of a mosaic made as sky tiles (``paths[k]``: the ``_i2d`` of
    ``tiles[k]``, :mod:`image3.tiles`) over the region the tiles span (:func:`tiles_extent`):
    each tile's own region, a band of rows at a time. The header is the first tile's FITS WCS
    moved to that region."""
    oy, ey, ox, ex = tiles_extent(tiles)
    factor = display_factor((ey - oy, ex - ox))

    def read_rows(y0, y1):
        band = np.full((y1 - y0, ex - ox), np.nan, dtype=np.float32)
        for path, tile in zip(paths, tiles, strict=True):
            iy0, iy1, ix0, ix1 = tile.inner
            a, b = max(y0 + oy, iy0), min(y1 + oy, iy1)
            if a < b:
                wy0, _, wx0, _ = tile.window
                with fits.open(path, memmap=True) as hdul:
                    band[a - oy - y0:b - oy - y0, ix0 - ox:ix1 - ox] = \
                        hdul["SCI"].section[a - wy0:b - wy0, ix0 - wx0:ix1 - wx0]
        return band

    image = block_mean(read_rows, (ey - oy, ex - ox), factor)
    header = fits.getheader(paths[0], "SCI")
    header["CRPIX1"] += tiles[0].window[2] - ox
    header["CRPIX2"] += tiles[0].window[0] - oy
    return image, factor, header


def to_display(x, y, factor: int) -> tuple[np.ndarray, np.ndarray]:
    """Pixel positions (0-based) → positions on the image block-averaged by ``factor``."""
    return ((np.asarray(x, dtype=float) + 0.5) / factor - 0.5,
            (np.asarray(y, dtype=float) + 0.5) / factor - 0.5)


def image_norm(image: np.ndarray) -> ImageNormalize:
    """Asinh stretch between the 1st and 99.8th percentiles of the finite values."""
    finite = image[np.isfinite(image)]
    if finite.size == 0:
        finite = np.zeros(1)
    return ImageNormalize(finite, interval=AsymmetricPercentileInterval(1.0, 99.8),
                          stretch=AsinhStretch(0.1))


def short_names(names: Sequence[str]) -> list[str]:
    """``names`` without the prefix they all share, cut after an underscore
    (``jw..._00001_nrcb1``, ``jw..._00002_nrcb1`` → ``00001_nrcb1``, ``00002_nrcb1``)."""
    names = [str(n) for n in names]
    if len(names) < 2:
        return names
    cut = os.path.commonprefix(names).rfind("_") + 1
    return [n[cut:] or n for n in names]


def group_colours(groups: Sequence[str]) -> dict[str, tuple]:
    """One colour per distinct group id, in order of first appearance (tab10, cycled)."""
    palette = colormaps["tab10"].colors
    distinct = list(dict.fromkeys(groups))
    return {g: palette[i % len(palette)] for i, g in enumerate(distinct)}


def _show_image(ax, image: np.ndarray) -> None:
    ax.imshow(image, origin="lower", cmap="gray", norm=image_norm(image),
              interpolation="nearest")
    ax.set_xlabel("x [display pixel]")
    ax.set_ylabel("y [display pixel]")


def _empty(ax, text: str) -> None:
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes)


# --------------------------------------------------------------------------------------------
# Mosaic and footprints


def polygons_to_display(polygons: Mapping[str, np.ndarray],
                        world_to_pixel: Callable, factor: int) -> dict[str, np.ndarray]:
    """Sky polygons ({name: (N, 2) (ra, dec) degrees}) as (N, 2) display positions.

    ``world_to_pixel(ra, dec)`` returns the image's 0-based (x, y) (e.g. an astropy WCS's or a
    gwcs's ``world_to_pixel_values``).
    """
    out = {}
    for name, polygon in polygons.items():
        polygon = np.asarray(polygon, dtype=float)
        x, y = world_to_pixel(polygon[:, 0], polygon[:, 1])
        out[name] = np.column_stack(to_display(x, y, factor))
    return out


def _draw_footprints(ax, footprints: Mapping[str, np.ndarray], groups: Mapping[str, str],
                     legend: bool) -> None:
    """Outlines, one colour per group; with ``legend``, one legend entry per group (up to
    :data:`MAX_LEGEND_GROUPS`)."""
    colours = group_colours([groups[m] for m in footprints])
    names = dict(zip(colours, short_names(list(colours))))
    labelled = set()
    for member, vertices in footprints.items():
        group = groups[member]
        label = names[group] if group not in labelled else None
        labelled.add(group)
        ax.add_patch(Polygon(vertices, closed=True, fill=False, edgecolor=colours[group],
                             lw=1.2, label=label))
    if legend and 0 < len(colours) <= MAX_LEGEND_GROUPS:
        ax.legend(title="exposure group", fontsize=8, loc="upper right", framealpha=0.7)


def plot_mosaic(fig: Figure, image: np.ndarray, footprints: Mapping[str, np.ndarray],
                groups: Mapping[str, str], title: str = "",
                tiles: Mapping[str, tuple[float, float, float, float]] | None = None) -> object:
    """The mosaic (block-averaged SCI, MJy/sr) with every member's footprint drawn.

    ``footprints`` maps member names to (N, 2) display positions of their outline
    (:func:`polygons_to_display`), ``groups`` member names to group ids (one colour each);
    ``tiles`` sky tile names to their (x0, y0, x1, y1) display edges, drawn dashed and named.
    """
    ax = fig.add_subplot()
    _show_image(ax, image)
    _draw_footprints(ax, footprints, groups, legend=True)
    for name, (x0, y0, x1, y1) in (tiles or {}).items():
        ax.add_patch(Rectangle((x0, y0), x1 - x0, y1 - y0, fill=False, edgecolor="white",
                               lw=0.8, ls="--"))
        ax.text(x0 + 2, y1 - 2, name, color="white", fontsize=6, va="top")
    ax.set_title(title or f"mosaic and the footprints of {len(footprints)} members")
    return ax


# --------------------------------------------------------------------------------------------
# tweakreg


def _nice_length(values_mas: np.ndarray) -> float:
    """A round arrow length [mas] near the 90th percentile of ``values_mas``."""
    typical = float(np.percentile(values_mas, 90)) if values_mas.size else 1.0
    if not typical > 0:
        return 1.0
    power = 10.0 ** math.floor(math.log10(typical))
    return min((m * power for m in (1, 2, 5, 10)), key=lambda v: abs(math.log(v / typical)))


def plot_tweakreg(fig: Figure, report: Table, residuals: Table) -> tuple:
    """Residual vectors of matched stars, and each group's shift and rotation.

    ``report`` is tweakreg's report table (``stage``, ``group_id``, ``status``, ``applied``,
    ``rms_arcsec``, ``shift_x_arcsec``, ``shift_y_arcsec``, ``rotation_deg``);
    ``residuals`` the matched-star table of :func:`image3.tweakreg.match_residuals`. Panels:
    residual vectors at the stars' sky positions (east to the left; arrows magnified, key in
    mas; pairs the fit's clipping rejects in grey, left out of the RMS), the fitted shift of
    every group whose fit was applied (arcsec, in the reference V2V3 tangent plane), and the
    fitted rotation per group with the fit RMS in mas.
    """
    ax_res, ax_shift, ax_rot = fig.subplots(1, 3)
    groups = list(dict.fromkeys(report["group_id"])) or list(dict.fromkeys(residuals["group_id"]))
    colours = group_colours(groups + list(residuals["group_id"]))
    names = dict(zip(groups, short_names(groups)))

    if len(residuals):
        d_mas = 1000.0 * np.hypot(residuals["d_east_arcsec"], residuals["d_north_arcsec"])
        kept = ~np.asarray(residuals["clipped"], dtype=bool)
        key = _nice_length(d_mas[kept])
        # arrows of the key's length span RESIDUAL_KEY_WIDTH of the panel, whatever the data
        arrow_colours = [colours[g] if k else "0.6"
                         for g, k in zip(residuals["group_id"], kept)]
        quiver = ax_res.quiver(residuals["east_arcsec"], residuals["north_arcsec"],
                               1000.0 * residuals["d_east_arcsec"],
                               1000.0 * residuals["d_north_arcsec"], color=arrow_colours,
                               angles="uv", scale_units="width",
                               scale=key / RESIDUAL_KEY_WIDTH, width=0.004)
        ax_res.quiverkey(quiver, 0.12, 0.04, key, f"{key:g} mas", labelpos="E",
                         coordinates="axes")
        rms = math.sqrt(np.mean(np.square(d_mas[kept]))) if kept.any() else math.nan
        ax_res.set_title(f"{len(residuals)} matched stars, RMS {rms:.1f} mas "
                         f"({np.count_nonzero(~kept)} clipped, grey)", loc="left")
        ax_res.invert_xaxis()
        ax_res.set_aspect("equal", adjustable="datalim")
    else:
        _empty(ax_res, "no matched stars")
    ax_res.set_xlabel("east [arcsec]")
    ax_res.set_ylabel("north [arcsec]")

    applied = report[report["applied"]]
    for row in applied:
        colour = colours[row["group_id"]]
        ax_shift.annotate("", xy=(row["shift_x_arcsec"], row["shift_y_arcsec"]), xytext=(0, 0),
                          arrowprops={"arrowstyle": "->", "color": colour, "lw": 1.5})
        ax_shift.plot(row["shift_x_arcsec"], row["shift_y_arcsec"], "o", color=colour)
        ax_shift.annotate(f" {names.get(row['group_id'], row['group_id'])} ({row['stage']})",
                          (row["shift_x_arcsec"], row["shift_y_arcsec"]), fontsize=8)
    ax_shift.plot(0, 0, "k+")
    ax_shift.set_xlabel("shift x [arcsec]")
    ax_shift.set_ylabel("shift y [arcsec]")
    ax_shift.set_title(f"shifts of the {len(applied)} applied fits", loc="left")
    if not len(applied):
        _empty(ax_shift, "no fit applied")

    labels, rotations, bar_colours, notes = [], [], [], []
    for row in report:
        labels.append(f"{names.get(row['group_id'], row['group_id'])}\n{row['stage']}")
        rotations.append(row["rotation_deg"] if np.isfinite(row["rotation_deg"]) else 0.0)
        bar_colours.append(colours[row["group_id"]])
        status = str(row["status"]).split(":", 1)[0]
        notes.append(f"RMS {1000.0 * row['rms_arcsec']:.1f} mas" if row["applied"] else status)
    positions = np.arange(len(labels))
    ax_rot.bar(positions, rotations, color=bar_colours)
    for x, rotation, note in zip(positions, rotations, notes):
        ax_rot.annotate(note, (x, rotation), ha="center", va="bottom", fontsize=8)
    ax_rot.set_xticks(positions, labels, fontsize=8)
    ax_rot.set_ylabel("rotation [deg]")
    ax_rot.set_title("fitted rotation per group", loc="left")
    return ax_res, ax_shift, ax_rot


# --------------------------------------------------------------------------------------------
# skymatch


def sky_before_after(stats: Mapping[str, Mapping], records: Mapping[str, Mapping]) -> Table:
    """Per member: its own sky before matching and after the matched level is removed.

    ``stats`` are the members' sky statistics (``work/<member>/skystats.json``: ``group``,
    ``local.sky``), ``records`` their skymatch records (``sky.json``: ``level``, ``method``,
    ``status``). Columns (MJy/sr, NaN where not computed): ``before`` = the member's local sky
    statistic, ``level`` = the level skymatch assigns (subtracted downstream), ``after`` =
    ``before - level``.
    """
    rows = []
    for member, record in records.items():
        local = stats[member]["local"]["sky"]
        before = math.nan if local is None else float(local)
        level = math.nan if record["level"] is None else float(record["level"])
        rows.append((member, stats[member]["group"], record["method"], record["status"],
                     before, level, before - level))
    return Table(rows=rows or None, names=("member", "group_id", "method", "status", "before",
                                           "level", "after"),
                 dtype=(str, str, str, str, float, float, float))


def plot_sky_levels(fig: Figure, table: Table) -> object:
    """Bars per member: sky before matching and after removing the level (MJy/sr).

    ``table`` is :func:`sky_before_after`'s. After ``match`` the absolute levels stay (only
    differences are removed), so exposures agree where they overlap, not on zero.
    """
    ax = fig.add_subplot()
    positions = np.arange(len(table))
    width = 0.4
    colours = group_colours(list(table["group_id"]))
    edge = [colours[g] for g in table["group_id"]]
    ax.bar(positions - width / 2, table["before"], width, label="before (own sky)",
           color="0.75", edgecolor=edge, lw=1.5)
    ax.bar(positions + width / 2, table["after"], width, label="after (level removed)",
           color="tab:blue", edgecolor=edge, lw=1.5)
    for x, row in zip(positions, table):
        note = f"{row['level']:.4g}" if np.isfinite(row["level"]) else str(row["status"])
        ax.annotate(note, (x + width / 2, row["after"] if np.isfinite(row["after"]) else 0.0),
                    ha="center", va="bottom", fontsize=8)
    ax.set_xticks(positions, short_names(list(table["member"])), rotation=30, ha="right",
                  fontsize=8)
    ax.set_ylabel("sky [MJy/sr]")
    methods = ", ".join(sorted(set(table["method"]))) or "none"
    ax.set_title(f"sky per member before and after skymatch ({methods}); numbers: level removed",
                 loc="left")
    ax.legend(loc="lower right")
    return ax


# --------------------------------------------------------------------------------------------
# Outliers


def outlier_positions(cal_dq: np.ndarray, crf_dq: np.ndarray, pixel_to_world: Callable,
                      world_to_pixel: Callable) -> tuple[np.ndarray, np.ndarray]:
    """Positions of the pixels outlier detection flagged in one exposure, on another image.

    Newly flagged = OUTLIER set in the ``_crf``'s DQ where the ``_cal``'s DQ lacked
    DO_NOT_USE (what the flag job counts). ``pixel_to_world(x, y)`` is the exposure's WCS
    (0-based pixels → RA, Dec degrees), ``world_to_pixel(ra, dec)`` the target image's.
    Returns the target's 0-based (x, y).
    """
    new = ((crf_dq & OUTLIER) != 0) & ((cal_dq & DO_NOT_USE) == 0)
    y, x = np.nonzero(new)
    if x.size == 0:
        return np.empty(0), np.empty(0)
    ra, dec = pixel_to_world(x.astype(float), y.astype(float))
    tx, ty = world_to_pixel(np.asarray(ra), np.asarray(dec))
    return np.asarray(tx, dtype=float), np.asarray(ty, dtype=float)


def plot_outliers(fig: Figure, counts: Mapping[str, int], positions: Mapping[str, tuple],
                  image: np.ndarray, footprints: Mapping[str, np.ndarray],
                  groups: Mapping[str, str]) -> tuple:
    """Outliers flagged per member (bars) and where they are (map).

    ``counts`` maps members to their newly flagged pixels; ``positions`` maps members to
    display (x, y) arrays of those pixels on ``image`` (the block-averaged median the
    exposures were compared with); ``footprints`` the members' outlines in the same display
    positions; ``groups`` member → group id (colours).
    """
    grid = fig.add_gridspec(1, 5)
    ax_bar = fig.add_subplot(grid[0, :2])
    ax_map = fig.add_subplot(grid[0, 2:])
    members = list(counts)
    colours = group_colours([groups[m] for m in members])
    bar_positions = np.arange(len(members))
    ax_bar.bar(bar_positions, [counts[m] for m in members],
               color=[colours[groups[m]] for m in members])
    for x, m in zip(bar_positions, members):
        ax_bar.annotate(str(counts[m]), (x, counts[m]), ha="center", va="bottom", fontsize=8)
    ax_bar.set_xticks(bar_positions, short_names(members), rotation=30, ha="right", fontsize=8)
    ax_bar.set_ylabel("pixels flagged")
    ax_bar.set_title(f"{sum(counts.values())} outlier pixels flagged", loc="left")

    _show_image(ax_map, image)
    _draw_footprints(ax_map, footprints, groups, legend=False)
    for member in members:
        x, y = positions.get(member, (np.empty(0), np.empty(0)))
        ax_map.scatter(x, y, s=2, color=colours[groups[member]], marker="s", lw=0,
                       rasterized=True)
    ax_map.set_xlim(-0.5, image.shape[1] - 0.5)
    ax_map.set_ylim(-0.5, image.shape[0] - 0.5)
    ax_map.set_title("newly flagged pixels on the median image", loc="left")
    return ax_bar, ax_map


# --------------------------------------------------------------------------------------------
# Source catalogue


def catalog_quantities(catalog: Table, aperture_ee: Sequence[int] = (30, 50, 70)) -> dict:
    """What :func:`plot_catalog` shows, from a ``_cat.ecsv`` table.

    ``x``, ``y`` (0-based mosaic pixels), ``magnitude`` (``aper_total_abmag``, AB mag),
    ``concentration`` (``CI_<ee3>_<ee1>``, the widest concentration index, with its column
    name) and ``extended`` (``is_extended``). A catalogue without sources (a ``label`` column
    and no rows) gives empty arrays.
    """
    ee1, _, ee3 = aperture_ee
    ci_name = f"CI_{ee3}_{ee1}"
    n = len(catalog)

    def column(name, dtype):
        if name not in catalog.colnames:
            return np.full(n, np.nan if dtype is float else False, dtype=dtype)
        return np.asarray(getattr(catalog[name], "value", catalog[name]), dtype=dtype)

    return {"x": column("xcentroid", float), "y": column("ycentroid", float),
            "magnitude": column("aper_total_abmag", float),
            "concentration": column(ci_name, float), "concentration_name": ci_name,
            "extended": column("is_extended", bool)}


def plot_catalog(fig: Figure, image: np.ndarray, x, y, magnitude, concentration, extended,
                 magnitude_name: str = "AB mag", concentration_name: str = "CI") -> tuple:
    """Catalogue sources on the mosaic, their magnitude histogram, magnitude vs concentration.

    ``x``, ``y`` are display positions (:func:`to_display` of the catalogue's 0-based
    centroids); ``magnitude`` (AB mag, NaN where the flux is not positive), ``concentration``
    (a concentration index, flux ratio of two apertures) and ``extended`` (bool) per source.
    Point sources are drawn in one colour, extended ones in another.
    """
    ax_map, ax_hist, ax_ci = fig.subplots(1, 3)
    magnitude = np.asarray(magnitude, dtype=float)
    concentration = np.asarray(concentration, dtype=float)
    extended = np.asarray(extended, dtype=bool)
    kinds = ((~extended, "point", "tab:cyan"), (extended, "extended", "tab:orange"))

    _show_image(ax_map, image)
    for keep, label, colour in kinds:
        ax_map.scatter(np.asarray(x)[keep], np.asarray(y)[keep], s=30, facecolors="none",
                       edgecolors=colour, lw=0.8, label=f"{label} ({keep.sum()})")
    ax_map.set_title(f"{len(magnitude)} catalogue sources", loc="left")
    if len(magnitude):
        ax_map.legend(loc="upper right", fontsize=8)

    finite = np.isfinite(magnitude)
    if finite.any():
        low, high = np.floor(magnitude[finite].min()), np.ceil(magnitude[finite].max())
        bins = np.arange(low, high + 0.25, 0.25)
        ax_hist.hist([magnitude[finite & keep] for keep, _, _ in kinds], bins=bins,
                     stacked=True, color=[c for _, _, c in kinds],
                     label=[label for _, label, _ in kinds])
        ax_hist.legend(fontsize=8)
    else:
        _empty(ax_hist, "no finite magnitude")
    ax_hist.set_xlabel(magnitude_name)
    ax_hist.set_ylabel("sources per 0.25 mag")

    for keep, label, colour in kinds:
        ax_ci.scatter(magnitude[keep], concentration[keep], s=8, color=colour, label=label)
    ax_ci.set_xlabel(magnitude_name)
    ax_ci.set_ylabel(concentration_name)
    shown = concentration[np.isfinite(concentration)]
    if shown.size:
        low, high = np.percentile(shown, [1, 99])
        pad = 0.1 * max(high - low, 0.1)
        ax_ci.set_ylim(low - pad, high + pad)
    ax_ci.set_title("concentration index vs magnitude", loc="left")
    return ax_map, ax_hist, ax_ci


# --------------------------------------------------------------------------------------------
# The jobs of rules/qa.smk: each reads its files, writes its figure or table atomically and
# returns the line it logs.

#: Cell borders and padding of the parameter table.
PARAMETER_TABLE_CSS = ("table {border-collapse: collapse; font-family: sans-serif; font-size: 90%} "
                       "td, th {border: 1px solid #ccc; padding: 2px 8px; text-align: left}")


def _read_footprints(path: str | Path) -> tuple[dict[str, list], dict[str, str]]:
    """The footprints file (:func:`image3.footprints.footprints_table`) as ({member: sky
    polygon, (N, 2) RA, Dec degrees}, {member: group id})."""
    members = json.loads(Path(path).read_text())
    return ({m: e["polygon"] for m, e in members.items()},
            {m: e["group"] for m, e in members.items()})


def write_parameter_table(rows: Sequence[Sequence[str]], output: str | Path) -> str:
    """Write every step parameter of the run and where its value came from as an HTML table.

    ``rows`` are (step, parameter, value, source) of
    :func:`image3.config.parameter_sources`; the summary names those not at their default.
    """
    table = Table(rows=rows, names=("step", "parameter", "value", "source"))
    with atomic_path(output) as tmp:
        table.write(tmp, format="ascii.html", overwrite=True,
                    htmldict={"css": PARAMETER_TABLE_CSS})
    changed = [f"{step}.{key}={value} ({source})" for step, key, value, source in rows
               if source != "default"]
    return (f"wrote {output}: {len(rows)} parameters, {len(changed)} not the default: "
            f"{', '.join(changed) or 'none'}")


def write_mosaic_figure(i2d: str | Path, footprints: str | Path, output: str | Path) -> str:
    """The ``_i2d``'s SCI (block-averaged) with every member's footprint (the footprints file,
    placed by the ``_i2d``'s FITS WCS), as :func:`plot_mosaic` draws it."""
    image, factor, header = read_display_image(i2d)
    shown = _save_mosaic_figure(image, factor, header, footprints, output,
                                f"{Path(i2d).name} (1/{factor} scale)")
    return f"wrote {output}: mosaic {shown}"


def _save_mosaic_figure(image, factor: int, header, footprints: str | Path, output: str | Path,
                        title: str, tiles=None) -> str:
    """:func:`plot_mosaic` of a display image (its FITS ``header``, block ``factor``) with the
    footprints file's outlines, saved to ``output``; returns what it shows."""
    polygons, groups = _read_footprints(footprints)
    outlines = polygons_to_display(polygons, WCS(header).world_to_pixel_values, factor)
    fig = new_figure("mosaic")
    plot_mosaic(fig, image, outlines, groups, title=title, tiles=tiles)
    save_figure(fig, output)
    return (f"shown at 1/{factor} scale ({image.shape[1]} x {image.shape[0]}) with "
            f"{len(outlines)} member footprints")


def write_tiled_mosaic_figure(i2ds: Sequence[str | Path], tiles_path: str | Path,
                              footprints: str | Path, output: str | Path) -> str:
    """:func:`write_mosaic_figure` of a mosaic made as sky tiles: the tiles' ``_i2d``
    (``i2ds``, in the order of the tiles file at ``tiles_path``) over the region they span,
    each tile outlined and named."""
    tiles = read_tiles(tiles_path)
    image, factor, header = read_tiled_display_image(i2ds, tiles)
    oy, _, ox, _ = tiles_extent(tiles)
    edges = {t.name: ((t.inner[2] - ox) / factor - 0.5, (t.inner[0] - oy) / factor - 0.5,
                      (t.inner[3] - ox) / factor - 0.5, (t.inner[1] - oy) / factor - 0.5)
             for t in tiles}
    shown = _save_mosaic_figure(image, factor, header, footprints, output,
                                f"{len(tiles)} sky tiles (1/{factor} scale)", edges)
    return f"wrote {output}: mosaic of {len(tiles)} tiles {shown}"


def write_tweakreg_figure(report: str | Path, residuals: str | Path, output: str | Path) -> str:
    """tweakreg's report and matched-star residuals (ECSV files of
    :func:`image3.tweakreg.align_members`) as :func:`plot_tweakreg` draws them."""
    report = Table.read(report, format="ascii.ecsv")
    residuals = Table.read(residuals, format="ascii.ecsv")
    fig = new_figure("tweakreg")
    plot_tweakreg(fig, report, residuals)
    save_figure(fig, output)
    return (f"wrote {output}: {len(report)} group fits ({int(report['applied'].sum())} "
            f"applied), {len(residuals)} matched-star residuals")


def write_skymatch_figure(stats: Sequence[str | Path], sky: Sequence[str | Path],
                          members: Sequence[str], output: str | Path) -> str:
    """Each member's sky before and after skymatch (:func:`plot_sky_levels`), from the sky
    statistics files and the members' sky records (``sky``, in the order of ``members``)."""
    records = {m: json.loads(Path(p).read_text()) for m, p in zip(members, sky, strict=True)}
    table = sky_before_after(read_sky_stats(stats), records)
    fig = new_figure("skymatch")
    plot_sky_levels(fig, table)
    save_figure(fig, output)
    return (f"wrote {output}: sky after skymatch from {table['after'].min():.4g} to "
            f"{table['after'].max():.4g} MJy/sr over {len(table)} members")


def write_outlier_figure(median: str | Path, grid: str | Path, footprints: str | Path,
                         members: Sequence[Mapping], output: str | Path) -> str:
    """The pixels outlier detection flagged per member, and where they lie on the median the
    exposures were compared with (:func:`plot_outliers`).

    ``median`` and ``grid`` are the median image and its grid, ``members`` rows with
    ``member``, ``cal`` and ``crf`` (the _cal and _crf files). One exposure's DQ arrays are in
    memory at a time; the summary gives each member's count of newly flagged pixels
    (:func:`outlier_positions`).
    """
    comparison = load_grid(grid)
    oy, ey, ox, ex = median_extent(median)  # shown: where the median is
    factor = display_factor((ey - oy, ex - ox))
    image = block_mean(lambda y0, y1: read_median_window(median, (y0 + oy, y1 + oy, ox, ex))[0],
                       (ey - oy, ex - ox), factor)

    def world_to_shown(ra, dec):
        x, y = comparison.wcs.world_to_pixel_values(ra, dec)
        return np.asarray(x) - ox, np.asarray(y) - oy

    counts, positions = {}, {}
    for row in members:
        # DQ is unsigned (BZERO): read, not memory-mapped; only that extension
        cal_dq, crf_dq = fits.getdata(row["cal"], "DQ"), fits.getdata(row["crf"], "DQ")
        with open_meta(row["crf"]) as model:
            x, y = outlier_positions(cal_dq, crf_dq, model.meta.wcs, world_to_shown)
        counts[row["member"]] = len(x)
        positions[row["member"]] = to_display(x, y, factor)
    polygons, groups = _read_footprints(footprints)
    outlines = polygons_to_display(polygons, world_to_shown, factor)
    fig = new_figure("outliers")
    plot_outliers(fig, counts, positions, image, outlines, groups)
    save_figure(fig, output)
    return (f"wrote {output}: {sum(counts.values())} outlier pixels flagged in {len(counts)} "
            f"members ({', '.join(f'{m}: {n}' for m, n in counts.items())})")


def write_catalog_figure(i2d: str | Path, catalog: str | Path, aperture_ee: Sequence[int],
                         output: str | Path) -> str:
    """The ``_cat.ecsv``'s sources on the ``_i2d``, their magnitudes and concentration
    indices (:func:`catalog_quantities`, :func:`plot_catalog`); ``aperture_ee``: the
    catalogue's three encircled energies [%]."""
    image, factor, _ = read_display_image(i2d)
    found = catalog_quantities(Table.read(catalog, format="ascii.ecsv"), aperture_ee)
    x, y = to_display(found["x"], found["y"], factor)
    fig = new_figure("catalog")
    plot_catalog(fig, image, x, y, found["magnitude"], found["concentration"],
                 found["extended"], "aper_total_abmag", found["concentration_name"])
    save_figure(fig, output)
    return f"wrote {output}: {len(x)} sources ({int(found['extended'].sum())} extended)"


# --------------------------------------------------------------------------------------------
# Bands of one target (several associations on one projection: image3.program_grid)


def band_offsets(catalogs: Mapping[str, Table], min_snr: float = BAND_MIN_SNR,
                 match_arcsec: float = BAND_MATCH_ARCSEC) -> Table:
    """Positions of the same sources in each band against the first band's: the sources with
    isophotal S/N above ``min_snr`` in both (point-like or not: stars doubled by a band's
    misalignment look extended), matched within ``match_arcsec``.
    One row per band after the first: ``n`` matched, median and robust (1.4826 MAD) scatter
    of dRA cos(Dec) and dDec [mas]."""
    from astropy.coordinates import SkyCoord

    def bright(catalog):
        snr = np.asarray(catalog["isophotal_flux"]) / np.asarray(catalog["isophotal_flux_err"])
        return catalog["sky_centroid"][snr > min_snr]

    names = list(catalogs)
    reference = bright(catalogs[names[0]])
    rows = []
    for name in names[1:]:
        other = bright(catalogs[name])
        dra = ddec = np.zeros(0)
        if len(reference) and len(other):
            index, separation, _ = other.match_to_catalog_sky(reference)
            close = separation.arcsec < match_arcsec
            ref = SkyCoord(reference[index[close]])
            dra, ddec = ref.spherical_offsets_to(SkyCoord(other[close]))
            dra, ddec = dra.to_value("mas"), ddec.to_value("mas")
        rows.append({"band": name, "n": len(dra),
                     "dra_mas": float(np.median(dra)) if len(dra) else math.nan,
                     "ddec_mas": float(np.median(ddec)) if len(ddec) else math.nan,
                     "scatter_mas": float(1.4826 * np.median(np.abs(np.hypot(
                         dra - np.median(dra), ddec - np.median(ddec))))) if len(dra) else math.nan})
    return Table(rows=rows, names=("band", "n", "dra_mas", "ddec_mas", "scatter_mas"),
                 dtype=(str, int, float, float, float))


def colour_image(images: Sequence[np.ndarray]) -> np.ndarray:
    """An (ny, nx, 3) RGB image of up to three bands on one grid, ordered blue to red (two
    bands: their mean as green), each stretched as :func:`image_norm`; NaN shows black."""
    planes = [np.clip(np.nan_to_num(image_norm(image)(image).filled(0.0), nan=0.0), 0, 1)
              for image in images]
    if len(planes) == 1:
        planes = planes * 3
    elif len(planes) == 2:
        planes = [planes[0], (planes[0] + planes[1]) / 2, planes[1]]
    return np.dstack(planes[::-1][:3])


def _on_canvas(image: np.ndarray, header, canvas_header, factor: int, canvas_factor: int,
               shape: Sequence[int]) -> np.ndarray:
    """A display image resampled (nearest) onto the canvas's display pixels through the two
    FITS WCSs: the bands share one projection, so this only moves and scales."""
    cy, cx = np.mgrid[0:shape[0], 0:shape[1]].astype(float)
    world = WCS(canvas_header).pixel_to_world_values(
        (cx + 0.5) * canvas_factor - 0.5, (cy + 0.5) * canvas_factor - 0.5)
    x, y = to_display(*WCS(header).world_to_pixel_values(*world), factor)
    x, y = np.rint(x).astype(int), np.rint(y).astype(int)
    inside = (x >= 0) & (y >= 0) & (x < image.shape[1]) & (y < image.shape[0])
    out = np.full(tuple(shape), np.nan, dtype=np.float32)
    out[inside] = image[y[inside], x[inside]]
    return out


def plot_bands(fig: Figure, rgb: np.ndarray, names: Sequence[str], offsets: Table) -> None:
    """Left: the bands' colour image (blue to red: ``names``); right: each band's positions
    against the first band's (medians with their scatter, mas)."""
    ax = fig.add_subplot(1, 2, 1)
    ax.imshow(rgb, origin="lower", interpolation="nearest")
    ax.set_title(" / ".join(names[::-1][:3]) + " (R / G / B)" if len(names) > 2
                 else " / ".join(names[::-1]) + " (R / B)")
    ax.set_xticks([])
    ax.set_yticks([])
    ax = fig.add_subplot(1, 2, 2)
    for k, row in enumerate(offsets):
        ax.errorbar(row["dra_mas"], row["ddec_mas"], xerr=row["scatter_mas"],
                    yerr=row["scatter_mas"], fmt="o", color=f"C{k + 1}",
                    label=f"{row['band']} - {names[0]}: {row['n']} sources, "
                          f"({row['dra_mas']:.1f}, {row['ddec_mas']:.1f}) mas")
    ax.axhline(0, color="0.7", lw=0.8)
    ax.axvline(0, color="0.7", lw=0.8)
    ax.set_xlabel("dRA cos(Dec) [mas]")
    ax.set_ylabel("dDec [mas]")
    ax.set_title(f"positions against {names[0]} (sources with S/N > {BAND_MIN_SNR:g})")
    ax.legend(loc="upper right", fontsize="small")


def write_bands_figure(i2ds: Mapping[str, str | Path], catalogs: Mapping[str, str | Path],
                       output: str | Path) -> str:
    """The QA page of a target's bands (``i2ds``, ``catalogs``: band name -> file, blue to
    red): :func:`colour_image` on the first band's projection and :func:`band_offsets`.
    Returns a summary line with the offsets."""
    names = list(i2ds)
    shown = {n: read_display_image(i2ds[n]) for n in names}
    _, canvas_factor, canvas_header = shown[names[0]]
    canvas_shape = shown[names[0]][0].shape
    images = [_on_canvas(image, header, canvas_header, factor, canvas_factor, canvas_shape)
              for image, factor, header in shown.values()]
    offsets = band_offsets({n: Table.read(catalogs[n], format="ascii.ecsv") for n in names})
    fig = new_figure("bands")
    plot_bands(fig, colour_image(images), names, offsets)
    save_figure(fig, output)
    said = "; ".join(f"{r['band']}: {r['n']} sources at ({r['dra_mas']:.1f}, "
                     f"{r['ddec_mas']:.1f}) mas +- {r['scatter_mas']:.1f}" for r in offsets)
    return f"wrote {output}: {', '.join(names)} against {names[0]}: {said}"
