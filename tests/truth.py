"""Reading the synthetic generator's truth and measuring products against it (test helpers)."""

from pathlib import Path

import asdf
import numpy as np
from astropy.table import Table
from scipy.spatial import cKDTree

from image3 import synth
from image3.wcs import pixel_scale_arcsec

ARCSEC_PER_DEG = 3600.0


def truth_sources(asn_path: Path) -> Table:
    return Table.read(Path(asn_path).parent / "truth" / "sources.ecsv")


def isolation_arcsec(sources: Table) -> np.ndarray:
    """Distance (arcsec) from each source to its nearest other source."""
    dec0 = np.deg2rad(np.mean(sources["dec"]))
    xy = np.column_stack([np.asarray(sources["ra"]) * np.cos(dec0), np.asarray(sources["dec"])])
    dist, _ = cKDTree(xy * ARCSEC_PER_DEG).query(xy * ARCSEC_PER_DEG, k=2)
    return dist[:, 1]


def to_pixels(wcs, sources: Table) -> tuple[np.ndarray, np.ndarray]:
    """Truth positions in a product's pixel frame (0-based) through its gwcs inverse."""
    x, y = wcs.invert(np.asarray(sources["ra"]), np.asarray(sources["dec"]))
    return np.asarray(x), np.asarray(y)


def windowed_centroid(image: np.ndarray, x: float, y: float, sigma_px: float = 1.2,
                      iterations: int = 20) -> tuple[float, float]:
    """Gaussian-windowed centroid (SExtractor's XWIN) around (x, y): unbiased for symmetric
    sources and insensitive to the noise far from the centre."""
    half = int(np.ceil(4 * sigma_px))
    for _ in range(iterations):
        ix, iy = int(round(x)), int(round(y))
        cut = image[iy - half:iy + half + 1, ix - half:ix + half + 1]
        yy, xx = np.mgrid[iy - half:iy + half + 1, ix - half:ix + half + 1]
        w = np.exp(-((xx - x) ** 2 + (yy - y) ** 2) / (2 * sigma_px ** 2)) * cut
        w = np.where(np.isfinite(w), w, 0.0)
        nx, ny = (w * xx).sum() / w.sum(), (w * yy).sum() / w.sum()
        # SExtractor's XWIN update: x + 2 sum(w I (x_i - x)) / sum(w I).
        nx, ny = x + 2 * (nx - x), y + 2 * (ny - y)
        if abs(nx - x) < 1e-5 and abs(ny - y) < 1e-5:
            return nx, ny
        x, y = nx, ny
    return x, y



def match_to_truth(catalog_ra, catalog_dec, sources: Table, radius_arcsec: float,
                   remove_offset: bool = True):
    """Nearest truth source of each catalogue entry within ``radius_arcsec``, after removing
    the catalogue's common offset (median over confident matches) if asked.

    Returns (index into ``sources`` or -1 for each entry, distance arcsec, (dx, dy) offset).
    """
    dec0 = np.deg2rad(np.mean(sources["dec"]))
    truth_xy = np.column_stack([np.asarray(sources["ra"]) * np.cos(dec0),
                                np.asarray(sources["dec"])]) * ARCSEC_PER_DEG
    cat_xy = np.column_stack([np.asarray(catalog_ra) * np.cos(dec0),
                              np.asarray(catalog_dec)]) * ARCSEC_PER_DEG
    tree = cKDTree(truth_xy)
    offset = np.zeros(2)
    if remove_offset:
        dist, idx = tree.query(cat_xy, distance_upper_bound=3 * radius_arcsec)
        ok = np.isfinite(dist)
        if ok.sum() >= 3:
            offset = np.median(cat_xy[ok] - truth_xy[idx[ok]], axis=0)
    dist, idx = tree.query(cat_xy - offset, distance_upper_bound=radius_arcsec)
    idx = np.where(np.isfinite(dist), idx, -1)
    return idx, dist, offset


def truth_error_px(asn: Path, member: str, wcs) -> float:
    """RMS [pixel] over true sources on the member of wcs(true pixel position) − true RA/Dec."""
    sources = Table.read(asn.parent / "truth" / "sources.ecsv")
    with asdf.open(asn.parent / "truth" / f"{member}_wcs.asdf") as af:
        true_wcs = af.tree["wcs"]
        nx, ny = true_wcs.pixel_shape
        x, y = synth.sky_to_pixel(true_wcs, sources["ra"], sources["dec"])
        inside = (x > -0.5) & (x < nx - 0.5) & (y > -0.5) & (y < ny - 0.5)
        scale = pixel_scale_arcsec(true_wcs, *true_wcs((nx - 1) / 2, (ny - 1) / 2))
    ra, dec = wcs(x[inside], y[inside], with_bounding_box=False)
    east, north = synth._tangent_offsets(ra, dec, sources["ra"][inside], sources["dec"][inside])
    return float(np.sqrt(np.mean(east**2 + north**2)) / scale)
