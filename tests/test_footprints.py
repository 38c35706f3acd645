"""Tests of image3.footprints: sky footprints and the pixels inside another image's footprint.

Two 512 x 512 views of a synthetic NRCB1 gwcs (SIAF distortion), the second moved by about
(-50, 70) pixels and rolled 2 degrees. A footprint's corners are the WCS's to 1e-12 degrees;
the pixels found inside the other footprint cover the spherical intersection of the two
polygons to 1 %; the footprints file gives back every member's polygon exactly.
"""

import numpy as np
import pytest
from spherical_geometry.polygon import SphericalPolygon

from dithers import moved_wcs
from image3.footprints import footprints_table, member_footprints, overlap_mask, sky_footprint

SIZE = 512


@pytest.fixture(scope="module")
def dithers(nircam):
    """Exposures a and c of tests/test_skymatch.py: c moved (-50, 70) pixels, rolled 2 degrees."""
    return {m: moved_wcs(nircam[0], move, roll, (768, 768), SIZE)
            for m, move, roll in (("a", (0, 0), 0.0), ("c", (-50, 70), 2.0))}


def test_sky_footprint_follows_the_reference_outline(dithers):
    wcs = dithers["a"]
    corners = sky_footprint(wcs, (SIZE, SIZE))
    expected = np.column_stack(wcs(np.array([-0.5, SIZE - 0.5, SIZE - 0.5, -0.5]),
                                   np.array([-0.5, -0.5, SIZE - 0.5, SIZE - 0.5])))
    np.testing.assert_allclose(corners, expected, rtol=0, atol=1e-12)
    # stepsize 100: ceil(513 / 100) = 6 vertices per side, corners shared
    assert sky_footprint(wcs, (SIZE, SIZE), stepsize=100).shape == (4 * 6 - 4, 2)


def test_overlap_area_equals_the_spherical_intersection(dithers):
    """a's pixels inside c's footprint (rolled 2 degrees) cover the polygons' intersection."""
    wcs = dithers["a"]
    yy, xx = np.mgrid[-0.5:SIZE:1.0, -0.5:SIZE:1.0]
    ra, dec = wcs(xx, yy)
    centre = wcs((SIZE - 1) / 2, (SIZE - 1) / 2)
    # pixel solid angles from their corners on the plane tangent at the centre
    xi, eta = tangent_plane(ra, dec, *centre)
    corner = np.stack([xi, eta], axis=-1)
    d1 = corner[1:, 1:] - corner[:-1, :-1]
    d2 = corner[:-1, 1:] - corner[1:, :-1]
    solid_angle = 0.5 * np.abs(d1[..., 0] * d2[..., 1] - d1[..., 1] * d2[..., 0])
    other = sky_footprint(dithers["c"], (SIZE, SIZE))
    inside = overlap_mask(wcs, (SIZE, SIZE), [other])
    own = sky_footprint(wcs, (SIZE, SIZE), stepsize=16)
    truth = SphericalPolygon.from_radec(*own.T).intersection(
        SphericalPolygon.from_radec(*other.T)).area()
    assert solid_angle[inside].sum() == pytest.approx(truth, rel=0.01)


def tangent_plane(ra, dec, ra0, dec0):
    """Gnomonic projection (radians) about (ra0, dec0), all in degrees."""
    ra, dec, ra0, dec0 = map(np.deg2rad, (ra, dec, ra0, dec0))
    cos_c = np.sin(dec0) * np.sin(dec) + np.cos(dec0) * np.cos(dec) * np.cos(ra - ra0)
    xi = np.cos(dec) * np.sin(ra - ra0) / cos_c
    eta = (np.cos(dec0) * np.sin(dec) - np.sin(dec0) * np.cos(dec) * np.cos(ra - ra0)) / cos_c
    return xi, eta


def test_footprints_file_gives_each_member_its_polygon(dithers, tmp_path):
    members = {"a": ("A", dithers["a"], (SIZE, SIZE)), "c1": ("C", dithers["c"], (SIZE, SIZE)),
               "c2": ("C", dithers["c"], (SIZE, 200))}
    path = tmp_path / "footprints.json"
    path.write_text(footprints_table(members, stepsize=100))
    polygons = member_footprints(path)
    assert list(polygons) == ["a", "c1", "c2"]
    for name, (_, wcs, shape) in members.items():
        np.testing.assert_array_equal(polygons[name], sky_footprint(wcs, shape, stepsize=100))
