"""One grid per target (image3.program_grid): the bands' grids built from the parameters it gives
put a pixel at the same sky position in every band, cover each band's footprint, and keep an
integer pixel ratio when asked."""

from dataclasses import replace

import numpy as np
import pytest
from astropy.io import fits

from image3 import synth
from image3.asn import read_association
from image3.grid import build_grid, member_geometry
from image3.parameters import OutputGrid, Program
from image3.program_grid import (BandFootprint, band_grids, jointly_aligned, program_grids,
                                 read_band_footprint, targets)


@pytest.fixture(scope="module")
def program(tmp_path_factory):
    """F200W and F150W of one field (overlapping), and F444W whose 256² LW subarray is
    elsewhere (the NIRCam apertures' own positions): two targets."""
    data = tmp_path_factory.mktemp("program")
    asns = synth.make_program(data, n=2, size=256, seed=5, bands=("F200W+F444W", "F150W"),
                              cosmic_rays=False)
    return {read_association(a).product.rsplit("-", 1)[1]: read_association(a) for a in asns}


def _grid(asn, params, **extra):
    geometries = [member_geometry(m.path) for m in asn.members]
    return build_grid(geometries, OutputGrid(**{
        "pixel_scale_ratio": 1.0, "output_wcs": "", "max_output_pixels": None, **params,
        **extra}))


def _bands(program, names):
    return {n: read_band_footprint([m.path for m in program[n].members]) for n in names}


def test_overlapping_associations_are_one_target(program):
    assert targets(_bands(program, ["f200w", "f444w", "f150w"])) == [["f200w", "f150w"],
                                                                     ["f444w"]]


@pytest.mark.parametrize("rotation", [None, 37.0])
def test_a_pixel_is_the_same_sky_position_in_every_band(program, rotation):
    """F200W and F150W grids: same pixel scale; every pixel centre of F150W's grid is a pixel
    centre of F200W's (an integer offset), within 1e-6 pixel; each grid holds its band's
    footprint (every S_REGION vertex inside it), also rotated."""
    bands = _bands(program, ["f200w", "f150w"])
    params = band_grids(bands, rotation=rotation)
    grids = {n: _grid(program[n], params[n]) for n in bands}
    assert grids["f200w"].pixel_scale_arcsec == grids["f150w"].pixel_scale_arcsec
    offset = np.subtract(params["f200w"]["crpix"], params["f150w"]["crpix"])
    assert np.allclose(offset, np.round(offset), atol=0, rtol=0)
    y, x = np.mgrid[0:grids["f150w"].shape[0]:37, 0:grids["f150w"].shape[1]:37].astype(float)
    ra, dec = grids["f150w"].wcs(x, y, with_bounding_box=False)
    x2, y2 = grids["f200w"].wcs.invert(ra, dec, with_bounding_box=False)
    assert np.abs(x2 - (x + offset[0])).max() < 1e-6 and np.abs(y2 - (y + offset[1])).max() < 1e-6
    for name, grid in grids.items():
        vertices = np.vstack(bands[name].footprints)
        gx, gy = grid.wcs.invert(vertices[:, 0], vertices[:, 1], with_bounding_box=False)
        ny, nx = grid.shape
        assert gx.min() > -0.5 and gy.min() > -0.5 and gx.max() < nx - 0.5 and gy.max() < ny - 0.5


def test_integer_ratio_puts_each_coarse_pixel_on_k_by_k_fine_pixels():
    """A coarse band (0.063") with a fine one (0.031"): ratio 2 exactly; the coarse pixels'
    edges are fine pixels' edges (in the fine lattice, the coarse pixel 0 starts at an integer
    lattice pixel, a multiple of 2 from the fine grid's first); same_shape: one sky extent."""
    square = np.array([[150.0, 2.0], [150.01, 2.0], [150.01, 2.01], [150.0, 2.01]])
    bands = {"sw": BandFootprint((square,), 0.031),
             "lw": BandFootprint((square + [0.003, 0.002],), 0.063)}
    for same_shape in (False, True):
        grids = band_grids(bands, integer_ratio=True, same_shape=same_shape)
        assert grids["lw"]["pixel_scale"] == 2 * grids["sw"]["pixel_scale"] == 0.062
        k = 2
        fine_first = -np.array(grids["sw"]["crpix"])  # lattice pixel of the fine grid's pixel 0
        coarse_first = -k * np.array(grids["lw"]["crpix"]) - (k - 1) / 2
        assert np.all(coarse_first % 1 == 0) and np.all((coarse_first - fine_first) % k == 0)
        if same_shape:  # one sky extent: k fine pixels per coarse pixel, rounded up
            assert np.all(np.ceil(np.array(grids["sw"]["output_shape"]) / k)
                          == grids["lw"]["output_shape"])
            assert np.all(fine_first == coarse_first)
    plain = band_grids(bands)
    assert plain["lw"]["pixel_scale"] == plain["sw"]["pixel_scale"] == 0.031


def test_the_reference_band_leads_its_targets_joint_alignment():
    """program.reference_band puts its product first (its first exposure is the fit's
    reference); empty keeps the bluest first; joint_alignment false aligns none together."""
    target = ["jw1-o001_t001_nircam_clear-f150w", "jw1-o001_t001_nircam_clear-f200w",
              "jw1-o001_t001_nircam_clear-f444w"]
    program = Program(common_grid=True, integer_ratio=False, same_shape=False,
                      joint_alignment=True, reference_band="F444W")
    assert jointly_aligned([target], program) == [[target[2], target[0], target[1]]]
    assert jointly_aligned([target], replace(program, reference_band="")) == [target]
    assert jointly_aligned([target], replace(program, joint_alignment=False)) == []


def test_a_user_key_groups_targets_whatever_the_footprints(program):
    """A sample sheet's target column: F200W and F444W (their 256² subarrays do not overlap)
    as one target with one projection; F150W alone keeps a grid of its own."""
    associations = {a.product: a for a in program.values()}
    keys = {program["f200w"].product: "field", program["f444w"].product: "field",
            program["f150w"].product: "other"}
    settings = Program(common_grid=True, integer_ratio=True, same_shape=False,
                       joint_alignment=True, reference_band="")
    grids, shared, lines = program_grids(associations, settings, {}, keys)
    assert shared == [[program["f200w"].product, program["f444w"].product]]
    assert set(grids) == set(shared[0]) and len(lines) == 1
    sw, lw = (grids[p] for p in shared[0])
    assert sw["crval"] == lw["crval"] and lw["pixel_scale"] == 2 * sw["pixel_scale"]
    assert program_grids(associations, settings, {})[1] == [
        [program["f150w"].product, program["f200w"].product]]  # by footprint


def test_a_member_without_a_usable_header_leaves_its_band_a_grid_of_its_own(program, tmp_path):
    """A member whose S_REGION is missing, or a file cut short, gives no footprint (None),
    never an error that would stop the other associations."""
    first = program["f200w"].members[0].path
    no_region = tmp_path / "no_region_cal.fits"
    with fits.open(first) as hdul:
        del hdul["SCI"].header["S_REGION"]
        hdul.writeto(no_region)
    cut = tmp_path / "cut_cal.fits"
    cut.write_bytes(first.read_bytes()[:2000])
    assert read_band_footprint([first]) is not None
    assert read_band_footprint([first, no_region]) is None
    assert read_band_footprint([cut]) is None
