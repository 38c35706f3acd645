"""outlier_detection's save_intermediate_results files (image3/intermediates.py), each written
by a job of its own from the files the outlier-detection jobs leave: equal, to the last bit, to
the images the comparison itself used."""

import numpy as np
import pytest
from stdatamodels.jwst import datamodels

from image3 import synth
from image3.config import schema_defaults
from image3.datamodel import read_exposure, read_exposure_model, save_model
from image3.grid import build_grid, member_geometry, save_grid
from image3.intermediates import save_blot, save_median, save_single
from image3.median import (median_of_singles, median_shape, read_median_window, read_single,
                           read_single_coverage, write_median, write_single)
from image3.outlier import (apply_outlier_flags, blot_median, compare_with_median, drizzle_single,
                            padded, single_pixel_map, window_of)
from image3.parameters import FlagComparison, OutputGrid, SingleDrizzle

GRID = OutputGrid.from_config(schema_defaults()["resample"])
#: outlier_detection's parameters: the schema's defaults with a coarser pixel-map step.
OUTLIER = {**schema_defaults()["outlier_detection"], "pixmap_stepsize": 16}


@pytest.fixture(scope="module", params=["image3", "reference"])
def outlier_run(request, tmp_path_factory):
    """Three 256² synthetic exposures (one per group) through outlier detection as its jobs
    do it: grid, singles, median, then per member the comparison and its _crf. Returns the
    folder, the parameters, the cal paths and each member's comparison image."""
    work = tmp_path_factory.mktemp(f"intermediates_{request.param}")
    section = {**OUTLIER, "method": request.param}
    drizzle, params = SingleDrizzle.from_config(section), FlagComparison.from_config(section)
    asn = synth.make_association(work / "data", n=3, size=256, seed=21)
    cals = sorted(str(p) for p in asn.parent.glob("*_cal.fits"))
    grid = build_grid([member_geometry(c) for c in cals], GRID)
    save_grid(work / "grid.pkl", grid)
    singles = [work / f"single{k}.fits" for k in range(len(cals))]
    for cal, path in zip(cals, singles):
        write_single(path, drizzle_single([read_exposure(cal)], grid, drizzle))
    median, count = median_of_singles(singles, params.method)
    write_median(work / "median.fits", median, count, params.method, len(singles))
    compared = []
    for k, (cal, single) in enumerate(zip(cals, singles)):
        exposure = read_exposure(cal)
        pixmap = single_pixel_map(exposure, grid, params)
        box = window_of(pixmap, median_shape(work / "median.fits"))
        window, window_count = read_median_window(work / "median.fits", box)
        own = read_single_coverage(single, box)
        blot = blot_median(exposure, pixmap, window, window_count, own, (box[0], box[2]),
                           params)
        result = compare_with_median(exposure, blot, params)
        model = read_exposure_model(cal)
        apply_outlier_flags(model, result.mask)
        save_model(model, work / f"m{k}_crf.fits")
        compared.append(result.reference)
    return work, params, cals, singles, compared


def test_blot_is_the_image_each_member_was_compared_with(outlier_run):
    """The _blot file (median re-blotted onto the _crf) equals the flag comparison's
    reference image exactly (sharpened for image3, the plain blot for reference)."""
    work, params, cals, _, compared = outlier_run
    for k, reference in enumerate(compared):
        save_blot(work / f"m{k}_crf.fits", work / "median.fits", work / "grid.pkl", params,
                  work / f"m{k}_blot.fits")
        with datamodels.ImageModel(str(work / f"m{k}_blot.fits")) as blot:
            np.testing.assert_array_equal(blot.data, reference)
            assert blot.meta.cal_step.outlier_detection == "COMPLETE"  # the _crf's metadata
    assert np.isfinite(compared[0]).mean() > 0.9


def test_single_and_median_files_hold_the_jobs_images(outlier_run):
    """_outlier_i2d: the single on the whole grid (SCI, WHT), the member's metadata; _median:
    the median; both with the grid's gwcs."""
    work, _, cals, singles, _ = outlier_run
    save_single(singles[1], work / "grid.pkl", cals[1], None, work / "outlier_i2d.fits")
    save_median(work / "median.fits", work / "grid.pkl", work / "median_i.fits")
    sci, wht = padded(read_single(singles[1]))
    median = datamodels.ImageModel(str(work / "median_i.fits"))
    with datamodels.ImageModel(str(work / "outlier_i2d.fits")) as saved, median, \
            datamodels.ImageModel(cals[1]) as cal:
        np.testing.assert_array_equal(saved.data, sci)
        np.testing.assert_array_equal(saved.wht, wht)
        assert saved.meta.observation.exposure_number == cal.meta.observation.exposure_number
        ny, nx = median_shape(work / "median.fits")
        np.testing.assert_array_equal(median.data,
                                      read_median_window(work / "median.fits", (0, ny, 0, nx))[0])
        assert median.meta.wcs(10.0, 20.0) == saved.meta.wcs(10.0, 20.0)
