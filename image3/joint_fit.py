"""Joint relative alignment: every group's rigid correction from all overlapping pairs at once.

tweakreg's sequential fit (the reference's) aligns one group at a time to a reference catalogue
and needs ``minobj`` matches per group; in a mosaic of many pointings with small overlaps no
single overlap may hold that many common stars, and a group that overlaps only a group not yet
aligned is left out. Here the matches of every overlapping pair of groups enter one
least-squares fit of all corrections together.

Conventions: positions are (x, y) in one tangent plane [arcsec] (tweakwcs's tangent plane of
the reference group's first member); a *body* is a set of groups that share one correction
(a group alone by default). A body's correction is a rotation by ``theta`` [rad] about the
tangent point followed by a shift ``(dx, dy)`` [arcsec]: ``p -> R(theta) p + (dx, dy)``, the
form of tweakwcs's ``set_correction(matrix, shift)``. Bodies with a *fixed* correction (aligned
earlier) are moved by it and not fitted; without any, the first body is the reference (zero
correction).

The fit is linear in (dx, dy, theta) to first order in theta (|theta| < 1e-3 rad for JWST
pointing errors: the second-order term is < 0.5 mas at 300" from the tangent point) and is
iterated on the corrected positions, so the result is exact. Matches beyond ``sigma`` times the
residual RMS are clipped, ``nclip`` rounds, as in the reference's fit, but with the RMS taken
from the median residual (a 2-D Gaussian's): with 5-10 matches per overlap one mismatch
inflates the plain RMS enough to survive its own clipping.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

__all__ = ["Correction", "JointSolution", "PairMatches", "connected_bodies", "solve_corrections"]

#: RMS of a 2-D Gaussian offset's length per its median (Rayleigh: sqrt(2) / sqrt(2 ln 2)):
#: the clipping scale is taken from the median, which a few mismatches do not inflate.
RAYLEIGH_RMS_PER_MEDIAN = math.sqrt(2.0) / math.sqrt(2.0 * math.log(2.0))
#: Residuals below this [arcsec] are never clipped (exact matches, rounding only).
CLIP_FLOOR_ARCSEC = 1e-6


@dataclass(frozen=True)
class PairMatches:
    """Matched sources of two groups: ``xy_a[i]`` (group ``a``) is the same source as
    ``xy_b[i]`` (group ``b``), both (N, 2) in the common tangent plane [arcsec]."""

    a: str
    b: str
    xy_a: np.ndarray
    xy_b: np.ndarray


@dataclass(frozen=True)
class Correction:
    """``p -> R(theta) p + shift``; ``theta`` [rad] counter-clockwise in the tangent plane,
    ``shift`` (dx, dy) [arcsec]."""

    shift: tuple[float, float] = (0.0, 0.0)
    theta: float = 0.0

    @property
    def matrix(self) -> np.ndarray:
        c, s = math.cos(self.theta), math.sin(self.theta)
        return np.array([[c, -s], [s, c]])

    def apply(self, xy: np.ndarray) -> np.ndarray:
        return np.asarray(xy, dtype=float) @ self.matrix.T + np.asarray(self.shift)

    def then(self, other: Correction) -> Correction:
        """This correction followed by ``other``."""
        shift = other.matrix @ np.asarray(self.shift) + np.asarray(other.shift)
        return Correction((float(shift[0]), float(shift[1])), self.theta + other.theta)


@dataclass
class JointSolution:
    """Per group its correction (groups of one body share it), the bodies that were fitted
    (not fixed, reached from a fixed body through pairs), the residual RMS [arcsec] over the
    matches kept and their number, per body."""

    corrections: dict[str, Correction]
    fitted: set[str]
    rms_arcsec: dict[str, float]
    n_fit: dict[str, int]


def connected_bodies(pairs: Sequence[PairMatches], body_of: Mapping[str, str],
                     anchors: set[str]) -> set[str]:
    """The bodies reached from ``anchors`` through ``pairs`` (anchors included)."""
    neighbours: dict[str, set[str]] = {}
    for p in pairs:
        a, b = body_of[p.a], body_of[p.b]
        neighbours.setdefault(a, set()).add(b)
        neighbours.setdefault(b, set()).add(a)
    reached, todo = set(anchors), list(anchors)
    while todo:
        for other in neighbours.get(todo.pop(), ()):
            if other not in reached:
                reached.add(other)
                todo.append(other)
    return reached


def solve_corrections(pairs: Sequence[PairMatches], groups: Sequence[str], *,
                      fixed: Mapping[str, Correction] | None = None,
                      shared: Mapping[str, str] | None = None, rotation: bool = True,
                      nclip: int = 3, sigma: float = 3.0, iterations: int = 3) -> JointSolution:
    """Fit every group's correction from the pairs' matches at once.

    ``groups``: all group ids (order: the first body is the reference when nothing is
    ``fixed``); ``fixed``: group -> a correction to keep (its body is not fitted);
    ``shared``: group -> body name for groups that must share one correction (default: each
    group its own body); ``rotation``: fit theta (rshift), else shifts only.
    Bodies not connected to a fixed (or the reference) body keep a zero correction and are
    not in ``fitted``.
    """
    fixed = dict(fixed or {})
    body_of = {g: (shared or {}).get(g, g) for g in groups}
    fixed_bodies = {body_of[g]: c for g, c in fixed.items()}
    if not fixed_bodies:
        fixed_bodies = {body_of[groups[0]]: Correction()}
    reached = connected_bodies(pairs, body_of, set(fixed_bodies))
    free = [b for b in dict.fromkeys(body_of.values()) if b in reached and b not in fixed_bodies]
    index = {b: k for k, b in enumerate(free)}
    current = {b: fixed_bodies.get(b, Correction()) for b in dict.fromkeys(body_of.values())}
    usable = [p for p in pairs if body_of[p.a] in reached and len(p.xy_a)]
    keep = [np.ones(len(p.xy_a), dtype=bool) for p in usable]
    npar = 3 if rotation else 2
    for round_ in range(nclip + 1):
        for _ in range(iterations):
            step = _linear_step(usable, keep, body_of, current, index, npar)
            if step is None:
                break
            for b, k in index.items():
                dx, dy = step[npar * k], step[npar * k + 1]
                dtheta = step[npar * k + 2] if rotation else 0.0
                current[b] = current[b].then(Correction((float(dx), float(dy)), float(dtheta)))
        residuals = [_residuals(p, body_of, current) for p in usable]
        kept = np.concatenate([r[m] for r, m in zip(residuals, keep)]) if usable else np.empty(0)
        if round_ == nclip or kept.size == 0:
            break
        limit = max(sigma * RAYLEIGH_RMS_PER_MEDIAN * float(np.median(kept)), CLIP_FLOOR_ARCSEC)
        keep = [m & (r <= limit) for r, m in zip(residuals, keep)]
    sums: dict[str, list] = {}  # per body: sum of squared residuals, matches kept
    for p, r, m in zip(usable, residuals, keep):
        for b in {body_of[p.a], body_of[p.b]}:
            total = sums.setdefault(b, [0.0, 0])
            total[0] += float(np.sum(r[m] ** 2))
            total[1] += int(m.sum())
    return JointSolution(
        corrections={g: current[body_of[g]] for g in groups},
        fitted={g for g in groups if body_of[g] in index},
        rms_arcsec={g: math.sqrt(sums[body_of[g]][0] / sums[body_of[g]][1])
                    for g in groups if sums.get(body_of[g], [0, 0])[1]},
        n_fit={g: sums.get(body_of[g], [0, 0])[1] for g in groups})


def _residuals(pair: PairMatches, body_of, current) -> np.ndarray:
    """|corrected a - corrected b| of each match [arcsec]."""
    d = current[body_of[pair.a]].apply(pair.xy_a) - current[body_of[pair.b]].apply(pair.xy_b)
    return np.hypot(d[:, 0], d[:, 1])


def _linear_step(pairs, keep, body_of, current, index, npar):
    """Least-squares increments (dx, dy[, theta]) of the free bodies, linear about the
    current corrections; None when no match ties a free body."""
    rows, rhs = [], []
    for pair, mask in zip(pairs, keep):
        a, b = body_of[pair.a], body_of[pair.b]
        if a == b or not mask.any() or (a not in index and b not in index):
            continue
        pa = current[a].apply(pair.xy_a[mask])
        pb = current[b].apply(pair.xy_b[mask])
        n = len(pa)
        block = np.zeros((2 * n, npar * len(index)))
        for body, p, sign in ((a, pa, 1.0), (b, pb, -1.0)):
            if body not in index:
                continue
            k = npar * index[body]
            block[0::2, k] = sign
            block[1::2, k + 1] = sign
            if npar == 3:  # d(R p)/dtheta at theta = 0: (-y, x)
                block[0::2, k + 2] = -sign * p[:, 1]
                block[1::2, k + 2] = sign * p[:, 0]
        rows.append(block)
        rhs.append((pb - pa).reshape(-1))
    if not rows:
        return None
    design, target = np.vstack(rows), np.concatenate(rhs)
    return np.linalg.lstsq(design, target, rcond=None)[0]
