"""image3.runtime.resources: the memory requests of the jobs on the output grid follow its size
and cover the peaks measured on the 6-exposure benchmark (1.55 and 6.2 million pixels)."""

import json

import numpy as np
import pytest
from astropy.io import fits

from image3.runtime.resources import (DEFAULT_MEM_MB, catalog_mem_mb, catalog_runtime_min,
                                      grid_pixels, image_pixels, median_mem_mb, median_runtime_min,
                                      resample_mem_mb, resample_runtime_min)

#: Peak RSS [MB] measured by bench/run_bench.py (6 NIRCam exposures of 1024² and 2048², --cores 2)
#: (median: with its 16-MB block, 2026-12-05; 294 and 342 MB with 64 MB)
MEASURED = {1.55e6: {"resample": 210, "catalog": 248, "median": 164},
            6.2e6: {"resample": 512, "catalog": 588, "median": 183}}
MODELS = {"resample": resample_mem_mb, "catalog": catalog_mem_mb, "median": median_mem_mb}


@pytest.mark.parametrize("pixels", sorted(MEASURED))
@pytest.mark.parametrize("job", sorted(MODELS))
def test_requests_cover_the_measured_peaks_without_asking_for_several_times_them(pixels, job):
    request = MODELS[job](int(pixels))
    assert MEASURED[pixels][job] * 1.3 <= request <= MEASURED[pixels][job] * 3.5


def test_requests_grow_with_the_grid_and_have_a_default_before_it_exists(tmp_path):
    assert resample_mem_mb(400_000_000) > 40_000  # a 20000² mosaic: tens of GB, not 2 GB
    assert grid_pixels(tmp_path / "missing.json") is None
    assert image_pixels(tmp_path / "missing.fits") is None
    assert catalog_mem_mb(None) == resample_mem_mb(None) == DEFAULT_MEM_MB
    (tmp_path / "grid_shape.json").write_text(json.dumps({"shape": [300, 700]}))
    assert grid_pixels(tmp_path / "grid_shape.json") == 210_000
    fits.HDUList([fits.PrimaryHDU(), fits.ImageHDU(np.zeros((30, 70), np.float32), name="SCI")]
                 ).writeto(tmp_path / "i2d.fits")
    assert image_pixels(tmp_path / "i2d.fits") == 2100


#: Wall time [s] measured by bench/run_bench.py on 6 NIRCam exposures of 2048² (6.2 million
#: pixels, --cores 2, 2026-12-05): the resample from the contributions, the catalogue, the median
MEASURED_S = {"resample": 1.74, "catalog": 5.61, "median": 1.74}


def test_time_requests_are_ten_minutes_and_ten_times_the_measured_rates():
    pixels = 6_200_000
    asked = {"resample": resample_runtime_min(pixels, 6, drizzled_here=False),
             "catalog": catalog_runtime_min(pixels), "median": median_runtime_min(pixels, 6)}
    for job, seconds in MEASURED_S.items():
        assert 10 + 5 * seconds / 60 <= asked[job] <= 10 + 20 * seconds / 60 + 1, job
    # a 20000² mosaic's catalogue asks for an hour or more; drizzling 100 members for longer
    assert catalog_runtime_min(400_000_000) >= 60
    assert resample_runtime_min(pixels, 100, True) > resample_runtime_min(pixels, 100, False)
