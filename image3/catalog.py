"""The source_catalog step: sources, photometry and shapes of a resampled (i2d) image.

Re-implements the reference's ``SourceCatalogStep`` / ``JWSTSourceCatalog``:

1. Convert SCI and ERR from MJy/sr to Jy per pixel (× 1e6 × PIXAR_SR).
2. Detect sources (``image3.detection``) on the image, pixels with
   NaN ERR or zero WHT being uncovered.
3. Segment (isophotal) photometry and shapes with photutils ``SourceCatalog``
   on the background-subtracted image, centroids from the convolved image.
4. Circular-aperture photometry on the image (not background-subtracted)
   at the radii enclosing ``aperture_ee1/2/3`` % of a point source, each
   minus a local background: the 3σ-clipped median in a sky annulus.
5. Total flux = aperture correction × flux in the largest aperture;
   AB and Vega magnitudes; concentration indices and the
   star / extended-source flag; DAOFind sharpness and roundness; nearest
   neighbours.

The resulting ``QTable`` has the reference's column names, order, units,
formats, descriptions and meta, ready for ``write(path, format='ascii.ecsv')``.
"""

from __future__ import annotations

import contextlib
import logging
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path

import astropy.units as u
import numpy as np
from astropy.convolution import Gaussian2DKernel
from astropy.coordinates import SkyCoord
from astropy.io import fits
from astropy.stats import gaussian_fwhm_to_sigma
from astropy.table import QTable, Table, vstack
from astropy.utils.exceptions import AstropyUserWarning
from .runtime import photutils_import  # noqa: F401  (photutils without its slow start; first)
from photutils import use_future_column_names
from photutils.aperture import CircularAnnulus, CircularAperture, aperture_photometry
from scipy.spatial import KDTree
from stdatamodels.jwst import datamodels

from . import __version__, photometry_refs
from .background import BackgroundMesh
from .datamodel import atomic_path, save_model
from .detection import detect_segments, find_stars, segment_catalog
from .errors import InputFileError, first_line
from .parameters import CatalogParameters
from .runtime.forked import map_forked
from .statistics import sigma_clip_1d
from .tiles import Tile

log = logging.getLogger(__name__)

__all__ = [
    "catalog_for_product",
    "make_catalog",
    "merge_tile_catalogs",
    "open_mosaic",
    "stellar_locus_ci",
    "write_catalog_products",
]

# Aperture pairs (smaller, larger) of the three concentration indices.
_CI_PAIRS = ((0, 1), (1, 2), (0, 2))
_VERSION_PACKAGES = ("Python", "numpy", "scipy", "astropy", "photutils", "gwcs")
# A centroid that is not finite is moved here so that apertures miss the image
# and give NaN instead of raising, as in the reference.
_OFF_IMAGE = -1000.0
# Sources whose concentration index is known to 5% (3σ = the 15% margin), at least 20 of them,
# define the stellar locus.
_LOCUS_MAX_NOISE = 0.05
_LOCUS_MIN_SOURCES = 20

_SEGMENT_DESCRIPTIONS = {
    "label": "Unique source identification label number",
    "xcentroid": "X pixel value of the source centroid (0 indexed)",
    "ycentroid": "Y pixel value of the source centroid (0 indexed)",
    "sky_centroid": "ICRS Sky coordinate of the source centroid",
    "isophotal_flux": "Isophotal flux",
    "isophotal_flux_err": "Isophotal flux error",
    "isophotal_abmag": "Isophotal AB magnitude",
    "isophotal_abmag_err": "Isophotal AB magnitude error",
    "isophotal_vegamag": "Isophotal Vega magnitude",
    "isophotal_vegamag_err": "Isophotal Vega magnitude error",
    "isophotal_area": "Isophotal area",
    "semimajor_sigma": (
        "1-sigma standard deviation along the semimajor axis of the 2D Gaussian "
        "function that has the same second-order central moments as the source"
    ),
    "semiminor_sigma": (
        "1-sigma standard deviation along the semiminor axis of the 2D Gaussian "
        "function that has the same second-order central moments as the source"
    ),
    "ellipticity": "1 minus the ratio of the 1-sigma lengths of the semimajor and semiminor axes",
    "orientation": (
        "The angle (degrees) between the positive X axis and the major axis "
        "(increases counter-clockwise)"
    ),
    "sky_orientation": "The position angle (degrees) from North of the major axis",
    "sky_bbox_ll": "Sky coordinate of the lower-left vertex of the minimal bounding box of the source",
    "sky_bbox_ul": "Sky coordinate of the upper-left vertex of the minimal bounding box of the source",
    "sky_bbox_lr": "Sky coordinate of the lower-right vertex of the minimal bounding box of the source",
    "sky_bbox_ur": "Sky coordinate of the upper-right vertex of the minimal bounding box of the source",
}
_SKY_BBOX = ("sky_bbox_ll", "sky_bbox_ul", "sky_bbox_lr", "sky_bbox_ur")


def make_catalog(
    sci: np.ndarray,
    err: np.ndarray,
    wht: np.ndarray,
    wcs,
    *,
    pixar_sr: float,
    pixel_scale_ratio: float | None,
    instrument: str,
    filter: str | None,
    pupil: str | None,
    detector: str | None,
    subarray: str | None = "FULL",
    apcorr_table: Table | None = None,
    abvega_offset: Table | None = None,
    params: CatalogParameters,
    reference_pixel: tuple[float, float] | None = None,
    workers: int = 1,
    background: BackgroundMesh | None = None,
    origin: tuple[int, int] = (0, 0),
) -> tuple[QTable | None, np.ndarray | None]:
    """Source catalogue and segmentation map of a resampled image.

    Parameters
    ----------
    sci, err : ndarray (ny, nx)
        Surface brightness and its error, MJy/sr.
    wht : ndarray (ny, nx)
        Drizzle weight; 0 (or NaN ERR) marks uncovered pixels.
    wcs : gwcs.WCS or astropy.wcs.WCS
        Any WCS with ``pixel_to_world``/``world_to_pixel`` (0-based pixels)
        giving ICRS coordinates.
    pixar_sr : float
        Pixel area of the image, steradians (PIXAR_SR).
    pixel_scale_ratio : float or None
        Image / native pixel scale (PXSCLRT); scales the aperture radii.
    instrument, filter, pupil, detector, subarray : str
        Exposure metadata that select the reference-data rows.
    apcorr_table, abvega_offset : astropy.table.Table or None
        From :func:`image3.photometry_refs.read_apcorr` and
        :func:`~image3.photometry_refs.read_abvega_offset`; None uses the
        approximate model / a zero offset, with a warning.
    params : CatalogParameters
        The step's parameters (reference names; its reference files are
        ``apcorr_table``/``abvega_offset``, read by the caller).
    reference_pixel : (float, float) or None
        0-based (x, y) where the north angle for ``sky_orientation`` is
        measured; the reference uses CRPIX − 1. None: the image centre.
    workers : int
        Processes that share the windowed centroids (this one and forked
        children); the catalogue is the same for any number.
    background : image3.background.BackgroundMesh or None
        The background mesh of a larger grid (in Jy per pixel, from :func:`detection_arrays`)
        whose pixel ``origin`` (y, x) is the image's (0, 0): a sky tile's is the whole
        mosaic's. None: the image's own.

    Returns
    -------
    catalog : astropy.table.QTable or None
        None when no source is found.
    segmentation : ndarray of uint32 or None
        Labels 1..N of the catalogue's ``label`` column, 0 for background;
        None when no source is found or with the 'iraf'/'dao' star finders
        (the reference then writes no segmentation map).
    """
    apertures = photometry_refs.aperture_params(
        apcorr_table,
        instrument=instrument,
        filter=filter,
        pupil=pupil,
        subarray=subarray,
        aperture_ee=(params.aperture_ee1, params.aperture_ee2, params.aperture_ee3),
        pixel_scale_ratio=pixel_scale_ratio,
    )
    offset = photometry_refs.abvega_offset(
        abvega_offset, instrument=instrument, filter=filter, pupil=pupil, detector=detector
    )
    data, error, uncovered = detection_arrays(sci, err, wht, pixar_sr)
    if params.finding.starfinder == "segmentation":
        sources, segmentation = _segment_sources(data, error, uncovered, wcs, params, workers,
                                                 background, origin)
    else:
        sources, segmentation = _star_sources(data, uncovered, wcs, params), None
    if sources is None:
        log.warning("no sources found in the image: no catalog")
        return None, None

    xypos = np.transpose([sources["xcentroid"], sources["ycentroid"]])
    finite = np.isfinite(xypos).all(axis=1)
    xypos[~finite] = _OFF_IMAGE
    if reference_pixel is None:
        reference_pixel = ((data.shape[1] - 1) / 2.0, (data.shape[0] - 1) / 2.0)

    columns = {name: sources[name] for name in ("label", "xcentroid", "ycentroid", "sky_centroid")}
    descriptions = dict(_SEGMENT_DESCRIPTIONS)
    aperture, aperture_desc, (fluxes, flux_errs) = _aperture_columns(
        data, error, xypos, apertures, offset, workers)
    extras, extras_desc, point_source = _extra_columns(data, xypos, finite, sources["label"],
                                                       fluxes, flux_errs, apertures, params)
    for block, block_desc in ((aperture, aperture_desc), (extras, extras_desc)):
        columns.update(block)
        descriptions.update(block_desc)
    columns.update(_isophotal_columns(sources, offset, _north_angle(wcs, *reference_pixel)))

    catalog = QTable()
    for name, values in columns.items():
        catalog[name] = values
        catalog[name].info.description = descriptions[name]
        catalog[name].info.format = _column_format(name)
    catalog.meta.update(_catalog_meta(sources.meta, apertures, offset))
    catalog.meta.update(point_source)
    return catalog, segmentation


def detection_arrays(sci, err, wht, pixar_sr: float | None, source: str | Path | None = None
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(data, error, uncovered): SCI and ERR in Jy per pixel (MJy/sr × 1e6 × ``pixar_sr``
    steradians), and True where a pixel has no data (NaN ERR or zero weight).
    :class:`InputFileError` (naming ``source``, the file, when given) without a positive
    ``pixar_sr``."""
    if pixar_sr is None or not pixar_sr > 0:
        where = f"{source}: " if source else ""
        raise InputFileError(f"{where}pixel area PIXAR_SR = {pixar_sr!r}: cannot convert MJy/sr "
                             "to Jy")
    sci, err, wht = (np.asarray(a) for a in (sci, err, wht))
    to_jy = 1.0e6 * pixar_sr
    return sci * to_jy, err * to_jy, np.isnan(err) | (wht == 0)


def _segment_sources(data, error, uncovered, wcs, params, workers=1, background=None,
                     origin=(0, 0)):
    """Segment-based columns (reference names) and the label map, or (None, None)."""
    segments = detect_segments(data, uncovered, params.finding, error=error,
                               background=background, origin=origin)
    if segments is None:
        return None, None
    cat = segment_catalog(segments, params.finding, error=error, wcs=wcs)
    with use_future_column_names(), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        warnings.simplefilter("ignore", AstropyUserWarning)
        x, y = _centroids(cat, params.centroid, workers)
        sources = QTable(
            {
                "label": cat.label,
                "xcentroid": x,
                "ycentroid": y,
                "sky_centroid": (wcs.pixel_to_world(x, y) if wcs is not None
                                 else cat.sky_centroid),
                "isophotal_flux": cat.segment_flux * u.Jy,
                "isophotal_flux_err": np.asarray(cat.segment_flux_err, dtype=float) * u.Jy,
                "isophotal_area": cat.area,
                "semimajor_sigma": cat.semimajor_axis,
                "semiminor_sigma": cat.semiminor_axis,
                "ellipticity": cat.ellipticity,
                "orientation": cat.orientation,
                **{name: getattr(cat, name) for name in _SKY_BBOX},
            },
            meta=cat.meta,
        )
    return sources, segments.segmentation.data.astype(np.uint32)


def _centroids(cat, method: str, workers: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Source positions (0-based pixels) from a photutils SourceCatalog.

    ``moments`` is the reference's: first moments of the convolved image within the segment,
    which move with the noise at the segment's edge (0.10 px RMS for S/N >= 50 galaxies on
    synthetic NIRCam mosaics). ``windowed`` (default) iterates a Gaussian window centred on
    the source (SExtractor's XWIN), which weights the core: 0.04 px for the same galaxies.
    A windowed centroid that fails (NaN) falls back to the moments. The windowed centroids
    (photutils, a Python loop over sources that first measures each one's Kron and half-light
    radii: 3.7 s for 2000 sources here, the longest part of the catalogue) are shared out
    over ``workers`` processes, in contiguous runs of sources
    (:func:`~image3.runtime.forked.map_forked`; each source's centroid depends on that source alone, so the results are the same).
    """
    x, y = np.asarray(cat.x_centroid, dtype=float), np.asarray(cat.y_centroid, dtype=float)
    if method == "windowed":
        runs = [run for run in np.array_split(np.arange(len(cat)), max(1, workers)) if run.size]
        parts = map_forked(lambda run: np.reshape(cat[run].centroid_win, (-1, 2)), runs, workers)
        xw, yw = np.concatenate(parts).astype(float).T
        ok = np.isfinite(xw) & np.isfinite(yw)
        x, y = np.where(ok, xw, x), np.where(ok, yw, y)
    return x, y


def _star_sources(data, uncovered, wcs, params):
    """Star-finder columns under the segment names, or None.

    Star finders measure no isophote or moments: the reference leaves those
    columns NaN. Here they are NaN with the segment columns' units (and NaN
    sky coordinates), so the table has the same columns whatever the finder.
    """
    stars = find_stars(data, uncovered, params.finding)
    if stars is None:
        return None
    n = len(stars)
    nan = np.full(n, np.nan)
    nan_sky = SkyCoord(nan * u.deg, nan * u.deg, frame="icrs")
    orientation = stars["orientation"] if "orientation" in stars.colnames else nan
    return QTable(
        {
            "label": np.asarray(stars["id"]),
            "xcentroid": np.asarray(stars["xcentroid"], dtype=float),
            "ycentroid": np.asarray(stars["ycentroid"], dtype=float),
            "sky_centroid": wcs.pixel_to_world(stars["xcentroid"], stars["ycentroid"]),
            "isophotal_flux": np.asarray(stars["flux"], dtype=float) * u.Jy,
            "isophotal_flux_err": nan * u.Jy,
            # IRAF/DAO count the pixels above threshold in the fitting box (reference: npix -> area)
            "isophotal_area": np.asarray(stars["n_pixels"], dtype=float) * u.pix**2,
            "semimajor_sigma": nan * u.pix,
            "semiminor_sigma": nan * u.pix,
            "ellipticity": nan * u.dimensionless_unscaled,
            "orientation": u.Quantity(orientation, u.deg),
            **{name: nan_sky for name in _SKY_BBOX},
        },
        meta=stars.meta,
    )


def _aperture_columns(data, error, xypos, apertures, offset, workers=1):
    """Local background, aperture fluxes and magnitudes in the reference's order.

    Returns (columns, descriptions, fluxes) where ``fluxes`` are the three
    EE-aperture fluxes (Jy, plain arrays) used for the concentration indices. The local
    background (a Python loop over sources: 0.8 s for 2000) is shared out over ``workers``
    processes in contiguous runs of sources, like the centroids.
    """
    ee = apertures["aperture_ee"]
    runs = [run for run in np.array_split(xypos, max(1, workers)) if len(run)]
    parts = map_forked(lambda run: _local_background(
        data, run, apertures["bkg_aperture_inner_radius"],
        apertures["bkg_aperture_outer_radius"]), runs, workers)
    bkg = np.concatenate([part[0] for part in parts])
    bkg_err = np.concatenate([part[1] for part in parts])
    circles = [CircularAperture(xypos, radius) for radius in apertures["aperture_radii"]]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        phot = aperture_photometry(data, circles, error=error)
    fluxes = [np.asarray(phot[f"aperture_sum_{i}"]) - bkg * c.area for i, c in enumerate(circles)]
    flux_errs = [np.asarray(phot[f"aperture_sum_err_{i}"], dtype=float) for i in range(len(circles))]
    # the total is the largest aperture's flux scaled to an infinite aperture
    total_corr = apertures["aperture_corrections"][-1]
    all_fluxes = fluxes + [total_corr * fluxes[-1]]
    all_errs = flux_errs + [total_corr * flux_errs[-1]]
    abmags = [_abmag(f, e) for f, e in zip(all_fluxes, all_errs, strict=True)]
    values = {
        "flux": [(f * u.Jy, e * u.Jy) for f, e in zip(all_fluxes, all_errs, strict=True)],
        "abmag": abmags,
        "vegamag": [(m - offset, m_err) for m, m_err in abmags],
    }

    columns = {"aper_bkg_flux": bkg * u.Jy, "aper_bkg_flux_err": bkg_err * u.Jy}
    descriptions = {
        "aper_bkg_flux": (
            "The local background value calculated as the sigma-clipped median value "
            "in the background annulus aperture"
        ),
        "aper_bkg_flux_err": "The standard error of the sigma-clipped median background value",
    }
    prefixes = [f"aper{e}" for e in ee] + ["aper_total"]
    for kind, pairs in values.items():
        for k, (prefix, (value, value_err)) in enumerate(zip(prefixes, pairs, strict=True)):
            name = f"{prefix}_{kind}"
            columns[name], columns[f"{name}_err"] = value, value_err
            descriptions[name], descriptions[f"{name}_err"] = _aperture_descriptions(
                kind, ee, ee[k] if k < len(ee) else None
            )
    return columns, descriptions, (fluxes, flux_errs)


def _aperture_descriptions(kind, ee, aperture_ee):
    """Reference descriptions of an aperture quantity and its error; the total if ``aperture_ee`` is None."""
    noun = {"flux": "Flux", "abmag": "AB magnitude", "vegamag": "Vega magnitude"}[kind]
    if aperture_ee is not None:
        where = f"within the {aperture_ee}% encircled energy circular aperture"
        return f"{noun} {where}", f"{noun} error {where}"
    noun = "flux" if kind == "flux" else noun
    where = (
        f"based on the {ee[-1]}% encircled energy circular aperture; "
        "should be used only for unresolved sources."
    )
    return f"Total aperture-corrected {noun} {where}", f"Total aperture-corrected {noun} error {where}"


def _extra_columns(data, xypos, finite, labels, fluxes, flux_errs, apertures, params):
    """Concentration indices, star/extended flag, DAOFind statistics, nearest neighbours.

    CI_{hi}_{lo} = flux(EE hi) / flux(EE lo) for the aperture pairs (1, 2),
    (2, 3), (1, 3). ``is_extended`` follows ``params.extended_method``:

    ``point_source_ci`` (default): a source is extended when its CI_{3}_{1} exceeds a point
    source's value by more than ``ci_extended_margin`` (fractional) and by more than 3 times
    the ratio's own noise (from the aperture flux errors), so faint stars are not called
    extended by noise. The point source's value:

    * with an APCORR file, EE3 / EE1 (2.33 for 70/30): the apertures enclose EE1 and EE3 of
      the PSF the file describes. On synthetic NIRCam F200W mosaics with the generator's file:
      stars 98th percentile 2.45, galaxies with r_half >= 2 FWHM from 3.0.
    * without one, the stellar locus measured on the catalogue itself
      (:func:`stellar_locus_ci`): the radii then come from a diffraction-limited model, which
      does not describe the data's PSF, so EE3 / EE1 of the model is wrong for real stars
      (on the synthetic mosaics their CI_70_30 is 2.98 ± 0.06, not 2.33, and every source was
      called extended). With too few bright sources for a locus, EE3 / EE1 with a warning.
      With an APCORR file the locus and EE3 / EE1 agree on synthetic data (2.335 and 2.333)
      and the file is kept: in a field with few stars, the tightest cluster of concentration
      can be compact galaxies.

    The value used is in the meta as ``point_source_ci`` (and ``point_source_ci_origin``).
    ``reference``: both CI_{2}_{1} > ``ci1_star_threshold`` and CI_{3}_{2} >
    ``ci2_star_threshold`` (2.0 / 1.8), which most galaxies never reach (jwst#5632).
    NaN ratios count as not extended.
    """
    ee = apertures["aperture_ee"]
    columns, descriptions, point_source = {}, {}, {}
    with np.errstate(divide="ignore", invalid="ignore"):
        for i, j in _CI_PAIRS:
            name = f"CI_{ee[j]}_{ee[i]}"
            columns[name] = fluxes[j] / fluxes[i]
            descriptions[name] = (
                f"Concentration index calculated as (aper{ee[j]}_flux / aper{ee[i]}_flux)"
            )
        if params.extended_method == "reference":
            ci_21, ci_32 = (columns[f"CI_{ee[j]}_{ee[i]}"] for i, j in _CI_PAIRS[:2])
            extended = ((ci_21 > params.ci1_star_threshold)
                        & (ci_32 > params.ci2_star_threshold))
        else:
            ci_31 = columns[f"CI_{ee[2]}_{ee[0]}"]
            relative_noise = np.abs(np.hypot(flux_errs[0] / fluxes[0], flux_errs[2] / fluxes[2]))
            margin = np.maximum(params.ci_extended_margin, 3 * relative_noise)
            point_ci, origin = _point_source_ci(ci_31, relative_noise, apertures, params)
            extended = ci_31 > point_ci * (1 + margin)
            point_source = {"point_source_ci": point_ci, "point_source_ci_origin": origin}
    columns["is_extended"] = np.asarray(extended, dtype=bool)
    columns["sharpness"], columns["roundness"] = _daofind_statistics(
        data, xypos, params.finding.kernel_fwhm * gaussian_fwhm_to_sigma
    )
    columns["nn_label"], columns["nn_dist"] = _nearest_neighbours(labels, xypos, finite)
    descriptions.update(
        is_extended="Flag indicating whether the source is extended",
        sharpness="The DAOFind source sharpness statistic",
        roundness="The DAOFind source roundness statistic",
        nn_label="The label number of the nearest neighbor",
        nn_dist="The distance in pixels to the nearest neighbor",
    )
    return columns, descriptions, point_source


def stellar_locus_ci(ci: np.ndarray, relative_noise: np.ndarray, *,
                     max_relative_noise: float = _LOCUS_MAX_NOISE,
                     min_sources: int = _LOCUS_MIN_SOURCES) -> float | None:
    """Concentration index of point sources, measured on a catalogue: its tightest cluster.

    Point sources all have the PSF's shape, so among sources measured precisely enough
    (``relative_noise`` of the index ≤ ``max_relative_noise``) their indices pile up in one
    narrow peak, and nothing real is more concentrated. For each source, count the sources
    within ±3% of its index; the locus is the lowest-index concentration at least half as
    dense as the densest one (so compact galaxies just above it, or a galaxy population
    denser than the stars, do not win), and its value the median of the sources within ±5%
    of that concentration's peak.

    Returns
    -------
    float or None
        None when fewer than ``min_sources`` sources are precise enough or fall in the peak.
    """
    ci, relative_noise = np.asarray(ci, dtype=float), np.asarray(relative_noise, dtype=float)
    precise = np.isfinite(ci) & (ci > 0) & (relative_noise <= max_relative_noise)
    log_ci = np.sort(np.log(ci[precise]))
    if log_ci.size < min_sources:
        return None
    width = np.log(1.03)
    counts = (np.searchsorted(log_ci, log_ci + width, side="right")
              - np.searchsorted(log_ci, log_ci - width, side="left"))
    dense = np.flatnonzero(counts >= max(min_sources, 0.5 * counts.max()))
    if dense.size == 0:
        return None
    near = np.flatnonzero(np.abs(log_ci - log_ci[dense[0]] - width) <= width)
    peak = log_ci[near[np.argmax(counts[near])]]
    members = log_ci[np.abs(log_ci - peak) <= np.log(1.05)]
    if members.size < min_sources:
        return None
    return float(np.exp(np.median(members)))


def _point_source_ci(ci, relative_noise, apertures, params):
    """(CI_{3}_{1} of a point source, where it came from): see :func:`_extra_columns`."""
    ee = apertures["aperture_ee"]
    model = float(ee[2] / ee[0])
    locus = stellar_locus_ci(ci, relative_noise)
    if not apertures.get("approximate", False):
        if locus is not None and abs(locus / model - 1) > params.ci_extended_margin:
            log.warning(
                "point sources have CI_%d_%d = %.3f, not EE%d/EE%d = %.3f: the APCORR file does "
                "not describe this image's PSF, so is_extended is not reliable",
                ee[2], ee[0], locus, ee[2], ee[0], model)
        return model, "EE ratio of the APCORR file"
    if locus is None:
        log.warning(
            "too few bright sources to measure the point-source concentration index: "
            "is_extended compares CI_%d_%d with %.3f of the approximate PSF model, which may "
            "call stars extended", ee[2], ee[0], model)
        return model, "EE ratio of the approximate PSF model"
    log.info("point sources: CI_%d_%d = %.3f (stellar locus of the catalogue)", ee[2], ee[0], locus)
    return locus, "stellar locus of the catalogue"


def _isophotal_columns(sources, offset, north_angle):
    """Segment photometry and shape columns; angles wrapped to (−90°, 90°].

    ``sky_orientation`` = 180° − (angle of north from +x at the reference
    pixel) + ``orientation``: the major axis' position angle, east of north.
    """
    abmag, abmag_err = _abmag(sources["isophotal_flux"], sources["isophotal_flux_err"])
    columns = {
        "isophotal_flux": sources["isophotal_flux"],
        "isophotal_flux_err": sources["isophotal_flux_err"],
        "isophotal_abmag": abmag,
        "isophotal_abmag_err": abmag_err,
        "isophotal_vegamag": abmag - offset,
        "isophotal_vegamag_err": abmag_err,
    }
    for name in ("isophotal_area", "semimajor_sigma", "semiminor_sigma", "ellipticity"):
        columns[name] = sources[name]
    columns["orientation"] = _symmetric_angle(sources["orientation"])
    columns["sky_orientation"] = _symmetric_angle(180.0 * u.deg - north_angle + columns["orientation"])
    for name in _SKY_BBOX:
        columns[name] = sources[name]
    return columns


def _local_background(data, xypos, inner_radius, outer_radius):
    """Per source: 3σ-clipped median in the annulus (pixel centres inside) and its standard error.

    The error is that of a median, sqrt(π / 2N) × std of the N kept pixels.
    """
    annulus = CircularAnnulus(xypos, inner_radius, outer_radius)
    median = np.full(len(xypos), np.nan)
    median_err = np.full(len(xypos), np.nan)
    for i, mask in enumerate(annulus.to_mask(method="center")):
        values = mask.get_values(data)
        values = sigma_clip_1d(values[np.isfinite(values)])[0]
        if values.size:
            median[i] = np.median(values)
            median_err[i] = np.sqrt(np.pi / (2.0 * values.size)) * np.std(values)
    return median, median_err


def _abmag(flux, flux_err):
    """AB magnitude and error of fluxes in Jy; NaN where the flux is not positive."""
    flux = u.Quantity(flux, u.Jy).value
    flux_err = u.Quantity(flux_err, u.Jy).value
    positive = flux > 0
    with np.errstate(divide="ignore", invalid="ignore"):
        abmag = np.where(positive, -2.5 * np.log10(flux) + 8.9, np.nan)
        abmag_err = np.where(positive, 2.5 * np.log10(1.0 + flux_err / flux), np.nan)
    return abmag, abmag_err


def _daofind_statistics(data, xypos, kernel_sigma):
    """DAOFind sharpness and roundness at given positions, as the reference recomputes them.

    The kernel is a circular Gaussian (σ = ``kernel_sigma``) of odd size
    2·int(max(2, 1.5σ)) + 1 truncated at radius max(2, 1.5σ), shifted and
    scaled to zero sum. Cutouts are centred on the pixel nearest each
    position (halves round down), outside the image counts as 0, NaN
    pixels make NaN statistics.

    sharpness = (peak − mean of the other kernel pixels) / convolved peak;
    roundness = 2 (−Q1 + Q2 − Q3 + Q4) / Σ|convolved| over the cutout without
    its centre (bilateral over four-fold symmetry).
    """
    half_width = max(2.0, 1.5 * kernel_sigma)
    size = 2 * int(half_width) + 1
    c = size // 2
    yy, xx = np.mgrid[0:size, 0:size]
    kmask = (np.hypot(xx - c, yy - c) <= half_width).astype(float)
    kernel = Gaussian2DKernel(kernel_sigma, x_size=size, y_size=size).array
    kernel = kernel / kernel.max() * kmask
    npix = kmask.sum()
    kernel = (kernel - kernel.sum() / npix) / (np.sum(kernel**2) - kernel.sum() ** 2 / npix) * kmask

    # data around each source: (N, 4c+1, 4c+1), enough to convolve the (N, size, size) cutout
    centre_x = np.ceil(xypos[:, 0] - 0.5).astype(int)
    centre_y = np.ceil(xypos[:, 1] - 0.5).astype(int)
    offsets = np.arange(-2 * c, 2 * c + 1)
    ys = centre_y[:, None] + offsets
    xs = centre_x[:, None] + offsets
    inside_y = (ys >= 0) & (ys < data.shape[0])
    inside_x = (xs >= 0) & (xs < data.shape[1])
    rows = np.clip(ys, 0, data.shape[0] - 1)[:, :, None]
    cols = np.clip(xs, 0, data.shape[1] - 1)[:, None, :]
    patch = data[rows, cols]
    inside = inside_y[:, :, None] & inside_x[:, None, :]
    patch = np.where(inside, patch, 0.0)

    cutout = patch[:, c : c + size, c : c + size]
    convolved = np.zeros_like(cutout, dtype=float)
    for i, j in zip(*np.nonzero(kernel), strict=True):
        # as ndimage.convolve: out[y, x] = Σ K[i, j] · data[y + c − i, x + c − j]
        top, left = 2 * c - i, 2 * c - j
        convolved += kernel[i, j] * patch[:, top : top + size, left : left + size]
    convolved = np.where(inside[:, c : c + size, c : c + size], convolved, 0.0)

    with np.errstate(divide="ignore", invalid="ignore"):
        peak = cutout[:, c, c]
        mean_others = ((cutout * kmask).sum(axis=(1, 2)) - peak) / (npix - 1)
        sharpness = (peak - mean_others) / convolved[:, c, c]

        ring = convolved.copy()
        ring[:, c, c] = 0.0
        quad1 = ring[:, 0 : c + 1, c + 1 :].sum(axis=(1, 2))
        quad2 = ring[:, 0:c, 0 : c + 1].sum(axis=(1, 2))
        quad3 = ring[:, c:, 0:c].sum(axis=(1, 2))
        quad4 = ring[:, c + 1 :, c:].sum(axis=(1, 2))
        sum4 = np.abs(ring).sum(axis=(1, 2))
        roundness = 2.0 * (-quad1 + quad2 - quad3 + quad4) / np.where(sum4 == 0, np.nan, sum4)
    return sharpness, roundness


def _nearest_neighbours(labels, xypos, finite):
    """Label of and distance (pixels) to each source's nearest neighbour; −1 / NaN if none."""
    labels = np.asarray(labels)
    if len(labels) == 1:
        return np.array([-1], dtype=labels.dtype), np.array([np.nan]) * u.pix
    distance, index = KDTree(xypos).query(xypos, k=[2])
    nn_label = labels[index[:, 0]]
    nn_dist = distance[:, 0].copy()
    nn_label[~finite] = -1
    nn_dist[~finite] = np.nan
    return nn_label, nn_dist * u.pix


def _symmetric_angle(angle):
    """Wrap an angle Quantity to (−90°, 90°]: an axis direction, not a vector."""
    degrees = u.Quantity(angle, u.deg).value
    return (90.0 - np.mod(90.0 - degrees, 180.0)) * u.deg


def _north_angle(wcs, x, y):
    """Angle (deg) counter-clockwise from +x to celestial north at pixel (x, y)."""
    here = wcs.pixel_to_world(x, y)
    x_north, y_north = wcs.world_to_pixel(here.directional_offset_by(0.0 * u.deg, 1.0 * u.arcsec))
    return np.degrees(np.arctan2(y_north - y, x_north - x)) * u.deg


def _column_format(name):
    """The reference's display formats (JWST pipeline working group, 2020)."""
    if name in ("xcentroid", "ycentroid") or "CI_" in name:
        return ".4f"
    if "flux" in name:
        return ".6e"
    if "abmag" in name or "vegamag" in name or name in (
        "nn_dist",
        "sharpness",
        "roundness",
        "semimajor_sigma",
        "semiminor_sigma",
        "ellipticity",
        "orientation",
        "sky_orientation",
    ):
        return ".6f"
    return None


def _catalog_meta(source_meta, apertures, offset):
    """Table meta: photutils' (date, settings) with trimmed versions, aperture parameters, offset."""
    meta = dict(source_meta)
    versions = dict(meta.get("version", {}))
    versions = {name: versions.get(name) for name in _VERSION_PACKAGES}
    versions["Python"] = versions["Python"] or sys.version.split()[0]
    versions["image3"] = __version__
    meta["version"] = versions
    meta["aperture_params"] = {
        "aperture_ee": np.asarray(apertures["aperture_ee"], dtype=int),
        "aperture_radii": np.asarray(apertures["aperture_radii"], dtype=float),
        "aperture_corrections": np.asarray(apertures["aperture_corrections"], dtype=float),
        "bkg_aperture_inner_radius": float(apertures["bkg_aperture_inner_radius"]),
        "bkg_aperture_outer_radius": float(apertures["bkg_aperture_outer_radius"]),
    }
    meta["abvega_offset"] = float(offset)
    return meta


@contextlib.contextmanager
def open_mosaic(path: str | Path):
    """The ``_i2d`` as an ImageModel whose arrays are read from the file only when used.

    The FITS file is memory-mapped: the catalogue reads SCI, ERR and WHT and never the other
    four arrays (CON, VAR_*), which stdatamodels would otherwise load on open (100 MB of a
    2600 x 2400 mosaic). Failure to open is one :class:`InputFileError` line.
    """
    try:
        hdulist = fits.open(path, memmap=True)
    except OSError as exc:
        raise InputFileError(f"{path}: not a readable JWST image product ({exc})") from None
    with hdulist:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                model = datamodels.ImageModel(hdulist)
        except Exception as exc:  # stdatamodels raises many types for corrupt files
            reason = first_line(exc)
            raise InputFileError(f"{path}: not a readable JWST image product ({reason})") from None
        model.meta.filename = Path(path).name
        with model:
            yield model


def catalog_for_product(model, params: CatalogParameters, workers: int = 1,
                        background: BackgroundMesh | None = None, origin: tuple[int, int] = (0, 0)
                        ) -> tuple[QTable | None, np.ndarray | None]:
    """Catalogue and segmentation map of an ``_i2d`` ImageModel, reading the reference files
    named by ``params.apcorr_file`` / ``params.abvegaoffset_file`` (empty: the approximate
    defaults, with a warning), on ``workers`` processes, on the grid's ``background`` (a sky
    tile whose pixel (0, 0) is the grid's ``origin``) or its own (:func:`make_catalog`)."""
    ins = model.meta.instrument
    if model.meta.bunit_data != "MJy/sr" or (model.meta.bunit_err not in (None, "MJy/sr")):
        raise InputFileError(
            f"{model.meta.filename}: SCI/ERR units are {model.meta.bunit_data!r}/"
            f"{model.meta.bunit_err!r}; the catalogue needs MJy/sr")
    apcorr = (photometry_refs.read_apcorr(params.apcorr_file, ins.name)
              if params.apcorr_file else None)
    abvega = (photometry_refs.read_abvega_offset(params.abvegaoffset_file)
              if params.abvegaoffset_file else None)
    crpix = (model.meta.wcsinfo.crpix1, model.meta.wcsinfo.crpix2)
    return make_catalog(
        model.data, model.err, model.wht, model.meta.wcs,
        pixar_sr=model.meta.photometry.pixelarea_steradians,
        pixel_scale_ratio=model.meta.resample.pixel_scale_ratio,
        instrument=ins.name, filter=ins.filter, pupil=ins.pupil, detector=ins.detector,
        subarray=model.meta.subarray.name, apcorr_table=apcorr, abvega_offset=abvega,
        params=params,
        reference_pixel=None if None in crpix else (crpix[0] - 1.0, crpix[1] - 1.0),
        workers=workers, background=background, origin=origin,
    )


def write_source_catalog(i2d_path: str | Path, params: CatalogParameters,
                         catalog_path: str | Path, segm_path: str | Path, workers: int = 1,
                         background_path: str | Path | None = None,
                         origin: tuple[int, int] = (0, 0)) -> str:
    """Write the ``_cat.ecsv`` and ``_segm.fits`` of the ``_i2d`` at ``i2d_path``
    (:func:`catalog_for_product`, :func:`write_catalog_products`); a sky tile's, whose pixel
    (0, 0) is the grid's ``origin`` (y, x), on the mosaic's background mesh saved at
    ``background_path`` (:mod:`image3.tile_background`). Returns a summary line."""
    background = BackgroundMesh.read(background_path) if background_path else None
    with open_mosaic(i2d_path) as i2d:
        catalog, segmentation = catalog_for_product(i2d, params, workers, background, origin)
        write_catalog_products(catalog, segmentation, i2d, catalog_path, segm_path)
    return f"{0 if catalog is None else len(catalog)} sources in {catalog_path}"


def write_catalog_products(catalog: QTable | None, segmentation: np.ndarray | None, i2d,
                           catalog_path, segm_path) -> None:
    """Write ``_cat.ecsv`` and ``_segm.fits`` (atomically).

    With no source, the catalogue is an empty table (a ``label`` column and no rows) so that
    tables of many fields concatenate; the segmentation map is all zeros when there is no
    source or the star finder was iraf/dao (the reference writes none then; a file is kept here
    so the workflow's outputs do not depend on the data).
    """
    if catalog is None:
        catalog = QTable({"label": np.zeros(0, dtype=np.int64)})
        catalog.meta["comment"] = "no sources detected"
    with atomic_path(catalog_path) as tmp:
        catalog.write(tmp, format="ascii.ecsv", overwrite=True)
    segm = datamodels.SegmentationMapModel(
        (np.zeros(i2d.data.shape, dtype=np.uint32) if segmentation is None
         else segmentation.astype(np.uint32)))
    segm.update(i2d)
    segm.meta.wcs = i2d.meta.wcs
    save_model(segm, segm_path)


#: Catalogue columns in pixels of the i2d, shifted to the grid's pixels in the merged catalogue.
_X_COLUMNS = ("xcentroid", "bbox_xmin", "bbox_xmax")
_Y_COLUMNS = ("ycentroid", "bbox_ymin", "bbox_ymax")


def merge_tile_catalogs(catalogs: Sequence[str | Path], tiles: Sequence[Tile],
                        out_path: str | Path) -> str:
    """One catalogue from the tiles' (``catalogs[k]`` is ``tiles[k]``'s ``_cat.ecsv``): each
    tile's sources whose centroid lies in its inner region, pixel columns in the grid's pixels,
    labels renumbered 1..N in tile order, a ``tile`` column; the first tile's meta. Written
    atomically. Returns a summary."""
    kept, meta = [], None
    for path, tile in zip(catalogs, tiles, strict=True):
        table = Table.read(path)
        meta = meta if meta is not None else table.meta
        if len(table) == 0:
            continue
        wy0, _, wx0, _ = tile.window
        y0, y1, x0, x1 = tile.inner
        x = np.asarray(table["xcentroid"], float) + wx0
        y = np.asarray(table["ycentroid"], float) + wy0
        inside = (x >= x0 - 0.5) & (x < x1 - 0.5) & (y >= y0 - 0.5) & (y < y1 - 0.5)
        table = table[inside]
        for names, offset in ((_X_COLUMNS, wx0), (_Y_COLUMNS, wy0)):
            for name in names:
                if name in table.colnames:
                    table[name] = table[name] + offset
        table["tile"] = tile.name
        kept.append(table)
    merged = vstack(kept, metadata_conflicts="silent") if kept else Table()
    if len(merged):
        merged["label"] = np.arange(1, len(merged) + 1)
    merged.meta.update(meta or {})
    with atomic_path(out_path) as tmp:
        merged.write(tmp, format="ascii.ecsv", overwrite=True)
    return f"wrote {out_path}: {len(merged)} sources from {len(tiles)} tiles"
