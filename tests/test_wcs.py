"""Footprints, output grid, FITS TAN header and pixel maps on a full-frame NRCB1 gwcs of the
synthetic sky (SIAF distortion)."""

import copy
import time
from dataclasses import replace

import asdf
import numpy as np
import pytest
from astropy.modeling import models as astmodels
from astropy.wcs import WCS as FitsWCS

import gwcs
from image3 import wcs as W
from image3.config import schema_defaults
from image3.errors import GridError
from image3.footprints import parse_s_region
from image3.parameters import OutputGrid

DETECTOR = (2048, 2048)
#: The reference's default grid (the schema's resample defaults); tests vary it with ``replace``.
GRID = OutputGrid.from_config(schema_defaults()["resample"])


# ------------------------------------------------------------ helpers (also used by test_resample)


def sky_rotation(wcs):
    """The v2v3 -> sky RotationSequence3D, angles [v2_ref, -v3_ref, roll_ref, dec_ref, -ra_ref]."""
    return wcs.get_transform("v2v3vacorr", "world")[3]


def dithered(wcs, dv2_arcsec: float, dv3_arcsec: float):
    """A copy of ``wcs`` pointed (dv2, dv3) arcsec away, by editing the sky rotation angles."""
    moved = copy.deepcopy(wcs)
    rotation = sky_rotation(moved)
    angles = np.array(rotation.angles.value, dtype=float)
    angles[0] += dv2_arcsec / 3600.0
    angles[1] -= dv3_arcsec / 3600.0
    rotation.angles = angles
    return moved


def position_angle(wcs, x, y, dx, dy) -> float:
    """Position angle (deg E of N) of the pixel step (dx, dy) at (x, y)."""
    r1, d1, r2, d2 = map(np.deg2rad, (*wcs(x, y), *wcs(x + dx, y + dy)))
    east = np.sin(r2 - r1) * np.cos(d2)
    north = np.cos(d1) * np.sin(d2) - np.sin(d1) * np.cos(d2) * np.cos(r2 - r1)
    return float(np.rad2deg(np.arctan2(east, north)))


@pytest.fixture(scope="module")
def dithers(nircam):
    wcs, _ = nircam
    return [wcs, dithered(wcs, 6.0, 4.0), dithered(wcs, -5.0, 9.0)]


# ------------------------------------------------------------------ footprints


def test_footprint_is_the_outer_pixel_corners(nircam):
    wcs, _ = nircam
    fp = W.footprint(wcs, DETECTOR)
    ra, dec = wcs([-0.5, -0.5, 2047.5, 2047.5], [-0.5, 2047.5, 2047.5, -0.5])
    np.testing.assert_allclose(fp, np.column_stack([ra, dec]), rtol=0, atol=1e-12)
    # without a shape the bounding box (-0.5 .. 2047.5) gives the same corners
    np.testing.assert_allclose(W.footprint(wcs), fp, rtol=0, atol=1e-12)


def test_s_region_round_trip_to_1e9_deg(nircam):
    wcs, _ = nircam
    fp = W.footprint(wcs, DETECTOR)
    text = W.s_region(fp)
    assert text.startswith("POLYGON ICRS  ")
    (back,) = parse_s_region(text)
    np.testing.assert_allclose(back, fp, rtol=0, atol=1e-9)
    two = parse_s_region(text + " POLYGON ICRS 1 2 3 4 5 6")
    assert [p.shape for p in two] == [(4, 2), (3, 2)]
    for bad in ("CIRCLE ICRS 1 2 3", "POLYGON ICRS 1 2 x 4 5 6", "POLYGON ICRS 1 2 3 4"):
        with pytest.raises(GridError):
            parse_s_region(bad)


def test_pixel_scale_of_nircam_short_wave_is_31_mas(nircam):
    wcs, info = nircam
    scale = W.pixel_scale_arcsec(wcs, info["ra_ref"], info["dec_ref"])
    assert scale == pytest.approx(0.0308, abs=0.0003)
    mean = 3600 * np.rad2deg(np.sqrt(W.mean_pixel_area_sr(wcs)))
    assert mean == pytest.approx(scale, rel=2e-3)  # distortion: the mean differs slightly


# ------------------------------------------------------------------ output grid


def test_default_grid_covers_all_footprints_with_first_input_scale(nircam, dithers):
    wcs, info = nircam
    footprints = [W.footprint(w, DETECTOR) for w in dithers]
    grid = W.output_grid(wcs, info, footprints, GRID)
    ny, nx = grid.array_shape
    assert grid.pixel_shape == (nx, ny)
    assert grid.bounding_box.bounding_box(order="F") == ((-0.5, nx - 0.5), (-0.5, ny - 0.5))
    assert (grid.input_frame.name, grid.output_frame.name) == ("detector", "world")
    corners = np.vstack(footprints)
    x, y = grid.invert(corners[:, 0], corners[:, 1], with_bounding_box=False)
    # the reference's recipe: the lowest corner lands on pixel 0, the size is int(max + 0.5),
    # so the grid spans every footprint to within half a pixel
    assert min(x.min(), y.min()) == pytest.approx(0.0, abs=1e-6)
    assert nx - 0.5 <= x.max() < nx + 0.5 and ny - 0.5 <= y.max() < ny + 0.5
    crval = grid.forward_transform.crval.value
    first = W.pixel_scale_arcsec(wcs, info["ra_ref"], info["dec_ref"])
    assert W.pixel_scale_arcsec(grid, *crval) == pytest.approx(first, rel=1e-9)
    # crval (the reference's unit-vector midpoint of all corners) lies well inside the grid
    crpix = grid.forward_transform.crpix.value
    assert 0.3 * nx < crpix[0] < 0.7 * nx and 0.3 * ny < crpix[1] < 0.7 * ny


def test_default_orientation_follows_the_first_detector(nircam):
    wcs, info = nircam
    grid = W.output_grid(wcs, info, [W.footprint(wcs, DETECTOR)], GRID)
    xo, yo = grid.invert(info["ra_ref"], info["dec_ref"])
    xi, yi = wcs.invert(info["ra_ref"], info["dec_ref"])
    # output +y along the detector's +y to 0.01 deg (the rest is the distortion's skew)
    expected = position_angle(wcs, xi, yi, 0, 1)
    assert position_angle(grid, xo, yo, 0, 1) == pytest.approx(expected, abs=0.01)


def test_rotation_zero_is_north_up_east_left(nircam, dithers):
    wcs, info = nircam
    grid = W.output_grid(wcs, info, [W.footprint(w, DETECTOR) for w in dithers],
                         replace(GRID, rotation=0.0))
    x, y = grid.forward_transform.crpix.value
    assert position_angle(grid, x, y, 0, 1) == pytest.approx(0.0, abs=1e-6)
    assert position_angle(grid, x, y, 1, 0) == pytest.approx(-90.0, abs=1e-6)


def test_pixel_scale_options(nircam):
    wcs, info = nircam
    fp = [W.footprint(wcs, DETECTOR)]
    base = W.output_grid(wcs, info, fp, GRID)
    half = W.output_grid(wcs, info, fp, replace(GRID, pixel_scale_ratio=0.5))
    crval = base.forward_transform.crval.value
    s0 = W.pixel_scale_arcsec(base, *crval)
    # a one-pixel step is ~1e-7 rad: positions good to ~1e-16 rad give scales good to a few
    # 1e-9 (3e-9 apart here with gwcs 1.0.3 / astropy 8.0.2), so 1e-7 and not tighter
    assert W.pixel_scale_arcsec(half, *crval) == pytest.approx(0.5 * s0, rel=1e-7)
    assert half.array_shape[0] == pytest.approx(2 * base.array_shape[0], abs=2)
    fixed = W.output_grid(wcs, info, fp, replace(GRID, pixel_scale=0.06, pixel_scale_ratio=0.5))
    assert W.pixel_scale_arcsec(fixed, *crval) == pytest.approx(0.06, rel=1e-9)
    scale, ratio = W.grid_scale(wcs, info, replace(GRID, pixel_scale=0.06))
    mean_in = 3600 * np.rad2deg(np.sqrt(W.mean_pixel_area_sr(wcs)))
    assert (scale, ratio) == (0.06, pytest.approx(0.06 / mean_in, rel=1e-12))
    expected = (pytest.approx(0.5 * s0, rel=1e-7), 0.5)
    assert W.grid_scale(wcs, info, replace(GRID, pixel_scale_ratio=0.5)) == expected


def test_crpix_crval_and_output_shape(nircam):
    wcs, info = nircam
    crval = (info["ra_ref"] + 0.001, info["dec_ref"] - 0.002)
    grid = W.output_grid(wcs, info, [W.footprint(wcs, DETECTOR)],
                         replace(GRID, crval=crval, crpix=(10.0, 20.0), output_shape=[300, 200]))
    assert grid.array_shape == (200, 300)
    np.testing.assert_allclose(grid(10.0, 20.0), crval, rtol=0, atol=1e-10)


def test_refuses_absurd_grid_with_one_line(nircam):
    wcs, info = nircam
    with pytest.raises(GridError) as err:
        W.output_grid(wcs, info, [W.footprint(wcs, DETECTOR)],
                      replace(GRID, max_output_pixels=1_000_000))
    message = str(err.value)
    assert "\n" not in message and "1000000" in message and "x" in message
    # a bad pointing (one footprint 5 deg away) makes a huge frame: refused, not allocated
    far = W.footprint(dithered(wcs, 18000.0, 0.0), DETECTOR)
    with pytest.raises(GridError, match="exceeds the limit"):
        W.output_grid(wcs, info, [W.footprint(wcs, DETECTOR), far], GRID)
    with pytest.raises(GridError, match="roll_ref"):
        no_roll = {k: v for k, v in info.items() if k != "roll_ref"}
        W.output_grid(wcs, no_roll, [W.footprint(wcs, DETECTOR)], GRID)


# ------------------------------------------------------------------ FITS header, grid files


def _pixel_error_of_header(header, grid) -> float:
    ny, nx = grid.array_shape
    x, y = np.meshgrid(np.linspace(-0.5, nx - 0.5, 41), np.linspace(-0.5, ny - 0.5, 41))
    ra, dec = FitsWCS(header).all_pix2world(x, y, 0)
    gx, gy = grid.invert(ra, dec, with_bounding_box=False)
    return float(np.max(np.hypot(gx - x, gy - y)))


def test_fits_tan_header_matches_grid_to_005_pixel(nircam, dithers):
    wcs, info = nircam
    grid = W.output_grid(wcs, info, [W.footprint(w, DETECTOR) for w in dithers], GRID)
    header = W.fits_tan_header(grid)
    assert header["CTYPE1"] == "RA---TAN" and header["RADESYS"] == "ICRS"
    assert header["CRPIX1"] == pytest.approx(grid.forward_transform.crpix.value[0] + 1)
    assert _pixel_error_of_header(header, grid) < 1e-6  # exact TAN (limit asked: 0.05)

    # a TAN gwcs that is not a FITSImagingWCSTransform is fitted, to well under 0.05 pixel
    f = grid.forward_transform
    compound = (astmodels.Shift(-f.crpix.value[0]) & astmodels.Shift(-f.crpix.value[1])
                | astmodels.AffineTransformation2D(matrix=f.pc.value)
                | astmodels.Scale(f.cdelt.value[0]) & astmodels.Scale(f.cdelt.value[1])
                | astmodels.Pix2Sky_TAN()
                | astmodels.RotateNative2Celestial(*f.crval.value, 180.0))
    other = gwcs.WCS(compound, input_frame=grid.input_frame, output_frame=grid.output_frame)
    other.bounding_box = grid.bounding_box.bounding_box(order="F")
    other.array_shape = grid.array_shape
    assert _pixel_error_of_header(W.fits_tan_header(other), grid) < 0.05


def test_grid_file_round_trip(tmp_path, nircam):
    wcs, info = nircam
    params = replace(GRID, pixel_scale_ratio=0.8)
    wcs_out = W.output_grid(wcs, info, [W.footprint(wcs, DETECTOR)], params)
    grid = W.Grid(wcs_out, wcs_out.array_shape, *W.grid_scale(wcs, info, params))
    path = tmp_path / "grid.pkl"
    W.write_grid(path, grid)
    back = W.read_grid(path)
    assert back.shape == grid.shape and back.wcs.array_shape == grid.shape
    assert (back.pixel_scale_arcsec, back.pixel_scale_ratio) == (grid.pixel_scale_arcsec, 0.8)
    np.testing.assert_allclose(back.wcs(10.0, 30.0), wcs_out(10.0, 30.0), rtol=0, atol=1e-12)
    # written as a reference-style output_wcs file, it reads back as the same grid
    path = tmp_path / "grid.asdf"
    W.write_output_wcs(path, grid)
    area = W.mean_pixel_area_sr(wcs)
    user = W.read_output_wcs(path, area)
    assert user.shape == grid.shape and user.pixel_scale_arcsec == grid.pixel_scale_arcsec
    scale_in = 3600 * np.rad2deg(np.sqrt(area))
    assert user.pixel_scale_ratio == pytest.approx(grid.pixel_scale_arcsec / scale_in, rel=1e-12)


def test_read_output_wcs_like_the_reference(tmp_path, nircam):
    wcs, info = nircam
    wcs_out = W.output_grid(wcs, info, [W.footprint(wcs, DETECTOR)], GRID)
    bare = copy.deepcopy(wcs_out)
    bare.bounding_box = None
    bare.array_shape = None
    path = tmp_path / "user.asdf"
    asdf.AsdfFile({"wcs": bare, "pixel_shape": [400, 300]}).write_to(path)
    area = W.mean_pixel_area_sr(wcs)
    grid = W.read_output_wcs(path, area)
    assert grid.shape == (300, 400)
    expected = W.pixel_scale_arcsec(wcs_out, *wcs_out.forward_transform.crval.value)
    assert grid.pixel_scale_arcsec == pytest.approx(expected, rel=1e-4)  # from the mean pixel area
    assert W.read_output_wcs(path, area, output_shape=[50, 60]).shape == (60, 50)
    asdf.AsdfFile({"wcs": bare}).write_to(tmp_path / "noshape.asdf")
    with pytest.raises(GridError, match="no shape"):
        W.read_output_wcs(tmp_path / "noshape.asdf", area)
    asdf.AsdfFile({"grid": 1}).write_to(tmp_path / "nokey.asdf")
    with pytest.raises(GridError, match="no 'wcs' key"):
        W.read_output_wcs(tmp_path / "nokey.asdf", area)


# ------------------------------------------------------------------ pixel maps


def test_interpolated_pixel_map_matches_exact_full_frame(nircam, dithers):
    """stepsize 16 vs exact on a full 2048^2 NIRCam frame (SIAF distortion): the bicubic
    spline (pixmap_order 3) within 1e-6 pixel, the bilinear one (pixmap_order 1) within 1e-3
    pixel, and the bicubic at least 100 times closer (measured: 3e-8 and 2.5e-4 pixel)."""
    wcs, info = nircam
    grid = W.output_grid(wcs, info, [W.footprint(w, DETECTOR) for w in dithers], GRID)
    t0 = time.perf_counter()
    exact = W.pixel_map(dithers[1], DETECTOR, grid, stepsize=1, order=1)
    t1 = time.perf_counter()
    fast = W.pixel_map(dithers[1], DETECTOR, grid, stepsize=16, order=3)
    t2 = time.perf_counter()
    bilinear = W.pixel_map(dithers[1], DETECTOR, grid, stepsize=16, order=1)
    error = float(np.max(np.abs(fast - exact)))
    error_bilinear = float(np.max(np.abs(bilinear - exact)))
    print(f"pixel_map 2048^2: exact {t1 - t0:.2f} s, stepsize 16 {t2 - t1:.2f} s, "
          f"max error {error:.2e} px bicubic, {error_bilinear:.2e} px bilinear")
    assert error < 1e-6
    assert error_bilinear < 1e-3
    assert error < error_bilinear / 100
    assert exact.shape == (2048, 2048, 2) and exact.dtype == np.float64
    # drizzle's convention: [..., 0] is x, [..., 1] is y of the output grid
    np.testing.assert_allclose(exact[7, 5], grid.invert(*dithers[1](5.0, 7.0)), rtol=0, atol=1e-6)


def test_pixel_map_is_nan_outside_the_bounding_box(nircam):
    wcs, info = nircam
    boxed = copy.deepcopy(wcs)
    boxed.bounding_box = ((100.5, 400.5), (50.5, 300.5))
    grid = W.output_grid(wcs, info, [W.footprint(boxed, (512, 512))], GRID)
    exact = W.pixel_map(boxed, (512, 512), grid, stepsize=1, order=3)
    fast = W.pixel_map(boxed, (512, 512), grid, stepsize=16, order=3)
    inside = np.zeros((512, 512), dtype=bool)
    inside[51:301, 101:401] = True
    assert np.array_equal(np.isfinite(exact[..., 0]), inside)
    assert np.array_equal(np.isfinite(fast[..., 0]), inside)
    assert np.nanmax(np.abs(fast - exact)) < 0.005


def test_wcsinfo_may_be_a_datamodel_node(nircam):
    from stdatamodels.jwst import datamodels

    wcs, info = nircam
    model = datamodels.ImageModel()
    for key, value in info.items():
        setattr(model.meta.wcsinfo, key, value)
    fp = [W.footprint(wcs, DETECTOR)]
    from_node = W.output_grid(wcs, model.meta.wcsinfo, fp, GRID)
    from_dict = W.output_grid(wcs, info, fp, GRID)
    assert from_node.array_shape == from_dict.array_shape
    np.testing.assert_allclose(from_node(5.0, 9.0), from_dict(5.0, 9.0), rtol=0, atol=1e-12)
