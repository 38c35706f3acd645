"""Sky background levels: per-member sky statistics and the skymatch solve.

The reference (jwst ``SkyMatchStep`` over stcal ``skymatch``) measures and solves in one
process. Here the work is split so that pixels are read once, in parallel:

* :func:`member_sky_stats` runs once per member (one detector of one exposure). It returns a
  small JSON-serialisable dict: the sky statistic of all the member's good pixels ("local")
  and, for every *other* group whose sky footprint overlaps the member, the statistic of the
  member's good pixels inside that footprint.
* :func:`solve_sky` runs once (the join). It turns those numbers into one sky level per
  group, as the reference's ``SkyGroup``/``skymatch`` do, without reading any pixel.

The sky statistic itself is :func:`image3.statistics.sky_statistic`; footprints and the
pixels inside them are :mod:`image3.footprints`' (its conventions for both).

Conventions:

- Sky values are in the data's units (MJy/sr). ``npix`` is the number of pixels a statistic
  used after clipping, the reference's weight; ``good_pixels`` and ``area_pixels`` count
  pixels before clipping.
- A group is one exposure (``group_id``); all its members get one sky level.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from .asn import exposure_root
from .datamodel import MemberFiles, SkyRecord
from .dqflags import interpret_bits
from .errors import ConfigError, StepError
from .footprints import group_footprints, overlap_mask
from .parameters import SKY_METHODS, SkySolve, SkyStatistics
from .statistics import sky_statistic

log = logging.getLogger(__name__)

__all__ = [
    "SKY_METHODS",
    "good_pixels",
    "log_levels",
    "member_sky_stats",
    "read_sky_stats",
    "read_skylist",
    "solve_sky",
    "write_sky_stats",
]

# --------------------------------------------------------------------------------------------
# Good pixels


def good_pixels(data: np.ndarray, dq: np.ndarray | None, dqbits: int | str | None) -> np.ndarray:
    """Pixels usable for the sky: finite data and none of the DQ flags that ``dqbits`` marks bad.

    ``dqbits`` is the reference's "good bits" syntax (flags to ignore, ``~`` flips it), so the
    default ``"~DO_NOT_USE+NON_SCIENCE"`` rejects exactly DO_NOT_USE and NON_SCIENCE; None
    ignores the DQ array.
    """
    good = np.isfinite(data)
    bad_bits = interpret_bits(dqbits)
    if dq is not None and bad_bits:
        good &= (np.asarray(dq).astype(np.uint32) & np.uint32(bad_bits)) == 0
    return good


# --------------------------------------------------------------------------------------------
# Per member (parallel)


def member_sky_stats(
    data: np.ndarray,
    dq: np.ndarray | None,
    wcs,
    *,
    group_footprints: Mapping[str, object],
    own_group: str,
    params: SkyStatistics,
) -> dict:
    """Sky statistics of one member, everything :func:`solve_sky` needs from its pixels.

    ``data`` (MJy/sr) and ``dq`` are the member's arrays, ``wcs`` its (corrected) gwcs.
    ``group_footprints`` maps every group id to its sky footprint: one (N, 2) (ra, dec) array
    or a list of them, one per member (the union is used, as the reference's SkyGroup does),
    e.g. from :func:`~image3.footprints.sky_footprint` with the ``stepsize`` parameter.
    ``params``: which pixels count and the statistic
    (:func:`~image3.statistics.sky_statistic`).

    Returns (JSON-serialisable; sky values None when no pixel is usable)::

        {"group": own_group, "good_pixels": int,
         "local": {"sky": float | None, "npix": int},
         "overlaps": {group_id: {"sky", "npix", "good_pixels", "area_pixels"}, ...}}

    ``local`` uses all good pixels (:func:`good_pixels`); ``overlaps`` holds every other group
    whose footprint covers at least one pixel centre of this member (``area_pixels`` counts
    those pixels, ``good_pixels`` the good ones among them). They are measured whatever the
    sky method: only the solve depends on it.
    """
    data = np.asarray(data)
    good = good_pixels(data, dq, params.dqbits)
    sky, npix = sky_statistic(data[good], params)
    result = {
        "group": own_group,
        "good_pixels": int(good.sum()),
        "local": {"sky": sky, "npix": npix},
        "overlaps": {},
    }
    for group_id, footprint in group_footprints.items():
        if group_id == own_group:
            continue
        inside = overlap_mask(wcs, data.shape, footprint)
        area = int(inside.sum())
        if area == 0:
            continue
        inside &= good
        sky, npix = sky_statistic(data[inside], params)
        result["overlaps"][group_id] = {
            "sky": sky, "npix": npix, "good_pixels": int(inside.sum()), "area_pixels": area,
        }
    return result


# --------------------------------------------------------------------------------------------
# Join


def solve_sky(
    stats: Mapping[str, Mapping],
    groups: Mapping[str, Sequence[str]],
    params: SkySolve,
) -> dict[str, SkyRecord]:
    """One sky level per group from the members' statistics, as the reference's skymatch.

    ``stats`` maps member names to :func:`member_sky_stats` results; ``groups`` maps group ids
    to their member names (members of one group share one level). Methods:

    - ``local``: each group's sky, the lowest of its members' ``local`` skies (the reference's
      SkyGroup takes the minimum, not a weighted mean);
    - ``global``: the lowest group sky, for every group;
    - ``match``: relative levels solving, for every pair of groups both measured in their
      overlap, w (D_i - D_j) = w (s_i - s_j), where s_i is group i's sky in the overlap (its
      members' values weighted by npix) and w the mean of the two npix, by pseudo-inverse;
      then shifted so the lowest (``match_down``) or the highest level is 0. Groups in no
      such pair get None (SKIPPED), with a warning naming them; disconnected sets of groups
      are matched only internally, with a warning;
    - ``global+match``: the matched levels D plus min over groups of (sky_g - D_g), so the
      matched set sits on an absolute level. As in the reference, groups in no pair enter
      with D = 0 and are thus given that global level;
    - ``user``: the values of ``params.skylist`` (:func:`read_skylist`), per member.

    A group without any good pixel gets None (SKIPPED) with a warning; a member without good
    pixels in a group that has some shares the group's level (with a warning).
    Returns a :class:`~image3.datamodel.SkyRecord` per member; ``subtracted`` is
    ``params.subtract`` for computed levels and False for skipped ones.
    """
    method, subtract = params.skymethod, bool(params.subtract)
    members = [m for group in groups.values() for m in group]
    if method == "user":
        levels = _user_levels(members, params.skylist)
        return {m: SkyRecord(levels[m], method, subtract) for m in members}
    missing = [m for m in members if m not in stats]
    if missing:
        raise StepError(f"skymatch: no sky statistics for member(s) {', '.join(missing)}")
    _warn_unusable(stats, groups)
    local = {g: _group_local_sky(stats, names) for g, names in groups.items()}
    if method == "local":
        group_levels = local
    elif method == "global":
        group_levels = _global_levels(local, {g: 0.0 for g in groups})
    else:
        deltas = _match_deltas(stats, groups, bool(params.match_down))
        if method == "match":
            group_levels = deltas
        else:
            offsets = {g: 0.0 if d is None else d for g, d in deltas.items()}
            group_levels = _global_levels(local, offsets)
    records = {}
    for group_id, names in groups.items():
        level = group_levels[group_id]
        for m in names:
            if level is None:
                records[m] = SkyRecord(None, method, False, "SKIPPED")
            else:
                records[m] = SkyRecord(float(level), method, subtract, "COMPLETE")
    return records


def log_levels(records: Mapping[str, SkyRecord]) -> None:
    """One log line per member: its level (MJy/sr), method and status."""
    for member, record in records.items():
        log.info("%s: sky level %s (%s, %s)", member,
                 "not computed" if record.level is None else f"{record.level:.5g} MJy/sr",
                 record.method, record.status)


def _warn_unusable(stats, groups) -> None:
    for group_id, names in groups.items():
        empty = [m for m in names if stats[m]["local"]["sky"] is None]
        if not empty:
            continue
        if len(empty) == len(names):
            log.warning("skymatch: no good pixel in %s (group %s): sky level not computed",
                        ", ".join(empty), group_id)
        else:
            log.warning("skymatch: no good pixel in %s: it takes the level of its group %s",
                        ", ".join(empty), group_id)


def _group_local_sky(stats, names) -> float | None:
    values = [stats[m]["local"]["sky"] for m in names if stats[m]["local"]["sky"] is not None]
    return min(values) if values else None


def _global_levels(local, offsets) -> dict[str, float | None]:
    """offset_g + min over groups of (local_g - offset_g); None for groups without pixels."""
    candidates = [local[g] - offsets[g] for g in local if local[g] is not None]
    if not candidates:
        log.warning("skymatch: no group has a usable sky: no global sky level")
        return {g: None for g in local}
    floor_ = min(candidates)
    return {g: None if local[g] is None else offsets[g] + floor_ for g in local}


def _group_overlap_sky(stats, names, other) -> tuple[float | None, int]:
    """Sky of a group in its overlap with group ``other``: members' skies weighted by npix."""
    total, weight = 0.0, 0
    for m in names:
        entry = stats[m]["overlaps"].get(other)
        if entry and entry["sky"] is not None and entry["npix"] > 0:
            total += entry["sky"] * entry["npix"]
            weight += entry["npix"]
    return (total / weight, weight) if weight else (None, 0)


def _match_deltas(stats, groups, match_down: bool) -> dict[str, float | None]:
    """The reference's pairwise sky equations solved by pseudo-inverse (see :func:`solve_sky`)."""
    ids = list(groups)
    n = len(ids)
    sky = np.zeros((n, n))  # sky[j, i]: group i's sky in its overlap with group j
    weight = np.zeros((n, n))
    for i, g in enumerate(ids):
        for j, h in enumerate(ids):
            if i != j:
                value, npix = _group_overlap_sky(stats, groups[g], h)
                if value is not None:
                    sky[j, i], weight[j, i] = value, npix
    pairs = [(i, j) for i in range(n) for j in range(i + 1, n)
             if weight[i, j] > 0 and weight[j, i] > 0]
    matched = sorted({k for pair in pairs for k in pair})
    unmatched = [ids[k] for k in range(n) if k not in matched]
    if unmatched:
        log.warning("skymatch: no usable overlap with any other exposure for group(s) %s: "
                    "their sky cannot be matched", ", ".join(unmatched))
    if not pairs:
        return {g: None for g in ids}
    _warn_disconnected(ids, pairs, matched)
    mean_weight = 0.5 * (weight + weight.T)
    design = np.zeros((len(pairs), n))
    free = np.zeros(len(pairs))
    for row, (i, j) in enumerate(pairs):
        design[row, i], design[row, j] = mean_weight[i, j], -mean_weight[i, j]
        free[row] = mean_weight[i, j] * (sky[j, i] - sky[i, j])
    deltas = np.linalg.pinv(design, rcond=1e-12) @ free
    valid = np.zeros(n, dtype=bool)
    valid[matched] = True
    deltas -= deltas[valid].min() if match_down else deltas[valid].max()
    return {g: float(deltas[k]) if valid[k] else None for k, g in enumerate(ids)}


def _warn_disconnected(ids, pairs, matched) -> None:
    """Warn when the overlap graph of the matched groups falls apart into separate sets."""
    labels = _connected_labels(len(ids), pairs)
    sets: dict[int, list[str]] = {}
    for k in matched:
        sets.setdefault(int(labels[k]), []).append(ids[k])
    if len(sets) > 1:
        described = "; ".join("[" + ", ".join(s) + "]" for s in sets.values())
        log.warning("skymatch: the overlapping exposures form %d disconnected sets, each matched "
                    "only internally (their relative sky is arbitrary): %s", len(sets), described)


def _connected_labels(n: int, pairs) -> list[int]:
    """A label per node 0..n-1, equal for nodes joined by the undirected edges ``pairs``."""
    parent = list(range(n))

    def root(k):
        while parent[k] != k:
            parent[k] = parent[parent[k]]
            k = parent[k]
        return k

    for a, b in pairs:
        parent[root(a)] = root(b)
    return [root(k) for k in range(n)]


# --------------------------------------------------------------------------------------------
# User-supplied levels


def read_skylist(path: str | Path) -> dict[str, float]:
    """Sky levels from a "filename skyvalue" text file, keyed by exposure root.

    Roots are the file names without extension and pipeline suffix (``x_nrca1_cal.fits`` ->
    ``x_nrca1``), as the reference compares them. Blank lines and ``#`` comments are skipped.
    """
    path = Path(path)
    try:
        lines = path.read_text().splitlines()
    except OSError as err:
        raise ConfigError(f"skymatch.skylist {path}: cannot be read ({err.strerror})") from None
    levels: dict[str, float] = {}
    for number, line in enumerate(lines, start=1):
        words = line.split("#", 1)[0].split()
        if not words:
            continue
        try:
            name, value = words[0], float(words[1])
        except (IndexError, ValueError):
            raise ConfigError(f"skymatch.skylist {path}:{number}: expected 'filename skyvalue', "
                              f"got {line.strip()!r}") from None
        root = exposure_root(name)
        if root in levels:
            raise ConfigError(f"skymatch.skylist {path}: {root} is listed more than once")
        levels[root] = value
    return levels


def _user_levels(members, skylist) -> dict[str, float]:
    if not skylist:
        raise ConfigError("skymatch.skymethod is 'user' but no skylist file is given")
    levels = read_skylist(skylist)
    if len(levels) != len(members):
        raise ConfigError(f"skymatch.skylist {skylist} has {len(levels)} entries for "
                          f"{len(members)} exposures")
    out = {}
    for m in members:
        root = exposure_root(m)
        if root not in levels:
            raise ConfigError(f"skymatch.skylist {skylist} has no entry for {root}")
        out[m] = levels[root]
    return out


def write_member_sky_stats(path: str | Path, member: MemberFiles, footprints_path: str | Path,
                           params: SkyStatistics) -> str:
    """Write ``member``'s sky statistics (:func:`member_sky_stats`, against the groups of the
    footprints file at ``footprints_path``) to ``path`` (:func:`write_sky_stats`); returns a
    summary line."""
    exposure = member.read(("data", "dq"))
    stats = member_sky_stats(exposure.data, exposure.dq, exposure.meta.wcs,
                             group_footprints=group_footprints(footprints_path),
                             own_group=member.group_id, params=params)
    write_sky_stats(path, {member.name: stats})
    return (f"{member.name}: local sky {stats['local']['sky']} from {stats['local']['npix']} "
            f"pixels; {len(stats.get('overlaps', {}))} overlapping groups")


def write_sky_records(paths: Mapping[str, str | Path], stats_paths: Sequence[str | Path],
                      groups: Mapping[str, Sequence[str]], params: SkySolve) -> None:
    """Solve the sky (:func:`solve_sky`) from the statistics files and write each member's
    :class:`~image3.datamodel.SkyRecord` to ``paths[member]``; logs each level."""
    records = solve_sky(read_sky_stats(stats_paths), groups, params)
    for member, path in paths.items():
        records[member].write(path)
    log_levels(records)


def write_sky_stats(path: str | Path, stats: Mapping[str, Mapping]) -> None:
    """Write {member: :func:`member_sky_stats` result} as JSON, atomically."""
    tmp = Path(path).with_name(f".{Path(path).name}.tmp")
    tmp.write_text(json.dumps(dict(stats), indent=1) + "\n")
    os.replace(tmp, path)


def read_sky_stats(paths: Sequence[str | Path]) -> dict[str, dict]:
    """Every member's statistics from files of :func:`write_sky_stats` (one per member or per
    group), merged."""
    stats: dict[str, dict] = {}
    for path in paths:
        stats.update(json.loads(Path(path).read_text()))
    return stats
