"""tweakreg: align exposures to each other (and optionally to a reference catalogue).

The reference's algorithm (jwst ``TweakRegStep`` + stcal ``relative_align`` /
``absolute_align`` + tweakwcs), split at the workflow's job boundary:

1. Per member, :func:`exposure_sources` finds point-like sources (the reference's
   ``make_tweakreg_catalog``, :func:`image3.detection.find_sources`) on pixels not flagged
   DO_NOT_USE or NON_SCIENCE, keeping those strictly inside the WCS bounding box. Positions are
   0-based pixels of the exposure (``xcentroid``, ``ycentroid``).
2. Once for all members, :func:`align_exposures`:

   * relative alignment, when there are two or more groups: members sharing a group id are one
     rigid body (their catalogues concatenated); by default the first group is the reference
     and every other group is matched to its catalogue (``expand_refcat`` / not
     ``enforce_user_order``: tweakwcs's largest-overlap order with a growing reference
     catalogue). Matching is tweakwcs's ``XYXYMatch`` (2-D histogram of offsets within
     ``searchrad``, then xyxymatch with ``separation`` / ``tolerance``) in the reference
     group's V2V3 tangent plane [arcsec]; the fit is ``fitgeometry`` with ``nclip`` rounds of
     ``sigma`` × RMSE clipping. A group with fewer than ``minobj`` matches keeps its WCS.
     If any corrected footprint moved by 2·(searchrad + tolerance) arcsec or more, the whole
     relative result is rejected, as the reference does;
   * absolute alignment, when a reference catalogue is given: all members as ONE rigid body
     fitted to it with the ``abs_*`` parameters, user order, no catalogue expansion. The
     catalogue is the file's rows within the G limits, moved by their proper motions to the
     members' mean mid-time (:func:`image3.refcat.reference_catalog`).

   Beyond the reference: a fit whose residual RMS exceeds ``max_rms`` arcsec is not applied
   (the group keeps its WCS), so a confused match cannot silently distort the mosaic; and in
   the absolute fit a source already measured by an earlier member is dropped from the later
   members' lists (see :func:`_without_repeats`: the reference's duplicate handling biases the
   absolute solution by about one centroid error).

The correction is tweakwcs's ``JWSTWCSCorrector``: an affine transform in the V2V3 tangent
plane inserted into each member's gwcs (frames ``v2v3[vacorr] → v2v3corr``), exactly as
the reference stores it.

Status, as the reference: every member is marked COMPLETE once alignment ran (also the
reference group and groups whose fit failed; their fit status is in the report), SKIPPED when
relative alignment could not run (fewer than two groups with sources, source confusion, the
whole result rejected) and there is no absolute alignment, or when the absolute reference
catalogue has too few sources (relative results are then discarded too). A failed absolute fit
also leaves every member with its input WCS.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import math
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from astropy.table import Table, vstack
from scipy.spatial import cKDTree
from tweakwcs import JWSTWCSCorrector
from tweakwcs.imalign import NotEnoughCatalogs, align_wcs
from tweakwcs.matchutils import MatchSourceConfusionError, XYXYMatch

from .datamodel import (ExposureMeta, atomic_path, check_exposure, open_exposure, read_wcs,
                        write_wcs)
from .detection import find_sources
from .dqflags import PIXEL
from .errors import InputFileError
from .grid import geometry_of, load_geometry, save_geometry
from .joint_fit import Correction, PairMatches, connected_bodies, solve_corrections
from .kept import keep_files, kept_files, whole_groups
from .parameters import AlignmentFit, FitStage, ReferenceStars, SourceFinding
from .refcat import read_source_list, reference_catalog
from .sidecar import read_sidecar
from .steps import saved_catalog_name

log = logging.getLogger(__name__)

__all__ = [
    "Alignment",
    "ExposureCatalog",
    "GroupFit",
    "align_exposures",
    "align_members",
    "describe_residuals",
    "exposure_mid_mjd",
    "exposure_sources",
    "find_exposure_sources",
    "inside_bounding_box",
    "match_residuals",
    "read_exposure_catalog",
    "read_sources",
    "report_table",
    "saved_catalog_name",
    "write_reference_catalog",
    "write_report",
    "write_saved_abs_catalog",
    "write_saved_catalog",
    "write_sources",
]

# DQ bits that exclude a pixel from source finding (the reference's coverage mask).
_EXCLUDED_BITS = PIXEL["DO_NOT_USE"] | PIXEL["NON_SCIENCE"]

# The reference gives every member this group id for the absolute fit (one rigid body).
_ABSOLUTE_GROUP = 987654


# --------------------------------------------------------------------------------------------
# Source lists


def exposure_sources(model, finding: SourceFinding) -> Table:
    """Sources of one exposure for alignment: ``id, xcentroid, ycentroid, flux``.

    ``finding`` holds the reference's finding parameters. Pixels flagged DO_NOT_USE or
    NON_SCIENCE are excluded; ``ERR`` is the segmentation finder's error array.
    Only sources strictly inside the WCS bounding box are kept.
    """
    mask = None
    if model.dq is not None and model.dq.shape == model.data.shape:
        mask = (model.dq & _EXCLUDED_BITS) != 0
    err = model.err if model.err is not None and model.err.shape == model.data.shape else None
    sources = find_sources(model.data, mask, err, finding)
    return inside_bounding_box(sources, model.meta.wcs.bounding_box)


def find_exposure_sources(cal, sources_path, geometry_path, finding: SourceFinding,
                          catalog=None) -> tuple[int, str]:
    """A member's share of tweakreg before the join: check its ``_cal``, write its geometry
    sidecar (gwcs, shape, wcsinfo: the join then need not open the ``_cal``) and its source
    list (:func:`write_sources`), found with ``finding`` or read from the user's ``catalog``
    and cut to the detector's bounding box. Returns the number of sources and their origin."""
    with open_exposure(cal) as model:
        check_exposure(model, cal)
        save_geometry(geometry_path, geometry_of(model), ExposureMeta.of(model, cal))
        if catalog:
            sources = inside_bounding_box(read_source_list(catalog), model.meta.wcs.bounding_box)
            origin = f"user catalogue {catalog}"
        else:
            sources = exposure_sources(model, finding)
            origin = f"{finding.starfinder} star finder"
    write_sources(sources, sources_path, origin=origin)
    return len(sources), origin


def inside_bounding_box(sources: Table, bounding_box) -> Table:
    """Rows of ``sources`` strictly inside a gwcs bounding box (all rows when there is none)."""
    if bounding_box is None or len(sources) == 0:
        return sources
    if hasattr(bounding_box, "bounding_box"):
        bounding_box = bounding_box.bounding_box(order="F")
    (xmin, xmax), (ymin, ymax) = bounding_box
    x, y = np.asarray(sources["xcentroid"]), np.asarray(sources["ycentroid"])
    return sources[(x > xmin) & (x < xmax) & (y > ymin) & (y < ymax)]


# --------------------------------------------------------------------------------------------
# Alignment inputs and results


@dataclass
class ExposureCatalog:
    """One member's alignment input.

    ``wcsinfo`` holds ``v2_ref``, ``v3_ref`` [arcsec] and ``roll_ref`` [deg] (the member's
    ``meta.wcsinfo``); ``sources`` has ``xcentroid``, ``ycentroid`` (0-based pixels) and
    optionally ``weight``.
    """

    name: str
    group_id: str
    wcs: object
    wcsinfo: Mapping
    sources: Table


@dataclass
class GroupFit:
    """The fit of one group at one stage ('relative' or 'absolute').

    ``status`` is tweakwcs's (REFERENCE, SUCCESS, FAILED: reason) or REJECTED: reason when a
    successful fit was not applied (RMS above ``max_rms``, whole result rejected). ``shift`` is
    in arcsec and ``rotation_deg`` in degrees, both in the reference tangent plane (V2V3-based
    axes); ``rms_arcsec`` is the fit's residual RMS.
    """

    stage: str
    group_id: str
    members: list[str]
    status: str
    n_sources: int
    n_matched: int = 0
    n_fit: int = 0
    rms_arcsec: float = math.nan
    shift_arcsec: tuple[float, float] = (math.nan, math.nan)
    rotation_deg: float = math.nan
    scale: float = math.nan

    @property
    def applied(self) -> bool:
        return self.status == "SUCCESS"


@dataclass
class Alignment:
    """The step's result: final gwcs per member, the cal_step status, every group's fit, and
    the members whose gwcs was corrected (the reference refits their FITS SIP headers)."""

    wcs: dict[str, object]
    status: str
    fits: list[GroupFit] = field(default_factory=list)
    corrected: frozenset[str] = frozenset()


class _StageFailed(Exception):
    """A stage could not produce any result (the reference's TweakregError); ``fits`` are the
    group fits it rejected, for the report."""

    def __init__(self, message: str, fits: list[GroupFit] | None = None):
        super().__init__(message)
        self.fits = fits or []


# --------------------------------------------------------------------------------------------
# The step


def align_exposures(exposures: Sequence[ExposureCatalog], params: AlignmentFit,
                    refcat: Table | None = None, kept: frozenset[str] = frozenset()) -> Alignment:
    """Relative, then (with ``refcat``, a table with RA/DEC [deg]) absolute alignment.

    ``params`` carries the reference's matching and fit parameters of both stages and
    ``max_rms`` [arcsec]. Problems that stop a stage are logged as one warning line and
    leave the WCSs unchanged; nothing is raised for data the step cannot align.

    ``kept``: groups aligned by an earlier run (their exposures carry that run's gwcs,
    :mod:`image3.kept`): they are the joint fit's fixed bodies, the other groups are tied to
    them, and the absolute stage is not redone (the kept groups carry it).
    """
    original = {e.name: e.wcs for e in exposures}
    n_groups = len({e.group_id for e in exposures})
    fits: list[GroupFit] = []
    relative_done = False
    wcs = dict(original)
    if kept:
        log.info("groups %s keep the alignment of the previous run; the others are tied to "
                 "them%s", ", ".join(sorted(kept)),
                 "" if refcat is None else " (no new absolute fit)")
        refcat = None

    if n_groups > 1:
        # as the reference, a reference catalogue forces expand_refcat for the relative stage
        expand = params.expand_refcat or refcat is not None
        try:
            wcs, stage_fits = _relative(exposures, params, expand, kept)
            fits += stage_fits
            relative_done = True
        except _StageFailed as exc:
            log.warning("relative alignment not done: %s", exc)
            fits += exc.fits
    else:
        log.info("one group (%s): no relative alignment", exposures[0].group_id)

    if refcat is not None:
        current = [ExposureCatalog(e.name, e.group_id, wcs[e.name], e.wcsinfo, e.sources)
                   for e in exposures]
        try:
            abs_wcs, stage_fits = _absolute(current, refcat, params)
        except _StageFailed as exc:
            log.warning("absolute alignment not done, every exposure keeps its input WCS: %s", exc)
            return _result(original, original, "SKIPPED",
                           _discarded(fits, "absolute alignment not done"))
        if not stage_fits[0].applied:
            # As the reference: only members whose last fit succeeded get a new WCS.
            return _result(original, original, "COMPLETE",
                           _discarded(fits, "absolute fit not applied") + stage_fits)
        fits += stage_fits
        for w in abs_wcs.values():
            w.name = f"FIT-LVL3-{refcat.meta.get('name', 'REFCAT')}"
        return _result(abs_wcs, original, "COMPLETE", fits)

    if not relative_done:
        return _result(original, original, "SKIPPED", fits)
    return _result(wcs, original, "COMPLETE", fits)


def _result(wcs: dict, original: dict, status: str, fits: list[GroupFit]) -> Alignment:
    corrected = frozenset(name for name, w in wcs.items() if w is not original[name])
    return Alignment(wcs, status, fits, corrected)


def _discarded(fits: list[GroupFit], reason: str) -> list[GroupFit]:
    """``fits`` with every applied fit marked REJECTED (its correction was thrown away)."""
    for fit in fits:
        if fit.applied:
            fit.status = f"REJECTED: {reason}"
    return fits


def _corrector(exposure: ExposureCatalog, group_id):
    catalog = Table({"x": np.asarray(exposure.sources["xcentroid"], dtype=float),
                     "y": np.asarray(exposure.sources["ycentroid"], dtype=float)})
    if "weight" in exposure.sources.colnames:
        catalog["weight"] = np.asarray(exposure.sources["weight"], dtype=float)
    catalog = catalog[np.isfinite(catalog["x"]) & np.isfinite(catalog["y"])]
    catalog.meta["name"] = exposure.name
    info = {k: float(exposure.wcsinfo[k]) for k in ("v2_ref", "v3_ref", "roll_ref")}
    try:
        return JWSTWCSCorrector(exposure.wcs, info, meta={"catalog": catalog,
                                                          "name": exposure.name,
                                                          "group_id": group_id})
    except ValueError as exc:  # a gwcs without the JWST v2v3 frames, or an inconsistent TPCorr
        raise _StageFailed(f"{exposure.name}: its WCS cannot be corrected by tweakwcs's JWST "
                           f"corrector ({_message(exc)}); every exposure keeps its input "
                           "WCS") from None


def _message(exc: Exception) -> str:
    """An exception's text; tweakwcs passes printf-style (format, value) pairs."""
    try:
        return str(exc.args[0] % exc.args[1:]) if len(exc.args) > 1 else str(exc)
    except TypeError:
        return " ".join(map(str, exc.args))


def _match(stage: FitStage):
    return XYXYMatch(searchrad=stage.searchrad, separation=stage.separation,
                     use2dhist=stage.use2dhist, tolerance=stage.tolerance,
                     xoffset=stage.xoffset, yoffset=stage.yoffset)


def _run_tweakwcs(correctors, stage: FitStage, **options) -> None:
    """tweakwcs ``align_wcs`` with one stage's match and fit parameters; a failure of the
    whole stage becomes :class:`_StageFailed`."""
    with _tweakwcs_messages_to_log():
        try:
            align_wcs(
                correctors,
                minobj=stage.minobj,
                match=_match(stage),
                fitgeom=stage.fitgeometry,
                nclip=stage.nclip,
                sigma=(stage.sigma, "rmse"),
                **options,
            )
        except NotEnoughCatalogs:
            needed = "one exposure" if options.get("refcat") is not None else "two groups"
            raise _StageFailed(f"at least {needed} with sources needed") from None
        except MatchSourceConfusionError:
            raise _StageFailed(
                f"several sources matched one reference source; lower "
                f"tweakreg.{stage.prefix}tolerance and/or tweakreg.{stage.prefix}separation"
            ) from None


def _relative(exposures: Sequence[ExposureCatalog], params: AlignmentFit, expand: bool,
              kept: frozenset[str] = frozenset()):
    correctors = [_corrector(e, e.group_id) for e in exposures]
    layout = GroupLayout.of(exposures, correctors, params.relative.searchrad)
    method = params.relative_method
    if kept:  # only the joint fit holds several groups fixed
        method = "joint"
    elif method == "auto":
        method = "sequential" if layout.all_overlap() else "joint"
    log.info("relative alignment: %s fit (relative_method = %s)", method,
             params.relative_method)
    if method == "joint":
        fits = _joint_relative(exposures, correctors, layout, params, kept)
    else:
        _run_tweakwcs(correctors, params.relative, refcat=None,
                      enforce_user_order=params.enforce_user_order, expand_refcat=expand)
        fits = _group_fits("relative", exposures, correctors, params)
    limit = _largest_allowed_move(params.relative)
    moved = max(_footprint_move_arcsec(c) for c in correctors)
    if not moved < limit:
        reason = (f"a corrected WCS moved by {moved:.3g} arcsec, not less than 2 x (searchrad + "
                  f"tolerance) = {limit:.3g} arcsec (mismatched sources?)")
        raise _StageFailed(reason, _discarded(fits, f"whole relative result, {reason}"))
    return _final_wcs(exposures, correctors, fits), fits


#: ``relative_method: auto`` takes the reference's sequential fit when every two groups
#: overlap by at least this fraction of one of them (dithers of 5-15% of the field overlap by
#: >= 70%; a mosaic's neighbours by ~10%, its diagonal neighbours ~1%).
DITHER_OVERLAP = 0.5


@dataclass
class GroupLayout:
    """The groups as the joint fit sees them, before alignment: per group its members'
    footprints and its sources, (N, 2) [arcsec] in the tangent plane of ``reference`` (the
    first member's tweakwcs corrector), and its pixel scale [arcsec]; two groups overlap where
    their footprints come within ``margin_arcsec`` (tweakreg's ``searchrad``)."""

    reference: object
    groups: list[str]
    footprints: dict[str, list[np.ndarray]]
    sources: dict[str, np.ndarray]
    pixel_scale: dict[str, float]
    margin_arcsec: float

    @classmethod
    def of(cls, exposures: Sequence[ExposureCatalog], correctors, margin_arcsec: float):
        reference = correctors[0]
        groups = list(dict.fromkeys(e.group_id for e in exposures))
        footprints = {g: [] for g in groups}
        sources = {g: [] for g in groups}
        scale = {}
        for e, c in zip(exposures, correctors, strict=True):
            ra, dec = c.original_wcs.footprint(axis_type="spatial").T
            footprints[e.group_id].append(np.column_stack(reference.world_to_tanp(ra, dec)))
            catalog = c.meta["catalog"]
            if len(catalog):
                ra, dec = c.det_to_world(np.asarray(catalog["x"]), np.asarray(catalog["y"]))
                sources[e.group_id].append(np.column_stack(reference.world_to_tanp(ra, dec)))
            scale.setdefault(e.group_id, float(c.tanp_center_pixel_scale))
        return cls(reference, groups, footprints,
                   {g: np.vstack(v) if v else np.empty((0, 2)) for g, v in sources.items()},
                   scale, margin_arcsec)

    def near(self, points: np.ndarray, group: str) -> np.ndarray:
        """Which of ``points`` lie within ``margin_arcsec`` of ``group``'s footprints."""
        return np.any([_near_polygon(points, polygon, self.margin_arcsec)
                       for polygon in self.footprints[group]], axis=0)

    def overlap(self, a: str, b: str) -> bool:
        edges = np.vstack([_densified(poly) for poly in self.footprints[a]])
        other = np.vstack([_densified(poly) for poly in self.footprints[b]])
        return bool(self.near(edges, b).any() or self.near(other, a).any())

    def covered_fraction(self, a: str, b: str) -> float:
        """The fraction of ``a``'s footprints that ``b``'s cover (no margin)."""
        inside = [np.any([_near_polygon(points, polygon, 0.0)
                          for polygon in self.footprints[b]], axis=0)
                  for points in (_interior(poly) for poly in self.footprints[a])]
        return float(np.mean(np.concatenate(inside)))

    def all_overlap(self, fraction: float = DITHER_OVERLAP) -> bool:
        """Whether every two groups overlap by ``fraction`` of one of them (a dither set),
        not only at a mosaic's edges and corners."""
        return all(max(self.covered_fraction(a, b), self.covered_fraction(b, a)) >= fraction
                   for a, b in itertools.combinations(self.groups, 2))



def _interior(polygon: np.ndarray, n: int = 12) -> np.ndarray:
    """An n x n grid of points inside a quadrilateral (bilinear in its corners)."""
    u = (np.arange(n) + 0.5) / n
    s, t = (a.ravel()[:, None] for a in np.meshgrid(u, u))
    p0, p1, p2, p3 = polygon[:4]
    return (1 - s) * (1 - t) * p0 + s * (1 - t) * p1 + s * t * p2 + (1 - s) * t * p3


def _densified(polygon: np.ndarray, per_edge: int = 16) -> np.ndarray:
    """Points along a closed polygon's edges (its vertices included)."""
    following = np.roll(polygon, -1, axis=0)
    t = np.linspace(0.0, 1.0, per_edge, endpoint=False)[:, None, None]
    return (polygon + t * (following - polygon)).reshape(-1, 2)


def _near_polygon(points: np.ndarray, polygon: np.ndarray, margin: float) -> np.ndarray:
    """Points inside ``polygon`` or within ``margin`` of one of its edges."""
    from matplotlib.path import Path as PolygonPath

    if len(points) == 0:
        return np.zeros(0, dtype=bool)
    inside = PolygonPath(polygon).contains_points(points)
    start, end = polygon, np.roll(polygon, -1, axis=0)
    edge = end - start
    t = np.clip(np.einsum("nkj,kj->nk", points[:, None, :] - start[None], edge)
                / np.maximum(np.einsum("kj,kj->k", edge, edge), 1e-300), 0.0, 1.0)
    closest = start[None] + t[..., None] * edge[None]
    distance = np.min(np.hypot(*(points[:, None, :] - closest).transpose(2, 0, 1)), axis=1)
    return inside | (distance <= margin)


def _joint_relative(exposures: Sequence[ExposureCatalog], correctors, layout: GroupLayout,
                    params: AlignmentFit, kept: frozenset[str] = frozenset()) -> list[GroupFit]:
    """Relative alignment of every group at once (:mod:`image3.joint_fit`): each pair of
    overlapping groups matched with tweakwcs's matcher on the sources near the other's
    footprints, pairs of ``pair_minobj`` matches or more fitted together, the reference the
    first group of the largest set of groups tied by such pairs, or the ``kept`` groups, held
    fixed."""
    stage = params.relative
    match = _match(stage)
    pairs, found = [], {g: [] for g in layout.groups}
    for a, b in itertools.combinations(layout.groups, 2):
        if not layout.overlap(a, b):
            continue
        xy_a = layout.sources[a][layout.near(layout.sources[a], b)]
        xy_b = layout.sources[b][layout.near(layout.sources[b], a)]
        n = 0
        if min(len(xy_a), len(xy_b)) >= params.pair_minobj:
            try:
                ia, ib = match(Table({"TPx": xy_a[:, 0], "TPy": xy_a[:, 1]}),
                               Table({"TPx": xy_b[:, 0], "TPy": xy_b[:, 1]}),
                               tp_pscale=layout.pixel_scale[a], tp_units="arcsec")
                n = len(ia)
            except MatchSourceConfusionError:
                log.warning("relative alignment: groups %s and %s: several sources matched one "
                            "(lower tweakreg.tolerance or separation); overlap not used", a, b)
        found[a].append((b, n))
        found[b].append((a, n))
        if n >= params.pair_minobj:
            pairs.append(PairMatches(a, b, xy_a[ia], xy_b[ib]))
    body = {g: g for g in layout.groups}
    components = []
    for g in layout.groups:
        if not any(g in c for c in components):
            components.append(connected_bodies(pairs, body, {g}))
    largest = max(components, key=len)
    # the kept groups are the fixed bodies; else the reference is fixed
    reference = None if kept else next(g for g in layout.groups if g in largest)
    order = [g for g in layout.groups if g == reference] + [g for g in layout.groups
                                                             if g != reference]
    solution = solve_corrections(pairs, order, fixed={g: Correction() for g in kept},
                                 rotation=stage.fitgeometry != "shift", nclip=stage.nclip,
                                 sigma=stage.sigma)
    fits = []
    for g in layout.groups:
        indices = [i for i, e in enumerate(exposures) if e.group_id == g]
        names = [exposures[i].name for i in indices]
        used = sum(n for _, n in found[g] if n >= params.pair_minobj)
        fit = GroupFit("relative", g, names, "KEPT" if g in kept else "REFERENCE",
                       len(layout.sources[g]), used)
        if g in solution.fitted:
            correction = solution.corrections[g]
            fit.status, fit.n_fit = "SUCCESS", solution.n_fit[g]
            fit.rms_arcsec = solution.rms_arcsec.get(g, math.nan)
            fit.shift_arcsec, fit.rotation_deg = correction.shift, math.degrees(correction.theta)
            fit.scale = 1.0
            limit, key = _rms_limit(params, layout.pixel_scale[g])
            if not fit.rms_arcsec <= limit:
                fit.status = f"REJECTED: RMS {fit.rms_arcsec:.3g} arcsec > {key}"
            else:
                for i in indices:
                    correctors[i].set_correction(matrix=correction.matrix,
                                                 shift=correction.shift,
                                                 ref_tpwcs=layout.reference)
        elif g != reference and g not in kept:
            seen = ", ".join(f"{n} with {b}" for b, n in found[g]) or "no overlapping group"
            fit.status = (f"FAILED: too few matches to tie it to the reference ({seen}; "
                          f"pair_minobj = {params.pair_minobj} per overlap)")
        _log_fit(fit)
        fits.append(fit)
    return fits


def _absolute(exposures: Sequence[ExposureCatalog], refcat: Table, params: AlignmentFit):
    stage = params.absolute
    if len(refcat) < stage.minobj:
        raise _StageFailed(f"the reference catalogue has {len(refcat)} sources, fewer than "
                           f"abs_minobj = {stage.minobj}")
    exposures = _without_repeats(exposures, stage.separation)
    correctors = [_corrector(e, _ABSOLUTE_GROUP) for e in exposures]
    _run_tweakwcs(correctors, stage, refcat=refcat, enforce_user_order=True,
                  expand_refcat=False)
    fits = _group_fits("absolute", exposures, correctors, params, one_body=True)
    return _final_wcs(exposures, correctors, fits), fits


def _without_repeats(exposures: Sequence[ExposureCatalog], radius_arcsec: float):
    """Members' sources minus those already measured by an earlier member (within
    ``radius_arcsec`` on the sky, through the members' current WCSs).

    In the one-body absolute fit the members' catalogues are concatenated, so a star seen by
    n overlapping exposures appears n times. xyxymatch then keeps only the lowest-y copy
    (its ``separation`` filter), i.e. the copy whose centroid error is most negative along
    the tangent plane's y axis: the reference's absolute solution is biased by about one
    centroid error (measured: 0.045 pixel with 4 dithers). Keeping the first member's copy
    instead makes the choice independent of the measurement error.
    """
    skies = [_sky(e) for e in exposures]
    ra_all, dec_all = (np.concatenate(c) for c in zip(*skies))
    if ra_all.size == 0:
        return list(exposures)
    centre = (ra_all[0], dec_all[0])  # any point of the field serves as tangent point
    kept_xy = np.empty((0, 2))
    result = []
    for exposure, sky in zip(exposures, skies, strict=True):
        xy = _tangent_arcsec(*sky, *centre)
        keep = np.ones(len(xy), dtype=bool)
        if len(kept_xy) and len(xy):
            distance, _ = cKDTree(kept_xy).query(xy, distance_upper_bound=radius_arcsec)
            keep = ~(distance <= radius_arcsec)
        result.append(ExposureCatalog(exposure.name, exposure.group_id, exposure.wcs,
                                      exposure.wcsinfo, exposure.sources[keep]))
        kept_xy = np.vstack([kept_xy, xy[keep]])
    return result


def _sky(exposure: ExposureCatalog):
    x = np.asarray(exposure.sources["xcentroid"], dtype=float)
    y = np.asarray(exposure.sources["ycentroid"], dtype=float)
    if len(x) == 0:
        return np.empty(0), np.empty(0)
    ra, dec = exposure.wcs(x, y, with_bounding_box=False)
    return np.asarray(ra), np.asarray(dec)


def _tangent_arcsec(ra, dec, ra0, dec0) -> np.ndarray:
    """Gnomonic (east, north) offsets [arcsec] of (ra, dec) from (ra0, dec0), all degrees."""
    ra, dec, ra0, dec0 = map(np.deg2rad, (ra, dec, ra0, dec0))
    cos_c = np.sin(dec0) * np.sin(dec) + np.cos(dec0) * np.cos(dec) * np.cos(ra - ra0)
    east = np.cos(dec) * np.sin(ra - ra0) / cos_c
    north = (np.cos(dec0) * np.sin(dec) - np.sin(dec0) * np.cos(dec) * np.cos(ra - ra0)) / cos_c
    return np.rad2deg(np.column_stack([east, north])) * 3600.0


def _largest_allowed_move(stage: FitStage) -> float:
    """The reference's sanity limit [arcsec] on how far relative alignment may move a WCS."""
    if stage.use2dhist:
        return 2.0 * (stage.searchrad + stage.tolerance)
    return 2.0 * (max(abs(stage.xoffset), abs(stage.yoffset)) + stage.tolerance)


def _footprint_move_arcsec(corrector) -> float:
    """Largest displacement [arcsec] of a footprint vertex between original and corrected WCS."""
    before = np.deg2rad(corrector.original_wcs.footprint(axis_type="spatial"))
    after = np.deg2rad(corrector.wcs.footprint(axis_type="spatial"))
    (ra1, dec1), (ra2, dec2) = before.T, after.T
    cos_d = (np.sin(dec1) * np.sin(dec2) + np.cos(dec1) * np.cos(dec2) * np.cos(ra2 - ra1))
    return float(np.rad2deg(np.max(np.arccos(np.clip(cos_d, -1.0, 1.0)))) * 3600.0)


def _rms_limit(params: AlignmentFit, pixel_scale_arcsec: float) -> tuple[float, str]:
    """The largest residual RMS [arcsec] a fit may have, and which key sets it."""
    in_pixels = params.max_rms_pixels * pixel_scale_arcsec
    if in_pixels < params.max_rms:
        return in_pixels, f"max_rms_pixels {params.max_rms_pixels:g} x {pixel_scale_arcsec:.4g}\""
    return params.max_rms, f"max_rms {params.max_rms:g}\""


def _group_fits(stage: str, exposures, correctors, params: AlignmentFit,
                one_body: bool = False) -> list[GroupFit]:
    """One :class:`GroupFit` per group (one in all for the absolute stage), the RMS limits
    (:func:`_rms_limit`) applied."""
    groups: dict[str, list[int]] = {}
    for i, e in enumerate(exposures):
        groups.setdefault("all" if one_body else e.group_id, []).append(i)
    fits = []
    for group_id, indices in groups.items():
        info = correctors[indices[0]].meta.get("fit_info", {"status": "FAILED: not aligned"})
        n_sources = sum(len(correctors[i].meta["catalog"]) for i in indices)
        fit = GroupFit(stage, group_id, [exposures[i].name for i in indices],
                       str(info["status"]), n_sources)
        if fit.status == "SUCCESS":
            fit.n_matched = int(info.get("nmatches", 0))
            fit.n_fit = int(np.count_nonzero(info["fitmask"]))
            fit.rms_arcsec = float(info["rmse"])
            fit.shift_arcsec = (float(info["shift"][0]), float(info["shift"][1]))
            fit.rotation_deg = float(info["proper_rot"])
            fit.scale = float(info["<scale>"])
            limit, key = _rms_limit(params, correctors[indices[0]].tanp_center_pixel_scale)
            if not fit.rms_arcsec <= limit:
                fit.status = f"REJECTED: RMS {fit.rms_arcsec:.3g} arcsec > {key}"
        _log_fit(fit)
        fits.append(fit)
    return fits


def _log_fit(fit: GroupFit) -> None:
    where = f"{fit.stage} alignment, group {fit.group_id}"
    if fit.status == "REFERENCE":
        log.info("%s: reference (%d sources), WCS unchanged", where, fit.n_sources)
    elif fit.status == "KEPT":
        log.info("%s: kept from the previous run, held fixed (%d sources)", where,
                 fit.n_sources)
    elif fit.status == "SUCCESS":
        log.info("%s: %d matches, %d fitted, RMS %.4f arcsec, shift (%.4f, %.4f) arcsec, "
                 "rotation %.5f deg, scale %.7f", where, fit.n_matched, fit.n_fit,
                 fit.rms_arcsec, *fit.shift_arcsec, fit.rotation_deg, fit.scale)
    else:
        reason = fit.status.split(":", 1)[-1].strip()
        if reason == "not enough matches":
            reason = "too few matched sources (fewer than minobj)"
        elif reason == "empty source catalog":
            reason = "no sources"
        log.warning("%s not applied, WCS kept: %s (%d sources)", where, reason, fit.n_sources)


def _final_wcs(exposures, correctors, fits: list[GroupFit]) -> dict[str, object]:
    applied = {name for fit in fits if fit.applied for name in fit.members}
    return {e.name: (c.wcs if e.name in applied else e.wcs)
            for e, c in zip(exposures, correctors, strict=True)}


@contextlib.contextmanager
def _tweakwcs_messages_to_log():
    """tweakwcs's own messages go to this module's log at INFO (one warning line per group
    is written by :func:`_log_fit`, not tweakwcs's several)."""
    source = logging.getLogger("tweakwcs")

    class Forward(logging.Handler):
        def emit(self, record):
            message = record.getMessage().strip()
            if message:
                log.info("tweakwcs: %s", message)

    handler = Forward()
    saved = source.propagate, source.level
    source.addHandler(handler)
    source.propagate = False
    source.setLevel(logging.INFO)
    try:
        yield
    finally:
        source.removeHandler(handler)
        source.propagate, source.level = saved


# --------------------------------------------------------------------------------------------
# Report


def report_table(alignment: Alignment, refcat: Table | None = None,
                 product_of: Mapping[str, str] | None = None) -> Table:
    """The per-group fit report (``tweakreg_report.ecsv``): one row per stage and group, with
    the products its members belong to (``product_of``: member -> product name; the bands
    whose stars a correction used); with the absolute reference catalogue
    (:func:`image3.refcat.reference_catalog`), its file name, SHA-256, epoch and row counts in
    the meta (``abs_refcat_*``)."""
    product_of = product_of or {}
    rows = [{
        "stage": f.stage,
        "group_id": f.group_id,
        "members": ",".join(f.members),
        "products": ",".join(dict.fromkeys(product_of.get(m, "") for m in f.members)),
        "status": f.status,
        "applied": f.applied,
        "n_sources": f.n_sources,
        "n_matched": f.n_matched,
        "n_fit": f.n_fit,
        "rms_arcsec": f.rms_arcsec,
        "shift_x_arcsec": f.shift_arcsec[0],
        "shift_y_arcsec": f.shift_arcsec[1],
        "rotation_deg": f.rotation_deg,
        "scale": f.scale,
    } for f in alignment.fits]
    names = ("stage", "group_id", "members", "products", "status", "applied", "n_sources",
             "n_matched", "n_fit", "rms_arcsec", "shift_x_arcsec", "shift_y_arcsec",
             "rotation_deg", "scale")
    dtypes = (str, str, str, str, str, bool, int, int, int, float, float, float, float, float)
    table = Table(rows=[[r[n] for n in names] for r in rows] or None, names=names,
                  dtype=dtypes)
    table.meta["cal_step_tweakreg"] = alignment.status
    if refcat is not None:
        table.meta.update(_provenance(refcat))
    table.meta["comments"] = [
        "tweakreg fits per group; shift and rotation in the reference V2V3 tangent plane",
        "status: REFERENCE, SUCCESS (applied), FAILED: reason, REJECTED: reason (not applied)",
    ]
    return table


# --------------------------------------------------------------------------------------------
# Matched-star residuals (QA)

RESIDUAL_COLUMNS = ("stage", "group_id", "member", "east_arcsec", "north_arcsec",
                    "d_east_arcsec", "d_north_arcsec")  # then "clipped"


def match_residuals(exposures: Sequence[ExposureCatalog], wcs: Mapping[str, object],
                    fit: AlignmentFit, refcat: Table | None = None) -> Table:
    """Offsets between the sky positions of matched stars through the final WCSs.

    ``relative`` rows: each source of a group, placed on the sky through its member's gwcs in
    ``wcs``, paired with the nearest source of the groups *before* it in association order (so
    every pair of overlapping groups is counted once), within ``fit.tolerance`` [arcsec].
    ``absolute`` rows (with ``refcat``, RA/DEC [deg]): each source paired with the nearest
    reference star within ``fit.abs_tolerance``. Positions (``east_arcsec``,
    ``north_arcsec``) are gnomonic offsets [arcsec] from the mean source position; residuals
    (``d_east_arcsec``, ``d_north_arcsec``) are the source's position minus its partner's
    [arcsec]. After a good alignment they scatter by the centroid errors (a few mas); a
    systematic pattern is a misfit or a distortion left uncorrected.

    Nearest neighbours within the tolerance include chance pairs (a star found in one exposure
    only) and poorly centred galaxies; ``clipped`` marks the pairs that the fit's own rule
    would reject (per stage and group, ``fit.nclip`` rounds of dropping residuals above
    ``fit.sigma`` × their RMS), so summaries use the others.
    """
    placed = [ExposureCatalog(e.name, e.group_id, wcs[e.name], e.wcsinfo, e.sources)
              for e in exposures]
    skies = [_sky(e) for e in placed]
    ra_all, dec_all = (np.concatenate(c) for c in zip(*skies))
    rows: list[tuple] = []
    if np.isfinite(ra_all).any():
        centre = (float(np.nanmean(ra_all)), float(np.nanmean(dec_all)))
        xy = [_tangent_arcsec(*sky, *centre) for sky in skies]
        order = list(dict.fromkeys(e.group_id for e in placed))
        for rank, group_id in enumerate(order[1:], start=1):
            earlier = np.vstack([p for e, p in zip(placed, xy) if e.group_id in order[:rank]])
            rows += _paired("relative", placed, xy, group_id, earlier, fit.tolerance)
        if refcat is not None:
            ref_xy = _tangent_arcsec(np.asarray(refcat["RA"], dtype=float),
                                     np.asarray(refcat["DEC"], dtype=float), *centre)
            for group_id in order:
                rows += _paired("absolute", placed, xy, group_id, ref_xy, fit.abs_tolerance)
    dtypes = (str, str, str, float, float, float, float)
    table = Table(rows=rows or None, names=RESIDUAL_COLUMNS, dtype=dtypes)
    table["clipped"] = np.zeros(len(table), dtype=bool)
    distance = np.hypot(table["d_east_arcsec"], table["d_north_arcsec"])
    for stage, group_id in set(zip(table["stage"], table["group_id"])):
        rows_of = np.flatnonzero((table["stage"] == stage) & (table["group_id"] == group_id))
        table["clipped"][rows_of] = ~_kept_by_clipping(np.asarray(distance[rows_of]), fit.nclip,
                                                       fit.sigma)
    return table


def _kept_by_clipping(distance: np.ndarray, nclip: int, sigma: float) -> np.ndarray:
    """Pairs kept by ``nclip`` rounds of rejecting distances above ``sigma`` × their RMS."""
    keep = np.ones(distance.size, dtype=bool)
    for _ in range(nclip):
        rms = math.sqrt(np.mean(np.square(distance[keep])))
        new = distance <= sigma * rms
        if np.array_equal(new, keep) or not new.any():
            break
        keep = new
    return keep


def describe_residuals(residuals: Table) -> str:
    """One line about :func:`match_residuals`' table: pairs, and RMS [mas] of those not
    clipped, per stage."""
    parts = []
    for stage in ("relative", "absolute"):
        rows = residuals[residuals["stage"] == stage]
        kept = rows[~rows["clipped"]]
        if len(rows):
            rms = 1000.0 * math.sqrt(np.mean(np.square(kept["d_east_arcsec"])
                                             + np.square(kept["d_north_arcsec"])))
            parts.append(f"{len(rows)} {stage} pairs, RMS {rms:.1f} mas "
                         f"({len(rows) - len(kept)} clipped)")
    return "; ".join(parts) or "no matched pairs"


def _paired(stage: str, placed, xy, group_id: str, partners: np.ndarray,
            radius_arcsec: float) -> list[tuple]:
    """Rows of :func:`match_residuals` for the members of ``group_id`` matched to
    ``partners`` (an (N, 2) array of tangent-plane arcsec)."""
    partners = partners[np.all(np.isfinite(partners), axis=1)]
    if len(partners) == 0:
        return []
    tree = cKDTree(partners)
    rows = []
    for exposure, positions in zip(placed, xy, strict=True):
        if exposure.group_id != group_id:
            continue
        positions = positions[np.all(np.isfinite(positions), axis=1)]
        if len(positions) == 0:
            continue
        distance, index = tree.query(positions, distance_upper_bound=radius_arcsec)
        for k in np.flatnonzero(np.isfinite(distance)):
            rows.append((stage, group_id, exposure.name, *positions[k],
                         *(positions[k] - partners[index[k]])))
    return rows


# --------------------------------------------------------------------------------------------
# Files


def _write_table(table: Table, path, fmt: str = "ascii.ecsv") -> None:
    with atomic_path(path) as tmp:
        table.write(tmp, format=fmt, overwrite=True)


def write_sources(sources: Table, path, origin: str = "") -> None:
    """Write a member's source list (ECSV; ``xcentroid``/``ycentroid`` 0-based pixels)."""
    table = Table(sources, copy=False)
    table.meta = {"origin": origin, "pixel_convention": "0-based, first pixel centre at 0.0"}
    _write_table(table, path)


def read_sources(path) -> Table:
    """A source list written by :func:`write_sources`."""
    return Table.read(path, format="ascii.ecsv")


def read_exposure_catalog(cal, geometry, sources, name: str, group_id: str) -> ExposureCatalog:
    """A member's alignment input: its gwcs and wcsinfo from the geometry sidecar that
    find_sources wrote (:func:`image3.grid.save_geometry`), and its sources. ``cal`` names
    the member in messages."""
    found = load_geometry(geometry)
    info = {k: found.wcsinfo.get(k) for k in ("v2_ref", "v3_ref", "roll_ref")}
    missing = [k for k, v in info.items() if v is None]
    if found.wcs is None or missing:
        raise InputFileError(f"{cal}: tweakreg needs a gwcs and wcsinfo "
                             f"v2_ref/v3_ref/roll_ref (missing: {missing or ['wcs']})")
    return ExposureCatalog(name, group_id, found.wcs, info, read_sources(sources))


def exposure_mid_mjd(geometry) -> float:
    """An exposure's mid-time [MJD, UTC]: (EXPSTART + EXPEND) / 2 (the ``_cal``'s EXPMID) from
    its geometry sidecar (:func:`find_exposure_sources`); NaN when the ``_cal`` has no times."""
    times = read_sidecar(geometry)["meta"].times
    start, end = times.get("start_time"), times.get("end_time")
    return math.nan if start is None or end is None else (float(start) + float(end)) / 2.0


@dataclass(frozen=True)
class ProductAlignment:
    """One product's share of an alignment: its members (rows with ``member``, ``group_id``,
    ``cal`` and the ``geometry`` and ``sources`` files of :func:`find_exposure_sources`) and
    where its files go: each member's gwcs sidecar (``wcs_paths``, in member order), the
    matched-star residuals, the reference catalogue used and the fit report."""

    members: Sequence[Mapping]
    wcs_paths: Sequence[str | Path]
    residuals_path: str | Path
    refcat_path: str | Path
    report_path: str | Path
    #: the product's name, listed in the fit report beside each group of its members
    name: str = ""


def align_members(members: Sequence[Mapping], fit: AlignmentFit, abs_refcat,
                  stars: ReferenceStars, wcs_paths, residuals_path, refcat_path,
                  report_path, keep_in: str | Path | None = None, refit: bool = False) -> str:
    """tweakreg's join for one product: :func:`align_products` of its members alone."""
    return align_products([ProductAlignment(members, wcs_paths, residuals_path, refcat_path,
                                            report_path)], fit, abs_refcat, stars, keep_in,
                          refit)


def _kept_alignment(keep_in, rows, fit: AlignmentFit, abs_refcat, stars: ReferenceStars,
                    refit: bool):
    """The members whose gwcs sidecar the previous run kept in ``keep_in`` (a work folder,
    :mod:`image3.kept`) and still applies, whole groups only (none with ``refit``): member ->
    kept file; and what this run's result is kept with (its parameters and each member's
    input files)."""
    if keep_in is None:
        return {}, {}
    inputs = {row["member"]: [row["sources"], row["geometry"]] + ([abs_refcat] if abs_refcat
                                                                 else []) for row in rows}
    params = {"fit": asdict(fit), "stars": asdict(stars)}
    found = {} if refit else kept_files(keep_in, "tweakreg", params, inputs)
    groups: dict[str, list[str]] = {}
    for row in rows:
        groups.setdefault(row["group_id"], []).append(row["member"])
    return whole_groups(found, groups), (params, inputs)


def align_products(products: Sequence[ProductAlignment], fit: AlignmentFit, abs_refcat,
                   stars: ReferenceStars, keep_in: str | Path | None = None,
                   refit: bool = False) -> str:
    """tweakreg's join: align the members of ``products`` together with ``fit`` (several: the
    bands of one target, whose members taken in one exposure share its group id, so each
    exposure gets one correction from every band's stars, and bands from other exposures are
    aligned to them), and to ``abs_refcat`` (a file, or empty) when given: its rows within
    ``stars``' G limits, moved to the exposures' mean mid-time
    (:func:`image3.refcat.reference_catalog`). With ``keep_in`` (a work folder: members
    added to a finished tiled run), the groups whose alignment the last run kept there
    (:mod:`image3.kept`) keep it byte for byte, unless ``refit``, and the others are tied to
    them; what this run wrote is kept there in turn. Writes each product's files
    (:class:`ProductAlignment`: gwcs sidecars with the alignment status and whether each was
    corrected, its members' matched-star residuals, the catalogue used) and, last, the fit
    reports (all groups, with the catalogue's name and SHA-256). Returns a one-line summary."""
    rows = list({row["member"]: row for p in products for row in p.members}.values())
    exposures = [read_exposure_catalog(row["cal"], row["geometry"], row["sources"],
                                       row["member"], row["group_id"]) for row in rows]
    kept, record = _kept_alignment(keep_in, rows, fit, abs_refcat, stars, refit)
    for exposure in exposures:
        if exposure.name in kept:
            exposure.wcs = read_wcs(kept[exposure.name])
    refcat = None
    if abs_refcat:
        mid_mjd = [exposure_mid_mjd(row["geometry"]) for row in rows]
        refcat = reference_catalog(abs_refcat, mid_mjd, stars.abs_gmag_bright,
                                   stars.abs_gmag_faint)
    alignment = align_exposures(exposures, fit, refcat,
                                frozenset(e.group_id for e in exposures if e.name in kept))
    by_name = {e.name: e for e in exposures}
    found = []
    for product in products:
        for row, path in zip(product.members, product.wcs_paths, strict=True):
            if row["member"] in kept:
                shutil.copyfile(kept[row["member"]], path)
                continue
            corrected = row["member"] in alignment.corrected
            write_wcs(path, alignment.wcs[row["member"]], status=alignment.status,
                      corrected=corrected,
                      refcat=_provenance(refcat) if refcat is not None and corrected else None)
        residuals = match_residuals([by_name[row["member"]] for row in product.members],
                                    alignment.wcs, fit, refcat)
        write_report(residuals, product.residuals_path)
        write_reference_catalog(refcat, product.refcat_path)
        found.append(residuals)
    # the reports last: tests/test_resume stops a run once the report exists
    product_of = {row["member"]: product.name for product in products for row in product.members}
    for product in products:
        write_report(report_table(alignment, refcat, product_of), product.report_path)
    if record:
        keep_files(keep_in, "tweakreg", record[0], {row["member"]: path for p in products
                                                    for row, path in zip(p.members, p.wcs_paths)},
                   record[1])
    residuals = found[0] if len(found) == 1 else vstack(found)
    several = f"{len(products)} products, " if len(products) > 1 else ""
    return (f"tweakreg {alignment.status}: {several}{len({e.group_id for e in exposures})} groups, "
            f"{sum(f.applied for f in alignment.fits)} fits applied; matched-star residuals: "
            f"{describe_residuals(residuals)}")


#: Columns of the saved reference catalogue, the reference's (``fit_gaiadr3_ref.ecsv``).
REFERENCE_COLUMNS = ("RA", "DEC", "mag", "objID", "epoch")


def write_reference_catalog(refcat: Table | None, path) -> None:
    """Write the reference catalogue an absolute fit used (ECSV): :data:`REFERENCE_COLUMNS`
    it has (``RA``/``DEC`` [deg] at ``epoch`` [Julian year]) and its provenance in the meta;
    with no catalogue (no absolute alignment), a table without rows."""
    if refcat is None:
        table = Table(names=("RA", "DEC"), dtype=(float, float))
        table.meta = {"comments": ["no absolute alignment (tweakreg.abs_refcat is empty)"]}
    else:
        table = Table([refcat[c] for c in REFERENCE_COLUMNS if c in refcat.colnames])
        table.meta = {**_provenance(refcat), "comments": [
            "the absolute reference catalogue tweakreg used: the rows of abs_refcat within the "
            "G limits, RA/DEC [deg] at epoch [Julian year] (moved by their proper motions)"]}
    _write_table(table, path)


def write_saved_abs_catalog(work_catalog, path) -> None:
    """``save_abs_catalog``: :func:`write_reference_catalog`'s file under the reference's
    name (:func:`image3.steps.saved_abs_catalog_name`)."""
    _write_table(Table.read(work_catalog, format="ascii.ecsv"), path)


def _provenance(refcat: Table) -> dict:
    """What identifies an absolute fit's catalogue: file name, SHA-256 (first 16 hex), the
    epoch its positions were moved to [Julian year], rows read and used."""
    return {f"abs_refcat_{key}": refcat.meta[key]
            for key in ("name", "sha256", "epoch", "n_read", "n_used") if key in refcat.meta}


def write_report(report: Table, path) -> None:
    """Write :func:`report_table`'s or :func:`match_residuals`' table (ECSV)."""
    _write_table(report, path)


def write_saved_catalog(sources_path, path, name: str) -> None:
    """The source list of :func:`write_sources` at ``sources_path`` as the reference's
    ``save_catalogs`` writes a member's catalogue (``x``/``y`` 0-based pixels; ECSV or FITS by
    the file name's extension), ``name`` in its meta."""
    table = Table(read_sources(sources_path), copy=True)
    table.rename_columns(["xcentroid", "ycentroid"], ["x", "y"])
    table.meta = {"name": name}
    _write_table(table, path, "fits" if str(path).endswith(".fits") else "ascii.ecsv")
