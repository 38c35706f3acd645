"""Side-by-side comparison of the workflow's products with the reference pipeline's (jwst).

Pure functions on arrays and tables (no jwst import, no file access), plus
:func:`compare_products`, which reads the two runs' products and the generator's truth and calls
them. Used by ``bench/run_bench.py --reference-python``; tested by
``tests/test_bench_compare.py``.

Conventions: images in MJy/sr, catalogue fluxes in Jy, truth fluxes in µJy, angles in arcsec
unless a name says otherwise; "robust std" is 1.4826 × the median absolute deviation.
"""

from __future__ import annotations

import json
import re
from datetime import datetime
from pathlib import Path

import numpy as np
from astropy.io import fits
from astropy.table import Table
from astropy.wcs import WCS
from scipy.ndimage import distance_transform_edt
from scipy.spatial import cKDTree

DO_NOT_USE = 1  # JWST DQ bits (stdatamodels dqflags.pixel)
OUTLIER = 16
MAD_TO_STD = 1.4826
ARCSEC_PER_DEG = 3600.0
UJY_PER_JY = 1e6
# Cosmic-ray amplitude bins for recall, in units of the exposure's ERR (as tests/test_outlier.py).
CR_BINS_SIGMA = {"5-10": (5.0, 10.0), ">=10": (10.0, np.inf), ">=5": (5.0, np.inf)}

_STEP_LINE = re.compile(
    r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) - stpipe\.step - INFO - Step (\w+) (running|done)")


# --------------------------------------------------------------------------------------------
# Statistics


def robust_std(values: np.ndarray) -> float:
    """1.4826 × median absolute deviation of the finite values (NaN when there are none)."""
    values = np.asarray(values, float)
    values = values[np.isfinite(values)]
    if values.size == 0:
        return float("nan")
    return float(MAD_TO_STD * np.median(np.abs(values - np.median(values))))


def ratio_stats(numerator: np.ndarray, denominator: np.ndarray) -> dict:
    """Median and robust std of numerator / denominator over pairs where both are finite and > 0.

    Returns ``{"n", "median", "robust_std"}`` (ratios are unitless).
    """
    numerator, denominator = np.asarray(numerator, float), np.asarray(denominator, float)
    good = np.isfinite(numerator) & np.isfinite(denominator) & (numerator > 0) & (denominator > 0)
    ratio = numerator[good] / denominator[good]
    return {"n": int(good.sum()),
            "median": float(np.median(ratio)) if ratio.size else float("nan"),
            "robust_std": robust_std(ratio)}


# --------------------------------------------------------------------------------------------
# Mosaics


def mosaic_difference(sci_ours: np.ndarray, sci_theirs: np.ndarray, err_theirs: np.ndarray,
                      err_ours: np.ndarray | None = None) -> dict:
    """Statistics of ours − theirs over the pixels both mosaics cover (finite SCI in both).

    ``sci_*`` and ``err_*`` are i2d SCI and ERR planes on one grid, in MJy/sr. Returns the number
    of common pixels and of pixels covered by one mosaic only, the median and robust std of the
    difference in MJy/sr, the same for the difference in units of the reference's ERR, the
    fraction of common pixels differing by more than 5 × ERR, and (with ``err_ours``) the median
    ratio of the two ERR planes.
    """
    if sci_ours.shape != sci_theirs.shape:
        raise ValueError(f"mosaics are on different grids: {sci_ours.shape} vs {sci_theirs.shape}")
    ours_finite, theirs_finite = np.isfinite(sci_ours), np.isfinite(sci_theirs)
    common = ours_finite & theirs_finite & np.isfinite(err_theirs) & (err_theirs > 0)
    diff = (sci_ours[common].astype(float) - sci_theirs[common])
    in_sigma = diff / err_theirs[common]
    result = {
        "pixels_common": int(common.sum()),
        "pixels_ours_only": int((ours_finite & ~theirs_finite).sum()),
        "pixels_theirs_only": int((theirs_finite & ~ours_finite).sum()),
        "median_mjysr": float(np.median(diff)) if diff.size else float("nan"),
        "robust_std_mjysr": robust_std(diff),
        "median_in_err": float(np.median(in_sigma)) if diff.size else float("nan"),
        "robust_std_in_err": robust_std(in_sigma),
        "fraction_above_5_err": float(np.mean(np.abs(in_sigma) > 5)) if diff.size else float("nan"),
    }
    if err_ours is not None:
        result["err_ratio_median"] = ratio_stats(err_ours[common], err_theirs[common])["median"]
    return result


# --------------------------------------------------------------------------------------------
# Sky levels


def sky_level_errors(levels_mjysr: np.ndarray, true_sky_mjysr: np.ndarray) -> dict:
    """Errors of skymatch levels (``BKGLEVEL``, MJy/sr) against the true sky of each exposure.

    Matched levels are relative (the lowest is 0 with ``match_down``), so the common offset is
    removed: error_i = (level_i − true_i) − mean_j(level_j − true_j). Returns the per-exposure
    errors and their RMS and largest absolute value, in MJy/sr.
    """
    error = np.asarray(levels_mjysr, float) - np.asarray(true_sky_mjysr, float)
    error -= error.mean()
    return {"errors_mjysr": [float(e) for e in error], "rms_mjysr": float(np.sqrt(np.mean(error ** 2))),
            "max_abs_mjysr": float(np.abs(error).max())}


# --------------------------------------------------------------------------------------------
# Outlier flags


def new_outliers(cal_dq: np.ndarray, crf_dq: np.ndarray) -> np.ndarray:
    """Pixels flagged OUTLIER in the ``_crf`` DQ that were neither OUTLIER nor DO_NOT_USE in the
    ``_cal`` DQ (bool mask)."""
    already = (cal_dq & (OUTLIER | DO_NOT_USE)) != 0
    return ((crf_dq & OUTLIER) != 0) & ~already


def flag_agreement(ours: np.ndarray, theirs: np.ndarray) -> dict:
    """Counts of outlier pixels flagged by ours, by theirs, by both and by one only."""
    return {"ours": int(ours.sum()), "theirs": int(theirs.sum()), "both": int((ours & theirs).sum()),
            "ours_only": int((ours & ~theirs).sum()), "theirs_only": int((theirs & ~ours).sum())}


def cosmic_ray_counts(flagged: np.ndarray, injected_mjysr: np.ndarray, err_mjysr: np.ndarray) -> dict:
    """Counts for recall and precision against injected cosmic rays, for one exposure.

    ``flagged``: newly flagged pixels (:func:`new_outliers`); ``injected_mjysr``: the generator's
    cosmic-ray image (0 where none); ``err_mjysr``: the ``_cal`` ERR. A pixel's amplitude in σ is
    injected / ERR. Returns, per bin of :data:`CR_BINS_SIGMA`, ``[found, injected]`` pixel counts,
    and ``flagged`` / ``flagged_on_ray`` for precision. Counts add up over exposures
    (:func:`cosmic_ray_scores`).
    """
    with np.errstate(invalid="ignore", divide="ignore"):
        nsigma = np.where(injected_mjysr > 0, injected_mjysr / err_mjysr, 0.0)
    counts = {}
    for name, (low, high) in CR_BINS_SIGMA.items():
        in_bin = (nsigma >= low) & (nsigma < high)
        counts[name] = [int((in_bin & flagged).sum()), int(in_bin.sum())]
    counts["flagged"] = int(flagged.sum())
    counts["flagged_on_ray"] = int((flagged & (injected_mjysr > 0)).sum())
    return counts


def cosmic_ray_scores(per_exposure: list[dict]) -> dict:
    """Pooled recall per amplitude bin and precision from :func:`cosmic_ray_counts` results.

    Recall = injected cosmic-ray pixels of the bin that were flagged / all of them; precision =
    flagged pixels that carry an injected cosmic ray / all flagged pixels.
    """
    scores = {}
    for name in CR_BINS_SIGMA:
        found = sum(c[name][0] for c in per_exposure)
        total = sum(c[name][1] for c in per_exposure)
        scores[f"recall_{name}"] = found / total if total else float("nan")
    flagged = sum(c["flagged"] for c in per_exposure)
    scores["precision"] = sum(c["flagged_on_ray"] for c in per_exposure) / flagged if flagged else float("nan")
    return scores


# --------------------------------------------------------------------------------------------
# Catalogues


def _tangent_arcsec(ra_deg, dec_deg, dec0_deg: float) -> np.ndarray:
    """(x, y) arcsec on a local flat approximation (x = RA·cos dec0); fine over a few arcmin."""
    ra, dec = np.asarray(ra_deg, float), np.asarray(dec_deg, float)
    return np.column_stack([ra * np.cos(np.deg2rad(dec0_deg)), dec]) * ARCSEC_PER_DEG


def match_sky(ra1, dec1, ra2, dec2, radius_arcsec: float = 0.1) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mutual nearest neighbours between two position lists (degrees) within ``radius_arcsec``.

    Returns (indices into list 1, indices into list 2, separation arcsec) of the matched pairs.
    """
    if len(ra1) == 0 or len(ra2) == 0:
        empty = np.array([], int)
        return empty, empty, np.array([], float)
    dec0 = float(np.median(np.concatenate([np.asarray(dec1, float), np.asarray(dec2, float)])))
    xy1, xy2 = _tangent_arcsec(ra1, dec1, dec0), _tangent_arcsec(ra2, dec2, dec0)
    dist12, nearest12 = cKDTree(xy2).query(xy1, distance_upper_bound=radius_arcsec)
    _, nearest21 = cKDTree(xy1).query(xy2, distance_upper_bound=radius_arcsec)
    index1 = np.flatnonzero(np.isfinite(dist12))
    index2 = nearest12[index1]
    mutual = nearest21[index2] == index1
    return index1[mutual], index2[mutual], dist12[index1[mutual]]


def isolated(ra_deg, dec_deg, radius_arcsec: float) -> np.ndarray:
    """True for positions with no other position within ``radius_arcsec``."""
    xy = _tangent_arcsec(ra_deg, dec_deg, float(np.median(dec_deg)))
    dist, _ = cKDTree(xy).query(xy, k=2)
    return dist[:, 1] > radius_arcsec


def catalogue_agreement(ours: Table, theirs: Table, flux_column: str = "aper_total_flux",
                        radius_arcsec: float = 0.1) -> dict:
    """Sources in each ``_cat`` table, pairs matched by sky position, ours / theirs flux ratio.

    Tables need ``ra``, ``dec`` (deg) and ``flux_column`` (Jy) columns. Returns the source counts,
    matched pairs, the median separation (milliarcsec) and :func:`ratio_stats` of the fluxes.
    """
    i, j, sep = match_sky(ours["ra"], ours["dec"], theirs["ra"], theirs["dec"], radius_arcsec)
    return {"sources_ours": len(ours), "sources_theirs": len(theirs), "matched": int(i.size),
            "median_separation_mas": float(np.median(sep) * 1e3) if sep.size else float("nan"),
            f"{flux_column}_ratio": ratio_stats(np.asarray(ours[flux_column])[i],
                                                np.asarray(theirs[flux_column])[j])}


def photometry_against_truth(catalogue: Table, truth: Table, flux_column: str = "aper_total_flux",
                             radius_arcsec: float = 0.1, isolation_arcsec: float = 1.0) -> dict:
    """Measured / true flux of isolated stars (no other truth source within ``isolation_arcsec``).

    ``catalogue``: ``ra``, ``dec`` (deg) and ``flux_column`` (Jy); ``truth``: the generator's
    ``sources.ecsv`` (``ra``, ``dec``, ``flux_ujy``, ``kind``). Returns the number of isolated
    stars, how many the catalogue matched within ``radius_arcsec``, the median position error
    (milliarcsec) and :func:`ratio_stats` of measured / true flux.
    """
    stars = truth[(truth["kind"] == "star") & isolated(truth["ra"], truth["dec"], isolation_arcsec)]
    i, j, sep = match_sky(catalogue["ra"], catalogue["dec"], stars["ra"], stars["dec"], radius_arcsec)
    measured = np.asarray(catalogue[flux_column], float)[i]
    true_jy = np.asarray(stars["flux_ujy"], float)[j] / UJY_PER_JY
    return {"isolated_stars": len(stars), "matched": int(i.size),
            "median_position_error_mas": float(np.median(sep) * 1e3) if sep.size else float("nan"),
            "flux_ratio": ratio_stats(measured, true_jy)}


def detections_against_truth(ours: Table, theirs: Table, truth: Table,
                             radius_arcsec: float = 0.1) -> dict:
    """Which true sources each catalogue found, and its entries with no true source.

    Tables need ``ra``, ``dec`` (deg); ``truth`` is the generator's ``sources.ecsv``. A
    catalogue entry finds the true source it is matched to (:func:`match_sky` within
    ``radius_arcsec``). Returns, per catalogue, the entries matched to a true source and the
    unmatched ("spurious") ones, and the true sources found by both, by ours only and by
    theirs only.
    """
    found = {}
    result = {}
    for run, catalogue in (("ours", ours), ("theirs", theirs)):
        i, j, _ = match_sky(catalogue["ra"], catalogue["dec"], truth["ra"], truth["dec"],
                            radius_arcsec)
        found[run] = set(j.tolist())
        result[run] = {"true": int(i.size), "spurious": len(catalogue) - int(i.size)}
    result["found_by_both"] = len(found["ours"] & found["theirs"])
    result["found_by_ours_only"] = len(found["ours"] - found["theirs"])
    result["found_by_theirs_only"] = len(found["theirs"] - found["ours"])
    return result


def point_source_snr(flux_ujy, x, y, err_mjysr: np.ndarray, pixel_scale_arcsec: float,
                     psf_components) -> np.ndarray:
    """PSF-fit S/N of point sources of total ``flux_ujy`` at pixels (``x``, ``y``) of an image
    whose per-pixel noise is ``err_mjysr``: F / (sigma sqrt(NEA)), F in MJy/sr x pixel, sigma
    the error at the nearest pixel, NEA = 1 / sum(psf^2) [pixels] of the PSF made of circular
    Gaussians ``psf_components`` [(flux fraction, sigma arcsec)]. NaN off the image or where
    the error is not positive."""
    omega_sr = (pixel_scale_arcsec / ARCSEC_PER_DEG * np.pi / 180.0) ** 2
    parts = [(f, s / pixel_scale_arcsec) for f, s in psf_components]
    nea = 1.0 / sum(fa * fb / (2 * np.pi * (sa ** 2 + sb ** 2)) for fa, sa in parts for fb, sb in parts)
    sigma = _at_pixels(err_mjysr, x, y)
    with np.errstate(invalid="ignore", divide="ignore"):
        snr = np.asarray(flux_ujy, float) * 1e-12 / omega_sr / (sigma * np.sqrt(nea))
    return np.where(sigma > 0, snr, np.nan)


def edge_distance(covered: np.ndarray, x, y) -> np.ndarray:
    """Distance [pixels] from (``x``, ``y``) to the nearest uncovered pixel of ``covered``
    (bool), measured at the nearest pixel; NaN off the image."""
    return _at_pixels(distance_transform_edt(covered), x, y)


def _at_pixels(image: np.ndarray, x, y) -> np.ndarray:
    """``image`` at the pixels nearest (x, y); NaN off the image."""
    ny, nx = image.shape
    col, row = np.round(np.asarray(x, float)), np.round(np.asarray(y, float))
    inside = (col >= 0) & (col < nx) & (row >= 0) & (row < ny)
    values = np.full(col.shape, np.nan)
    values[inside] = image[row[inside].astype(int), col[inside].astype(int)]
    return values


def star_completeness(found: np.ndarray, snr: np.ndarray, edge_px: np.ndarray,
                      snr_min: float = 10.0, edge_snr_min: float = 25.0,
                      edge_within_px: float = 10.0) -> dict:
    """Completeness of stars (bool ``found``, one per star): all with S/N >= ``snr_min``, the
    brighter half of those, all with S/N >= ``edge_snr_min`` and those of them within
    ``edge_within_px`` of an uncovered pixel. Fractions NaN when a set is empty."""
    found = np.asarray(found, bool)
    with np.errstate(invalid="ignore"):
        faint_limit = snr >= snr_min
        bright = faint_limit & (snr >= np.median(snr[faint_limit])) if faint_limit.any() else faint_limit
        strong = snr >= edge_snr_min
        at_edge = strong & (edge_px <= edge_within_px)

    def fraction(chosen):
        return float(found[chosen].mean()) if chosen.any() else float("nan")

    return {"stars": int(faint_limit.sum()), "completeness": fraction(faint_limit),
            "bright_half": fraction(bright), "strong_stars": int(strong.sum()),
            "strong_completeness": fraction(strong), "edge_stars": int(at_edge.sum()),
            "edge_completeness": fraction(at_edge)}


# --------------------------------------------------------------------------------------------
# jwst log


def step_intervals(log_text: str) -> dict[str, tuple[float, float]]:
    """Start and end (POSIX seconds, local time) of each stpipe step from its log lines
    ``<date time,ms> - stpipe.step - INFO - Step <name> running|done``.

    A step that ran more than once keeps its first start and last end.
    """
    intervals: dict[str, list[float]] = {}
    for line in log_text.splitlines():
        found = _STEP_LINE.match(line)
        if not found:
            continue
        stamp, step, what = found.groups()
        seconds = datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S,%f").timestamp()
        span = intervals.setdefault(step, [seconds, seconds])
        if what == "running":
            span[0] = min(span[0], seconds)
        else:
            span[1] = seconds
    return {step: (start, end) for step, (start, end) in intervals.items()}


def step_table(intervals: dict[str, tuple[float, float]], samples: list[tuple[float, float]],
               started: float, ended: float) -> list[dict]:
    """Per step: wall seconds and the peak summed PSS (MB) sampled while it ran (None when the
    step was shorter than the sampling interval).

    ``samples`` are (POSIX seconds, MB) pairs of the process tree's summed PSS; ``started`` and
    ``ended`` bound the whole process, so start-up (imports, reading the association) before the
    first step and the exit after the last are reported as ``startup`` and ``exit``.
    """
    times = np.array([t for t, _ in samples]) if samples else np.zeros(0)
    values = np.array([mb for _, mb in samples]) if samples else np.zeros(0)

    def peak(start: float, end: float) -> float | None:
        inside = (times >= start) & (times <= end)
        return round(float(values[inside].max()), 1) if inside.any() else None

    rows = []
    if intervals:
        first = min(start for start, _ in intervals.values())
        last = max(end for _, end in intervals.values())
        spans = [("startup", started, first), *((s, a, b) for s, (a, b) in intervals.items()),
                 ("exit", last, ended)]
    else:
        spans = [("whole run", started, ended)]
    for name, start, end in spans:
        rows.append({"step": name, "wall_s": round(end - start, 2), "peak_pss_mb": peak(start, end)})
    return rows


# --------------------------------------------------------------------------------------------
# Files


def _catalogue(path: Path) -> Table:
    """A ``_cat.ecsv`` with ``ra``/``dec`` columns (deg) taken from ``sky_centroid``."""
    table = Table.read(path)
    table["ra"] = table["sky_centroid"].ra.deg
    table["dec"] = table["sky_centroid"].dec.deg
    return table


def compare_products(asn_path: Path, ours_dir: Path, theirs_dir: Path) -> dict:
    """Compare the two runs' products of one association; truth from ``<asn dir>/truth``.

    Returns a JSON-ready dict with ``mosaic`` (:func:`mosaic_difference`), ``outliers`` (per
    member :func:`flag_agreement`, and pooled :func:`cosmic_ray_scores` of each run against the
    injected cosmic rays), ``sky_levels`` (:func:`sky_level_errors` of each run's ``_crf``
    BKGLEVEL), ``catalogue`` (:func:`catalogue_agreement`), ``truth_photometry``
    (:func:`photometry_against_truth` of each run) and ``truth_detections``
    (:func:`detections_against_truth`); the truth parts only when the truth files exist.
    """
    asn_path = Path(asn_path)
    data_dir, truth_dir = asn_path.parent, asn_path.parent / "truth"
    asn = json.loads(asn_path.read_text())
    product = asn["products"][0]["name"]
    members = [m["expname"].removesuffix("_cal.fits") for m in asn["products"][0]["members"]]

    with fits.open(Path(ours_dir) / f"{product}_i2d.fits") as ours, \
            fits.open(Path(theirs_dir) / f"{product}_i2d.fits") as theirs:
        mosaic = mosaic_difference(ours["SCI"].data, theirs["SCI"].data, theirs["ERR"].data,
                                   ours["ERR"].data)

    per_member, counts = {}, {"ours": [], "theirs": []}
    levels = {"ours": [], "theirs": []}
    for member in members:
        with fits.open(data_dir / f"{member}_cal.fits") as cal:
            cal_dq, err = cal["DQ"].data, cal["ERR"].data
        flags = {}
        for run, folder in (("ours", ours_dir), ("theirs", theirs_dir)):
            with fits.open(Path(folder) / f"{member}_{asn['asn_id']}_crf.fits") as crf:
                flags[run] = new_outliers(cal_dq, crf["DQ"].data)
                levels[run].append(crf[0].header.get("BKGLEVEL", np.nan))
        per_member[member] = flag_agreement(flags["ours"], flags["theirs"])
        injected = truth_dir / f"{member}_cr.fits"
        if injected.exists():
            rays = fits.getdata(injected)
            for run in counts:
                counts[run].append(cosmic_ray_counts(flags[run], rays, err))
    outliers = {"per_member": per_member}
    if counts["ours"]:
        outliers["cosmic_rays"] = {run: cosmic_ray_scores(c) for run, c in counts.items()}
    result = {"mosaic": mosaic, "outliers": outliers}

    exposures = truth_dir / "exposures.ecsv"
    if exposures.exists():
        table = Table.read(exposures)
        true_sky = [float(table[table["member"] == m]["sky_mjysr"][0]) for m in members]
        result["sky_levels"] = {run: sky_level_errors(lv, true_sky) for run, lv in levels.items()}

    ours_cat = _catalogue(Path(ours_dir) / f"{product}_cat.ecsv")
    theirs_cat = _catalogue(Path(theirs_dir) / f"{product}_cat.ecsv")
    result["catalogue"] = catalogue_agreement(ours_cat, theirs_cat)
    sources = truth_dir / "sources.ecsv"
    if sources.exists():
        truth = Table.read(sources)
        result["truth_photometry"] = {run: photometry_against_truth(cat, truth)
                                      for run, cat in (("ours", ours_cat), ("theirs", theirs_cat))}
        result["truth_detections"] = detections_against_truth(ours_cat, theirs_cat, truth)
        psf = truth_dir / "psf.json"
        if psf.exists():
            result["star_completeness"] = completeness_of_runs(
                truth, json.loads(psf.read_text()), Path(ours_dir) / f"{product}_i2d.fits",
                {"ours": ours_cat, "theirs": theirs_cat})
    return result


def completeness_of_runs(truth: Table, psf: dict, i2d_path: Path, catalogues: dict) -> dict:
    """:func:`star_completeness` of each catalogue against the true stars (moving ones left out)
    of ``truth``, S/N and edge distances from the ``_i2d`` at ``i2d_path`` (its ERR; covered:
    finite SCI and ERR > 0); ``psf`` the generator's ``psf.json``. A star is found by an entry
    within 0.1" or 2 pixels (:func:`match_sky`)."""
    with fits.open(i2d_path) as i2d:
        sci, err = i2d["SCI"].data, i2d["ERR"].data
        wcs = WCS(i2d["SCI"].header)
    scale = float(np.sqrt(abs(np.linalg.det(wcs.pixel_scale_matrix))) * ARCSEC_PER_DEG)
    stars = truth[(truth["kind"] == "star") & ~np.asarray(truth["moving"], bool)]
    flux = [c for c in stars.colnames if c.startswith("flux_") and c != "flux_ujy"]
    x, y = wcs.world_to_pixel_values(stars["ra"], stars["dec"])
    components = [(c["flux_fraction"], c["sigma_arcsec"]) for c in psf["components"]]
    snr = point_source_snr(stars[flux[0]] if flux else stars["flux_ujy"], x, y, err, scale,
                           components)
    edge = edge_distance(np.isfinite(sci) & (err > 0), x, y)
    result = {}
    for run, catalogue in catalogues.items():
        _, j, _ = match_sky(catalogue["ra"], catalogue["dec"], stars["ra"], stars["dec"],
                            max(0.1, 2 * scale))
        found = np.zeros(len(stars), bool)
        found[j] = True
        result[run] = star_completeness(found, snr, edge)
    return result
