"""One grid per target: the associations of a program whose footprints overlap are resampled
onto one projection, so that a pixel is the same sky position in every band.

A *target* is a set of associations whose footprints (the members' ``S_REGION``, grown by
:data:`FOOTPRINT_PAD_ARCSEC` for alignment corrections) overlap, directly or through others.
Its projection is a gnomonic (TAN) plane at the centre of the union of the footprints (the
reference's fiducial: the midpoint of the extreme unit vectors), with north up unless the user
set ``resample.rotation``, and one *lattice*: pixels of the finest band's scale (or the user's
``pixel_scale``) whose edges line up in every band. Each band is given:

- ``pixel_scale``: the lattice's (``integer_ratio: false``), or the integer multiple of it
  nearest the band's own pixel (``integer_ratio: true``: NIRCam LW at twice SW), its pixels
  then ``k`` x ``k`` lattice pixels;
- ``crval``, ``rotation``: the target's;
- ``crpix`` and ``output_shape``: its own footprint's extent on the lattice (or, with
  ``same_shape``, the union's: identical shapes for bands of one pixel scale), whole lattice
  pixels (and whole ``k`` blocks) from the target's origin, so the bands' pixel grids differ by
  whole pixels only.

These are the resample parameters of :func:`image3.wcs.output_grid` (``crpix`` 0-based, pixel
centres at integers; ``output_shape`` [nx, ny]); nothing here reads pixel data.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from .errors import GridError
from .footprints import parse_s_region
from .parameters import Program

if TYPE_CHECKING:
    from .asn import Association

__all__ = ["FOOTPRINT_PAD_ARCSEC", "BandFootprint", "band_grids", "jointly_aligned",
           "program_grids", "read_band_footprint", "targets"]

#: Added around each footprint: the largest alignment correction expected (tweakreg moves a
#: pointing by < 1 arcsec) plus a margin; a pixel outside every footprint stays empty (NaN).
FOOTPRINT_PAD_ARCSEC = 2.0


@dataclass(frozen=True)
class BandFootprint:
    """One association: its members' footprints ((N, 2) arrays of RA, Dec in degrees) and its
    native pixel scale (arcsec, from the members' ``PIXAR_A2``)."""

    footprints: tuple[np.ndarray, ...]
    pixel_scale: float


def read_band_footprint(paths: Sequence[str | Path]) -> BandFootprint | None:
    """The footprints and pixel scale of an association's members (``S_REGION`` and
    ``PIXAR_A2`` of their SCI headers; no data read); None when a member's header cannot be
    read or lacks either (the association then keeps a grid of its own; its own run names
    what is wrong with the member)."""
    from astropy.io import fits

    footprints, scales = [], []
    for path in paths:
        try:
            header = fits.getheader(path, "SCI")
            footprints += parse_s_region(header["S_REGION"])
            scales.append(math.sqrt(float(header["PIXAR_A2"])))
        except (OSError, KeyError, ValueError, GridError):
            return None
    return BandFootprint(tuple(footprints), float(np.median(scales)))


def _unit(ra, dec) -> np.ndarray:
    ra, dec = np.radians(ra), np.radians(dec)
    return np.stack([np.cos(dec) * np.cos(ra), np.cos(dec) * np.sin(ra), np.sin(dec)], axis=-1)


def _centre(vertices: np.ndarray) -> tuple[float, float]:
    """The reference's fiducial: midpoint of the minimum and maximum of each unit-vector
    component of the vertices, as (RA, Dec) degrees."""
    xyz = _unit(vertices[:, 0], vertices[:, 1])
    mid = (xyz.min(axis=0) + xyz.max(axis=0)) / 2
    ra = math.degrees(math.atan2(mid[1], mid[0])) % 360.0
    dec = math.degrees(math.atan2(mid[2], math.hypot(mid[0], mid[1])))
    return ra, dec


def _tangent_arcsec(vertices: np.ndarray, crval: tuple[float, float],
                    rotation_deg: float) -> np.ndarray:
    """Gnomonic projection of (RA, Dec) vertices at ``crval``: (x, y) arcsec, y at position
    angle ``rotation_deg`` (east of north), x to the west of it (east to the left, as on the
    sky)."""
    ra0, dec0 = np.radians(crval)
    ra, dec = np.radians(vertices[:, 0]), np.radians(vertices[:, 1])
    cos_c = np.sin(dec0) * np.sin(dec) + np.cos(dec0) * np.cos(dec) * np.cos(ra - ra0)
    xi = np.cos(dec) * np.sin(ra - ra0) / cos_c  # east
    eta = (np.cos(dec0) * np.sin(dec) - np.sin(dec0) * np.cos(dec) * np.cos(ra - ra0)) / cos_c
    pa = np.radians(rotation_deg)
    # +y at PA: north rotated by pa towards east; +x: 90 deg clockwise of it on the sky (west)
    y = eta * np.cos(pa) + xi * np.sin(pa)
    x = -(xi * np.cos(pa) - eta * np.sin(pa))
    return np.degrees(np.stack([x, y], axis=-1)) * 3600.0


def _box(points: np.ndarray, pad: float) -> tuple[float, float, float, float]:
    return (points[:, 0].min() - pad, points[:, 0].max() + pad,
            points[:, 1].min() - pad, points[:, 1].max() + pad)


def _overlap(a, b) -> bool:
    return a[0] <= b[1] and b[0] <= a[1] and a[2] <= b[3] and b[2] <= a[3]


def targets(bands: Mapping[str, BandFootprint]) -> list[list[str]]:
    """The associations (names of ``bands``) grouped by target: footprints that overlap,
    directly or through another association, in the order first met."""
    names = list(bands)
    vertices = {n: np.vstack(bands[n].footprints) for n in names}
    centre = _centre(np.vstack(list(vertices.values())))
    boxes = {n: _box(_tangent_arcsec(vertices[n], centre, 0.0), FOOTPRINT_PAD_ARCSEC)
             for n in names}
    return _connected(names, lambda a, b: _overlap(boxes[a], boxes[b]))


def _connected(names: Sequence[str], linked) -> list[list[str]]:
    """``names`` grouped by ``linked(a, b)``, directly or through others, each group in the
    order of ``names``, the groups in the order their first name comes."""
    parent = {n: n for n in names}

    def root(n):
        while parent[n] != n:
            n = parent[n]
        return n

    for i, a in enumerate(names):
        for b in names[i + 1:]:
            if linked(a, b):
                ra, rb = root(a), root(b)
                if ra != rb:
                    first, later = sorted((ra, rb), key=names.index)
                    parent[later] = first
    groups: dict[str, list[str]] = {}
    for n in names:
        groups.setdefault(root(n), []).append(n)
    return list(groups.values())


def band_grids(bands: Mapping[str, BandFootprint], *, rotation: float | None = None,
               pixel_scale: float | None = None, crval: Sequence[float] | None = None,
               integer_ratio: bool = False, same_shape: bool = False) -> dict[str, dict]:
    """The resample grid parameters of each association of one target (see the module
    docstring): name -> {crval, rotation, pixel_scale, crpix, output_shape}. ``rotation``,
    ``pixel_scale`` and ``crval`` are the user's when set."""
    every = np.vstack([f for band in bands.values() for f in band.footprints])
    crval = _centre(every) if crval is None else (float(crval[0]), float(crval[1]))
    rotation = 0.0 if rotation is None else float(rotation)
    lattice = float(pixel_scale) if pixel_scale else min(b.pixel_scale for b in bands.values())
    ratio = {n: max(1, round(b.pixel_scale / lattice)) if integer_ratio else 1
             for n, b in bands.items()}
    # lattice coordinates: pixel centres at integers, the fiducial at 0
    points = {n: _tangent_arcsec(np.vstack(b.footprints), crval, rotation) / lattice
              for n, b in bands.items()}
    pad = FOOTPRINT_PAD_ARCSEC / lattice
    union = _box(np.vstack(list(points.values())), pad)
    grids = {}
    for name in bands:
        k = ratio[name]
        x0, x1, y0, y1 = union if same_shape else _box(points[name], pad)
        # the band's first pixel starts at a lattice edge that is a multiple of k lattice
        # pixels from the union's first edge, so every band's edges are lattice edges
        start = [math.floor(union[0] + 0.5), math.floor(union[2] + 0.5)]
        first = [start[0] + k * math.floor((math.floor(x0 + 0.5) - start[0]) / k),
                 start[1] + k * math.floor((math.floor(y0 + 0.5) - start[1]) / k)]
        last = [math.floor(x1 + 0.5), math.floor(y1 + 0.5)]  # the last lattice pixels
        shape = [max(2, math.ceil((last[i] - first[i] + 1) / k)) for i in range(2)]
        # the band's pixel i covers lattice pixels first + k i ... first + k i + k - 1: its
        # centre is at lattice coordinate first + k i + (k - 1) / 2, the fiducial (0) at
        crpix = [(-first[i] - (k - 1) / 2) / k for i in range(2)]
        grids[name] = {"crval": list(crval), "rotation": rotation,
                       "pixel_scale": lattice * k, "crpix": crpix, "output_shape": shape}
    return grids


def program_grids(associations: Mapping[str, Association], program: Program,
                  resample: Mapping, target_keys: Mapping[str, str] | None = None,
                  ) -> tuple[dict[str, dict], list[list[str]], list[str]]:
    """The grid parameters of each product (name -> its association) on its target's projection, for
    the workflow's ``program`` settings and the user's ``resample`` settings; the targets of
    several products (their names, blue to red by the filter's wavelength in the name); and
    the lines to tell the user. A target is the products of one user key (``target_keys``:
    product -> key, a sample sheet's ``target`` column) when given, else of overlapping
    footprints (:func:`targets`). Empty when ``program.common_grid`` is off or the user's
    ``output_wcs``, ``crpix`` or ``output_shape`` fix every grid; a product whose members lack
    ``S_REGION`` or ``PIXAR_A2``, or alone in its target, keeps a grid of its own."""
    fixed = [k for k in ("output_wcs", "crpix", "output_shape") if resample.get(k)]
    if not program.common_grid:
        return {}, [], []
    if fixed:
        return {}, [], [f"resample.{fixed[0]} is set: each association uses it (no common "
                        "grid per target)"]
    bands, lines = {}, []
    for product, association in associations.items():
        band = read_band_footprint([m.path for m in association.members])
        if band is None:
            lines.append(f"{association.source}: a member's SCI header has no usable S_REGION "
                         "or PIXAR_A2; its product gets a grid of its own")
        else:
            bands[product] = band
    grids = {}
    if target_keys:
        keyed: dict[str, list[str]] = {}
        for product in bands:
            keyed.setdefault(target_keys.get(product, product), []).append(product)
        groups = list(keyed.values())
    else:
        groups = targets(bands)
    shared = [sorted(t, key=_wavelength) for t in groups if len(t) > 1]
    for target in shared:
        grids.update(band_grids({p: bands[p] for p in target}, rotation=resample.get("rotation"),
                                pixel_scale=resample.get("pixel_scale"),
                                crval=resample.get("crval"),
                                integer_ratio=program.integer_ratio,
                                same_shape=program.same_shape))
        first = grids[target[0]]
        scales = ", ".join(format(grids[p]["pixel_scale"], ".4f") for p in target)
        lines.append(f"one projection for {', '.join(target)}: CRVAL {first['crval'][0]:.6f} "
                     f"{first['crval'][1]:.6f}, PA {first['rotation']:g} deg, pixels {scales} "
                     "arcsec")
    return grids, shared, lines


def _wavelength(product: str) -> float:
    """The filter's wavelength in a product name (``...-f444w`` -> 444; ``...-f1500w``), for
    ordering bands blue to red; names without one last."""
    found = re.findall(r"f(\d{3,4})[wmnc]", product.lower())
    return float(found[-1]) if found else math.inf


def jointly_aligned(targets: Sequence[Sequence[str]], program: Program) -> list[list[str]]:
    """The targets whose bands tweakreg aligns in one fit (``program.joint_alignment``), each
    with the product of ``program.reference_band`` (a filter name in the product's name)
    first: the fit's reference is its first exposure (else the bluest band's)."""
    if not program.joint_alignment:
        return []
    band = program.reference_band.lower()
    return [sorted(t, key=lambda p: not (band and band in p.lower().split("-")[-1].split("_")))
            for t in targets]
