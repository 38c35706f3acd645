"""The association's layout (image3/grid.py): footprints and output grids, read from the _cals
or from the sidecars find_sources and tweakreg write."""

import copy
import json

import numpy as np
import pytest
from astropy.modeling.models import Shift

from image3 import synth
from image3.config import schema_defaults
from image3.datamodel import ExposureMeta, MemberFiles, open_exposure, write_wcs
from image3.footprints import sky_footprint
from image3.grid import (geometry_of, load_grid, save_geometry, write_footprints,
                         write_output_grid)
from image3.parameters import OutputGrid
from image3.runtime.resources import grid_pixels

GRID = OutputGrid.from_config(schema_defaults()["resample"])


@pytest.fixture(scope="module")
def members(tmp_path_factory):
    """Two 256² synthetic exposures: MemberFiles reading the _cals, and MemberFiles reading
    geometry sidecars and a corrected gwcs shifted by one pixel along x."""
    root = tmp_path_factory.mktemp("layout")
    asn = synth.make_association(root / "data", n=2, size=256, seed=4)
    from_cal, from_sidecars = [], []
    for cal in sorted(asn.parent.glob("*_cal.fits")):
        name = cal.name[:-len("_cal.fits")]
        with open_exposure(cal) as model:
            save_geometry(root / f"{name}_geometry.pkl", geometry_of(model),
                          ExposureMeta.of(model, cal))
            shifted = copy.deepcopy(model.meta.wcs)
        shifted.insert_transform("detector", Shift(1.0) & Shift(0.0), after=True)
        write_wcs(root / f"{name}_wcs.pkl", shifted)
        from_cal.append(MemberFiles(name, synth.group_id(name), cal))
        from_sidecars.append(MemberFiles(name, synth.group_id(name), cal,
                                         wcs=root / f"{name}_wcs.pkl",
                                         geometry=root / f"{name}_geometry.pkl"))
    return root, from_cal, from_sidecars, shifted


def test_footprints_follow_the_corrected_gwcs_exactly(members):
    """Each member's polygon is sky_footprint of its gwcs: the _cal's, or the corrected one
    when a gwcs sidecar is given (exact: the same function of the same transform)."""
    root, from_cal, from_sidecars, shifted = members
    write_footprints(root / "cal.json", from_cal, stepsize=64)
    write_footprints(root / "sidecars.json", from_sidecars, stepsize=64)
    cal, corrected = (json.loads((root / f).read_text()) for f in ("cal.json", "sidecars.json"))
    assert list(cal) == [m.name for m in from_cal]
    last = from_cal[-1]
    assert corrected[last.name]["group"] == last.group_id
    with open_exposure(last.cal) as model:
        np.testing.assert_array_equal(cal[last.name]["polygon"],
                                      sky_footprint(model.meta.wcs, model.data.shape, 64))
    np.testing.assert_array_equal(corrected[last.name]["polygon"],
                                  sky_footprint(shifted, (256, 256), 64))


def test_grid_from_sidecars_equals_the_grid_from_the_cals(members):
    """The geometry sidecar carries what the grid needs from the _cal: without a corrected
    gwcs the two grids are the same (shape, scale, sky position of pixels to 1e-12 deg)."""
    root, from_cal, from_sidecars, _ = members
    geometry_only = [MemberFiles(m.name, m.group_id, m.cal, geometry=m.geometry)
                     for m in from_sidecars]
    made = write_output_grid(root / "a.pkl", from_cal, GRID, root / "a_shape.json")
    write_output_grid(root / "b.pkl", geometry_only, GRID, root / "b_shape.json")
    a, b = load_grid(root / "a.pkl"), load_grid(root / "b.pkl")
    assert a.shape == b.shape == made.shape
    assert grid_pixels(root / "a_shape.json") == a.shape[0] * a.shape[1]
    assert a.pixel_scale_arcsec == b.pixel_scale_arcsec
    assert a.pixel_scale_ratio == b.pixel_scale_ratio
    x, y = np.meshgrid(np.arange(0, a.shape[1], 37.0), np.arange(0, a.shape[0], 37.0))
    np.testing.assert_allclose(np.array(a.wcs(x, y)), np.array(b.wcs(x, y)), rtol=0, atol=1e-12)
