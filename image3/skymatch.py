"""Sky background levels: per-member sky statistics and the skymatch solve.

The reference (jwst ``SkyMatchStep`` over stcal ``skymatch``) measures and solves in one
process. Here the work is split so that pixels are read once, in parallel:

* :func:`member_sky_stats` runs once per member (one detector of one exposure). It returns a
  small JSON-serialisable dict: the sky statistic of all the member's good pixels ("local")
  and, for each of its partners (:func:`~image3.asn.pair_partners`: every pair of
  members once) that overlaps it, the offset between the two skies from their registered
  pixel differences, with its uncertainty (:mod:`image3.sky_offsets`).
* :func:`solve_sky` runs once (the join). It turns those numbers into one sky level per
  group without reading any pixel: the relative levels by weighted least squares over the
  pair offsets (where the reference compares each member's own sky statistic in the overlap,
  which extended emission biases), the absolute ones as the reference's ``SkyGroup`` does.

The sky statistic itself is :func:`image3.statistics.sky_statistic`; footprints are
:mod:`image3.footprints`'.

Conventions:

- Sky values are in the data's units (MJy/sr). ``npix`` is the number of pixels (or pixel
  differences) a statistic used after clipping; ``good_pixels`` counts pixels before.
- A group is one exposure (``group_id``); all its members get one sky level. Offsets are
  measured per member pair, so the grouping is the solve's alone.
"""

from __future__ import annotations

import json
import logging
import shutil
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict
from pathlib import Path

import numpy as np

from .asn import exposure_root
from .datamodel import MemberFiles, SkyRecord, atomic_write_text
from .dqflags import interpret_bits
from .errors import ConfigError, StepError
from .footprints import overlap_mask, sky_footprint
from .grid import member_geometry
from .kept import keep_files, kept_files, whole_groups
from .parameters import SKY_METHODS, SkySolve, SkyStatistics
from .sidecar import read_work_json
from .sky_offsets import pair_offset, registered_differences
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
    partners: Iterable[tuple[str, np.ndarray, np.ndarray | None, object]],
    params: SkyStatistics,
) -> dict:
    """Sky statistics of one member, everything :func:`solve_sky` needs from its pixels.

    ``data`` (MJy/sr) and ``dq`` are the member's arrays, ``wcs`` its (corrected) gwcs;
    ``partners`` yields (name, data, dq, wcs) of the members whose offset from this one it
    measures (:func:`~image3.asn.pair_partners`; read one at a time when a generator).
    ``params``: which pixels count and the statistic (:func:`~image3.statistics.sky_statistic`).

    Returns (JSON-serialisable; the sky None when no pixel is usable)::

        {"good_pixels": int, "local": {"sky": float | None, "npix": int},
         "pairs": {partner: {"offset", "uncertainty", "npix"}, ...}}

    ``local`` uses all usable pixels (:func:`usable_pixels`); ``pairs`` holds the partners
    that overlap it with their offsets sky_member - sky_partner
    (:func:`~image3.sky_offsets.pair_offset`). Both are measured whatever the sky method:
    only the solve depends on it.
    """
    data = np.asarray(data)
    usable = usable_pixels(data, dq, params)
    sky, npix = sky_statistic(data[usable], params)
    pairs = {}
    for name, other, other_dq, other_wcs in partners:
        differences = registered_differences(data, usable, wcs, np.asarray(other),
                                             usable_pixels(other, other_dq, params), other_wcs)
        offset = None if differences is None else pair_offset(differences, params)
        if offset is not None:
            pairs[name] = offset
    return {"good_pixels": int(usable.sum()), "local": {"sky": sky, "npix": npix},
            "pairs": pairs}


def usable_pixels(data: np.ndarray, dq: np.ndarray | None, params: SkyStatistics) -> np.ndarray:
    """:func:`good_pixels` (``params.dqbits``) whose values lie within ``params.lower`` ...
    ``params.upper`` (None: no limit)."""
    usable = good_pixels(data, dq, params.dqbits)
    with np.errstate(invalid="ignore"):
        if params.lower is not None:
            usable &= data >= params.lower
        if params.upper is not None:
            usable &= data <= params.upper
    return usable


# --------------------------------------------------------------------------------------------
# Join


def solve_sky(
    stats: Mapping[str, Mapping],
    groups: Mapping[str, Sequence[str]],
    params: SkySolve,
    kept: Mapping[str, float] | None = None,
) -> dict[str, SkyRecord]:
    """One sky level per group from the members' statistics, as the reference's skymatch.

    ``stats`` maps member names to :func:`member_sky_stats` results; ``groups`` maps group ids
    to their member names (members of one group share one level). Methods:

    - ``local``: each group's sky, the lowest of its members' ``local`` skies (the reference's
      SkyGroup takes the minimum, not a weighted mean);
    - ``global``: the lowest group sky, for every group;
    - ``match``: relative levels D minimising the sum over measured member pairs (a, b) of
      different groups of ((D_g(a) - D_g(b) - offset_ab) / uncertainty_ab)^2, a pair far off
      the others left out with a warning (:func:`_weighted_levels`); then shifted so the
      lowest (``match_down``) or the highest level is 0. Groups in no pair get None
      (SKIPPED), with a warning naming them; disconnected sets of groups are matched only
      internally, with a warning;
    - ``global+match``: the matched levels D plus min over groups of (sky_g - D_g), so the
      matched set sits on an absolute level. As in the reference, groups in no pair enter
      with D = 0 and are thus given that global level;
    - ``user``: the values of ``params.skylist`` (:func:`read_skylist`), per member.

    A group without any good pixel gets None (SKIPPED) with a warning; a member without good
    pixels in a group that has some shares the group's level (with a warning).

    ``kept``: group -> the level an earlier run gave it (members added to a finished tiled
    run, :mod:`image3.kept`): those groups keep it and the others are solved against them:
    ``local`` as before, ``global`` the kept groups' lowest level, ``match`` and
    ``global+match`` the least-squares levels of the other groups with the kept ones fixed
    (a group not tied to a kept one through overlaps is SKIPPED, with a warning).
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
    elif kept:
        group_levels = (dict.fromkeys(groups, min(kept.values())) if method == "global"
                        else _levels_beside(stats, groups, kept))
        group_levels.update(kept)
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


def _match_deltas(stats, groups, match_down: bool) -> dict[str, float | None]:
    """Relative group levels from the members' pair offsets (see :func:`solve_sky`)."""
    ids, rows = _pair_rows(stats, groups)
    pairs = sorted({(min(i, j), max(i, j)) for i, j, _, _ in rows})
    matched = sorted({k for pair in pairs for k in pair})
    unmatched = [ids[k] for k in range(len(ids)) if k not in matched]
    if unmatched:
        log.warning("skymatch: no usable overlap with any other exposure for group(s) %s: "
                    "their sky cannot be matched", ", ".join(unmatched))
    if not pairs:
        return {g: None for g in ids}
    _warn_disconnected(ids, pairs, matched)
    deltas = _weighted_levels(rows, ids)
    valid = np.zeros(len(ids), dtype=bool)
    valid[matched] = True
    deltas -= deltas[valid].min() if match_down else deltas[valid].max()
    return {g: float(deltas[k]) if valid[k] else None for k, g in enumerate(ids)}


def _pair_rows(stats, groups):
    """The group ids, and a row (i, j, offset, uncertainty) per measured pair of members of
    different groups (i, j indices of the ids)."""
    ids = list(groups)
    index = {m: k for k, g in enumerate(ids) for m in groups[g]}
    rows = [(index[a], index[b], p["offset"], p["uncertainty"])
            for a, entry in stats.items() if a in index
            for b, p in entry.get("pairs", {}).items()
            if b in index and index[a] != index[b]]
    return ids, rows


def _levels_beside(stats, groups, kept: Mapping[str, float]) -> dict[str, float | None]:
    """The levels of the groups not in ``kept`` minimising the sum of :func:`_match_deltas`
    with the ``kept`` levels fixed; None for a group no overlap ties to a kept one."""
    ids, rows = _pair_rows(stats, groups)
    fixed = {k: kept[g] for k, g in enumerate(ids) if g in kept}
    labels = _connected_labels(len(ids), [r[:2] for r in rows])
    tied = {labels[k] for k in fixed}
    free = [k for k in range(len(ids)) if k not in fixed and labels[k] in tied]
    untied = [ids[k] for k in range(len(ids)) if k not in fixed and labels[k] not in tied]
    if untied:
        log.warning("skymatch: no overlap ties group(s) %s to the groups of the previous run: "
                    "their sky is not computed", ", ".join(untied))
    levels = dict.fromkeys(ids)
    column = {k: c for c, k in enumerate(free)}
    design, target = [], []
    for i, j, offset, uncertainty in rows:
        if i not in column and j not in column:  # both kept, or one not tied
            continue
        weight, line = 1.0 / max(uncertainty, 1e-30), np.zeros(len(free))
        value = offset
        for k, sign in ((i, 1.0), (j, -1.0)):
            if k in column:
                line[column[k]] = sign * weight
            else:
                value -= sign * fixed[k]
        design.append(line)
        target.append(value * weight)
    if free:
        solution = np.linalg.lstsq(np.array(design), np.array(target), rcond=None)[0]
        levels.update({ids[k]: float(solution[c]) for k, c in column.items()})
    return levels


def _weighted_levels(rows, ids: Sequence[str]) -> np.ndarray:
    """Levels L (n) minimising sum ((L_i - L_j - offset) / uncertainty)^2 over ``rows`` of
    (i, j, offset, uncertainty); the minimum-norm solution (each connected set of groups has
    mean level 0). The pair farthest off is solved without: if the others, with at least two
    equations more than unknowns (so that their scatter says something), predict its offset
    worse than 5 of its uncertainties times their own robust scatter (at least 1), it is left
    out with a warning, and so on while the sets of groups stay connected."""
    rows, n = list(rows), len(ids)
    levels, normalised, _ = _solve_levels(rows, n)
    while len(rows) > 1:
        worst = int(np.argmax(normalised))
        trial = rows[:worst] + rows[worst + 1:]
        if _partition(n, [r[:2] for r in trial]) != _partition(n, [r[:2] for r in rows]):
            break
        trial_levels, trial_normalised, rank = _solve_levels(trial, n)
        if len(trial) - rank < 2:
            break
        i, j, offset, uncertainty = rows[worst]
        miss = abs(trial_levels[i] - trial_levels[j] - offset) / max(uncertainty, 1e-30)
        if miss <= 5.0 * max(1.0, 1.4826 * float(np.median(trial_normalised))):
            break
        log.warning("skymatch: an offset of %s from %s (%.4g +- %.2g MJy/sr) disagrees with the "
                    "other overlaps by %.1f of its uncertainties: left out", ids[i], ids[j],
                    offset, uncertainty, miss)
        rows, levels, normalised = trial, trial_levels, trial_normalised
    return levels


def _solve_levels(rows, n: int) -> tuple[np.ndarray, np.ndarray, int]:
    """The weighted least-squares levels of :func:`_weighted_levels`, each row's |residual| in
    units of its uncertainty and the rank of the equations."""
    weight = np.array([1.0 / max(r[3], 1e-30) for r in rows])
    design = np.zeros((len(rows), n))
    for k, (i, j, _, _) in enumerate(rows):
        design[k, i], design[k, j] = weight[k], -weight[k]
    target = np.array([r[2] for r in rows]) * weight
    levels, _, rank, _ = np.linalg.lstsq(design, target, rcond=None)
    return levels, np.abs(design @ levels - target), int(rank)


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


def _partition(n: int, pairs) -> list[int]:
    """:func:`_connected_labels` made comparable: each node labelled by the first node of its set."""
    first: dict[int, int] = {}
    return [first.setdefault(label, k) for k, label in enumerate(_connected_labels(n, pairs))]


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


def write_member_sky_stats(path: str | Path, member: MemberFiles, partners: Sequence[MemberFiles],
                           stepsize: int | None, params: SkyStatistics) -> str:
    """Write ``member``'s sky statistics (:func:`member_sky_stats`) to ``path``
    (:func:`write_sky_stats`), reading those of its ``partners`` whose footprint (from its
    geometry and gwcs sidecars, ``stepsize`` pixels between points along its edges, None: the
    corners) overlaps it, one at a time; returns a summary line."""
    exposure = member.read(("data", "dq"))
    wcs, shape = exposure.meta.wcs, exposure.data.shape

    def overlapping():
        for partner in partners:
            found = member_geometry(partner.cal, partner.wcs, partner.geometry)
            if overlap_mask(wcs, shape, sky_footprint(found.wcs, found.shape, stepsize)).any():
                other = partner.read(("data", "dq"))
                yield partner.name, other.data, other.dq, other.meta.wcs

    stats = member_sky_stats(exposure.data, exposure.dq, wcs, partners=overlapping(),
                             params=params)
    write_sky_stats(path, {member.name: {"group": member.group_id, **stats}})
    return (f"{member.name}: local sky {stats['local']['sky']} from {stats['local']['npix']} "
            f"pixels; offsets from {len(stats['pairs'])} overlapping members of "
            f"{len(partners)} partners")


def write_sky_records(paths: Mapping[str, str | Path], stats_paths: Sequence[str | Path],
                      groups: Mapping[str, Sequence[str]], params: SkySolve,
                      keep_in: tuple[str | Path, Mapping[str, Sequence[str | Path]]] | None
                      = None, refit: bool = False) -> None:
    """Solve the sky (:func:`solve_sky`) from the statistics files and write each member's
    :class:`~image3.datamodel.SkyRecord` to ``paths[member]``; logs each level.

    ``keep_in``: (a work folder, member -> the files its level depends on) when members are
    added to a finished tiled run: the groups whose records the last run kept there and still
    apply (:mod:`image3.kept`) keep them byte for byte, unless ``refit``; what this run wrote is
    kept in turn."""
    settings = asdict(params)
    kept = whole_groups(kept_files(keep_in[0], "skymatch", settings, keep_in[1]), groups) \
        if keep_in and not refit else {}
    previous = {m: SkyRecord.read(path) for m, path in kept.items()}
    levels = {g: previous[names[0]].level for g, names in groups.items()
              if names and names[0] in previous}
    records = solve_sky(read_sky_stats(stats_paths), groups, params,
                        {g: v for g, v in levels.items() if v is not None} or None)
    records.update(previous)
    for member, path in paths.items():
        if member in kept:
            shutil.copyfile(kept[member], path)
        else:
            records[member].write(path)
    log_levels(records)
    if keep_in:
        keep_files(keep_in[0], "skymatch", settings, paths, keep_in[1])


def write_sky_stats(path: str | Path, stats: Mapping[str, Mapping]) -> None:
    """Write {member: :func:`member_sky_stats` result} as JSON, atomically."""
    atomic_write_text(path, json.dumps(dict(stats), indent=1) + "\n")


def read_sky_stats(paths: Sequence[str | Path]) -> dict[str, dict]:
    """Every member's statistics from files of :func:`write_sky_stats` (one per member or per
    group), merged."""
    stats: dict[str, dict] = {}
    for path in paths:
        stats.update(read_work_json(path))
    return stats
