"""Sky footprints of images and the pixels of one image inside another's footprint.

:func:`sky_footprint` is the reference's bounding polygon of an image on the sky;
:func:`overlap_mask` marks the pixels of an image whose centres fall inside sky polygons (other
exposures' footprints), clipped and rasterised on the plane tangent at the image centre.
:func:`footprints_table` and :func:`member_footprints` write and read every member's footprint
as one JSON file.

Conventions:

- A footprint is an (N, 2) array of (ra, dec) degrees, vertices in order and not closed; its
  edges are great circles, as in ``spherical_geometry``.
- Pixel coordinates are 0-based with centres on integers: an image spans -0.5 ... n - 0.5.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from .errors import GridError, StepError
from .sidecar import read_work_json

__all__ = [
    "estimated_grid_pixels",
    "footprints_table",
    "member_footprints",
    "overlap_mask",
    "parse_s_region",
    "sky_footprint",
]

# Overlaps are clipped on a tangent plane to the member's footprint grown by this fraction, so
# the inverse WCS is only evaluated near the detector, where its distortion model is valid.
_CLIP_MARGIN = 0.05
# Clipped polygons are resampled with this many steps across the member's footprint before
# the inverse WCS: a great circle maps to a curve in distorted pixel coordinates.
_EDGE_STEPS = 256


# --------------------------------------------------------------------------------------------
# Footprints and overlaps


def sky_footprint(wcs, shape: Sequence[int], stepsize: int | None = None) -> np.ndarray:
    """Sky polygon (N, 2) of (ra, dec) degrees along an image's outer pixel edges.

    As the reference's bounding polygon: vertices from (-0.5, -0.5) along the bottom, right,
    top and left edges (counter-clockwise in pixels); with ``stepsize`` (pixels) each side is
    cut into ``max(2, ceil((n + 1) / stepsize))`` vertices, else only the 4 corners. ``shape``
    is (ny, nx). RA is wrapped to [0, 360).
    """
    ny, nx = shape
    if stepsize is None:
        nint_x = nint_y = 2
    else:
        nint_x = max(2, math.ceil((nx + 1.0) / stepsize))
        nint_y = max(2, math.ceil((ny + 1.0) / stepsize))
    xs = np.linspace(-0.5, nx - 0.5, nint_x)
    ys = np.linspace(-0.5, ny - 0.5, nint_y)[1:-1]
    x = np.concatenate([xs, np.full(ys.size, nx - 0.5), xs[::-1], np.full(ys.size, -0.5)])
    y = np.concatenate([np.full(xs.size, -0.5), ys, np.full(xs.size, ny - 0.5), ys[::-1]])
    ra, dec = wcs(x, y, with_bounding_box=False)
    return np.column_stack([np.mod(ra, 360.0), dec])


def _as_polygons(footprint) -> list[np.ndarray]:
    """One footprint (N, 2) or a sequence of them (a group's members) as a list of arrays."""
    first = np.asarray(footprint[0], dtype=float)
    if first.ndim == 1:
        return [np.asarray(footprint, dtype=float)]
    return [np.asarray(polygon, dtype=float) for polygon in footprint]


def overlap_mask(wcs, shape: Sequence[int], polygons) -> np.ndarray:
    """Pixels of an image (``shape`` = (ny, nx)) whose centres are inside any sky polygon.

    Each polygon is gnomonically projected on the plane tangent at the image centre (where
    great circles are straight lines), clipped to the image's footprint grown by 5 %,
    resampled densely, and brought into pixels with the inverse WCS, where it is rasterised
    with the even-odd rule. Only the clipped part reaches the inverse WCS, so far or large
    polygons never meet a distortion model outside its valid range. Polygons reaching 90
    degrees or more from the image centre cannot overlap a detector and are ignored.
    """
    ny, nx = shape
    centre = wcs((nx - 1) / 2.0, (ny - 1) / 2.0, with_bounding_box=False)
    basis = _tangent_basis(*centre)
    outline = _to_plane(basis, sky_footprint(wcs, shape, stepsize=max(1, max(nx, ny) // 16)))
    low, high = outline.min(axis=0), outline.max(axis=0)
    pad = _CLIP_MARGIN * (high - low)
    low, high = low - pad, high + pad
    spacing = float(np.max(high - low)) / _EDGE_STEPS
    mask = np.zeros((ny, nx), dtype=bool)
    for polygon in _as_polygons(polygons):
        plane = _to_plane(basis, polygon)
        if plane is None:
            continue
        clipped = _clip_to_box(plane, low, high)
        if len(clipped) < 3:
            continue
        ra, dec = _from_plane(basis, _densify(clipped, spacing))
        x, y = wcs.invert(ra, dec, with_bounding_box=False)
        if not (np.all(np.isfinite(x)) and np.all(np.isfinite(y))):
            raise StepError("the inverse WCS gives non-finite pixels next to the image")
        mask |= _rasterize(np.asarray(x, float), np.asarray(y, float), (ny, nx))
    return mask


def parse_s_region(text: str) -> list[np.ndarray]:
    """Polygons (each (N, 2) ra, dec degrees) of an S_REGION that may hold several POLYGONs."""
    polygons = []
    for part in re.split(r"(?i)polygon", text.strip()):
        if not part.strip():
            continue
        values = re.sub(r"(?i)^\s*(icrs|fk5|j2000)?", "", part).split()
        try:
            vertices = np.array(values, dtype=float)
        except ValueError:
            raise GridError(f"S_REGION is not 'POLYGON ICRS ra dec ...': {text!r}") from None
        if vertices.size < 6 or vertices.size % 2:
            raise GridError(f"S_REGION polygon needs >= 3 (ra, dec) pairs: {text!r}")
        polygons.append(vertices.reshape(-1, 2))
    if not polygons:
        raise GridError(f"S_REGION has no POLYGON: {text!r}")
    return polygons


def _unit_vectors(ra_deg, dec_deg) -> np.ndarray:
    ra, dec = np.deg2rad(ra_deg), np.deg2rad(dec_deg)
    return np.stack([np.cos(dec) * np.cos(ra), np.cos(dec) * np.sin(ra), np.sin(dec)], axis=-1)


def _tangent_basis(ra0: float, dec0: float) -> np.ndarray:
    """Rows: east, north and the tangent point, unit vectors of the plane tangent at (ra0, dec0)."""
    ra, dec = np.deg2rad(ra0), np.deg2rad(dec0)
    east = np.array([-np.sin(ra), np.cos(ra), 0.0])
    north = np.array([-np.sin(dec) * np.cos(ra), -np.sin(dec) * np.sin(ra), np.cos(dec)])
    return np.vstack([east, north, _unit_vectors(ra0, dec0)])


def _to_plane(basis, radec) -> np.ndarray | None:
    """Gnomonic (xi, eta) of (ra, dec) vertices; None if one is 90 degrees or more away."""
    radec = np.asarray(radec, dtype=float)
    projected = _unit_vectors(radec[:, 0], radec[:, 1]) @ basis.T
    depth = projected[:, 2]
    if np.any(depth <= 0):
        return None
    return projected[:, :2] / depth[:, None]


def _from_plane(basis, plane) -> tuple[np.ndarray, np.ndarray]:
    vectors = plane[:, :1] * basis[0] + plane[:, 1:2] * basis[1] + basis[2]
    vectors /= np.linalg.norm(vectors, axis=1)[:, None]
    ra = np.rad2deg(np.arctan2(vectors[:, 1], vectors[:, 0])) % 360.0
    dec = np.rad2deg(np.arcsin(np.clip(vectors[:, 2], -1.0, 1.0)))
    return ra, dec


def estimated_grid_pixels(polygons: Sequence[np.ndarray], shapes: Sequence[Sequence[int]],
                          pixel_scale_arcsec: float | None = None,
                          pixel_scale_ratio: float = 1.0) -> float:
    """Rough pixel count of the default output grid of exposures with these footprints ((N, 2)
    ra, dec degrees, e.g. from S_REGION) and array shapes (ny, nx), known before any WCS is
    opened: the smallest rectangle (over rotations in 1-degree steps) around every vertex on
    the plane tangent at their mean, over the output pixel area (``pixel_scale_arcsec``
    squared, else the first exposure's mean pixel area times ``pixel_scale_ratio`` squared).
    The grid's own rotation is the first exposure's, so it may be larger, by up to 2x for a
    field elongated at 45 degrees to the detector."""
    vertices = np.vstack([np.asarray(p, dtype=float) for p in polygons])
    centre = _unit_vectors(vertices[:, 0], vertices[:, 1]).mean(axis=0)
    ra0 = math.degrees(math.atan2(centre[1], centre[0]))
    dec0 = math.degrees(math.atan2(centre[2], math.hypot(centre[0], centre[1])))
    basis = _tangent_basis(ra0, dec0)
    plane = _to_plane(basis, vertices)
    if plane is None:
        return math.inf
    plane = np.rad2deg(plane) * 3600.0  # arcsec
    if pixel_scale_arcsec is None:
        first = np.rad2deg(_to_plane(basis, polygons[0])) * 3600.0
        x, y = first[:, 0], first[:, 1]
        area = 0.5 * abs(float(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1))))
        pixel_area = area / (shapes[0][0] * shapes[0][1]) * pixel_scale_ratio**2
    else:
        pixel_area = pixel_scale_arcsec**2
    best = math.inf
    for angle in np.deg2rad(np.arange(90.0)):
        c, s = math.cos(angle), math.sin(angle)
        u, v = plane[:, 0] * c + plane[:, 1] * s, plane[:, 1] * c - plane[:, 0] * s
        best = min(best, float(np.ptp(u) * np.ptp(v)))
    return best / pixel_area


def _clip_to_box(points: np.ndarray, low, high) -> np.ndarray:
    """Sutherland-Hodgman clip of a polygon to the axis-aligned box [low, high]."""
    for axis in (0, 1):
        for bound, keep_above in ((low[axis], True), (high[axis], False)):
            points = _clip_half_plane(points, axis, bound, keep_above)
            if len(points) == 0:
                return points
    return points


def _clip_half_plane(points, axis, bound, keep_above):
    sign = 1.0 if keep_above else -1.0
    distance = sign * (points[:, axis] - bound)  # >= 0 inside
    kept = []
    for k in range(len(points)):
        p, q = points[k - 1], points[k]
        dp, dq = distance[k - 1], distance[k]
        if (dp >= 0) != (dq >= 0):
            kept.append(p + (q - p) * (dp / (dp - dq)))
        if dq >= 0:
            kept.append(q)
    return np.array(kept).reshape(-1, 2)


def _densify(points: np.ndarray, spacing: float) -> np.ndarray:
    """The closed polygon ``points`` with extra vertices so no edge is longer than ``spacing``."""
    nxt = np.roll(points, -1, axis=0)
    pieces = []
    for p, q in zip(points, nxt, strict=True):
        n = max(1, math.ceil(float(np.hypot(*(q - p))) / spacing))
        t = np.arange(n)[:, None] / n
        pieces.append(p + t * (q - p))
    return np.concatenate(pieces)


def _rasterize(x: np.ndarray, y: np.ndarray, shape) -> np.ndarray:
    """Pixels whose centres lie inside the closed polygon (x, y), by the even-odd rule.

    Scanlines through the pixel centres: every edge crossing a row toggles the pixels from the
    first centre right of the crossing; edges own their lower end only, so a vertex on a row
    is counted once.
    """
    ny, nx = shape
    mask = np.zeros((ny, nx), dtype=bool)
    first, last = max(0, math.ceil(y.min())), min(ny - 1, math.floor(y.max()))
    if first > last:
        return mask
    rows = np.arange(first, last + 1, dtype=float)
    x1, y1 = np.roll(x, -1), np.roll(y, -1)
    bottom, top = np.minimum(y, y1), np.maximum(y, y1)
    row, edge = np.nonzero((rows[:, None] >= bottom) & (rows[:, None] < top))
    fraction = (rows[row] - y[edge]) / (y1[edge] - y[edge])
    crossing = x[edge] + fraction * (x1[edge] - x[edge])
    column = np.clip(np.floor(crossing).astype(np.int64) + 1, 0, nx)
    # parity only: counted in uint8, whose wrap-around keeps it
    toggles = np.zeros(rows.size * (nx + 1), dtype=np.uint8)
    np.add.at(toggles, row * (nx + 1) + column, 1)
    inside = np.cumsum(toggles.reshape(rows.size, nx + 1), axis=1, dtype=np.uint8)[:, :nx]
    inside &= 1
    mask[first:last + 1] = inside.view(bool)
    return mask


# --------------------------------------------------------------------------------------------
# The footprints file


def footprints_table(members: Mapping[str, tuple[str, object, Sequence[int]]],
                     stepsize: int | None = None) -> str:
    """JSON text of every member's sky footprint: ``{member: {"group", "polygon"}}``.

    ``members`` maps member names to (group id, gwcs (corrected), array shape). Written once
    per association for the jobs that need every member's footprint (the sky tiles, the QA
    plots) without opening the exposures.
    """
    out = {}
    for member, (group_id, wcs, shape) in members.items():
        polygon = sky_footprint(wcs, shape, stepsize)
        out[member] = {"group": group_id, "polygon": polygon.tolist()}
    return json.dumps(out, indent=1) + "\n"


def member_footprints(path: str | Path) -> dict[str, np.ndarray]:
    """Read :func:`footprints_table`'s file as {member: polygon}."""
    return {member: np.asarray(entry["polygon"])
            for member, entry in read_work_json(path).items()}
