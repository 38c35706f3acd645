"""resample.single: one _i2d per exposure group on the _i2d's grid (rules/resample.smk), from a
real run of the Snakefile: 2 exposures x 2 detectors (256², two groups of two members), every
step before resample running."""

import numpy as np
import pytest
from stdatamodels.jwst import datamodels

from image3 import synth
from workflow import jobs_run, snakemake

pytestmark = pytest.mark.workflow


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    root = tmp_path_factory.mktemp("single")
    asn = synth.make_association(root / "data", n=2, size=256, seed=8, detectors=2)
    proc = snakemake(root, "--cores", "2", config={
        "asn": asn, "output_dir": root / "out", "resample": "{single: true}",
        "source_catalog": "{skip: true}"})
    return root / "out", proc


def test_each_group_is_drizzled_alone_onto_the_mosaics_grid(run):
    """Truth, drizzle's definition (WHT = sum of w a over the inputs, SCI their weighted mean):
    the groups' WHT add up to the _i2d's and their WHT-weighted SCI to its SCI (1e-5
    relative); each group's _i2d has the _i2d's grid, the context bits of its two members
    only, NDRIZ 1 and its members' rows in HDRTAB."""
    out, proc = run
    assert jobs_run(proc)["resample_single"] == 2
    names = synth.member_names(2, detectors=2)
    groups = [names[:2], names[2:]]
    with datamodels.ImageModel(str(out / f"{synth.PRODUCT_NAME}_i2d.fits")) as mosaic:
        sci, wht = mosaic.data.copy(), mosaic.wht.copy()
        crval = (mosaic.meta.wcsinfo.crval1, mosaic.meta.wcsinfo.crval2)
    wht_sum, flux_sum = np.zeros_like(wht, dtype=np.float64), np.zeros_like(wht, dtype=np.float64)
    for members in groups:
        path = out / f"{members[0]}_o001_single_i2d.fits"
        with datamodels.ImageModel(str(path)) as single:
            assert single.data.shape == sci.shape
            assert (single.meta.wcsinfo.crval1, single.meta.wcsinfo.crval2) == crval
            assert single.meta.resample.pointings == 1
            assert set(np.unique(single.con)) <= {0, 1, 2, 3}
            assert set(np.unique(single.con[:, single.wht > 0])) >= {1, 2}
            assert single.hdrtab["FILENAME"].tolist() == [f"{m}_o001_crf.fits" for m in members]
            covered = single.wht > 0
            wht_sum += single.wht
            flux_sum[covered] += single.data[covered].astype(np.float64) * single.wht[covered]
    np.testing.assert_allclose(wht_sum, wht, rtol=1e-5, atol=1e-3)
    where = wht > 0
    np.testing.assert_allclose(flux_sum[where] / wht_sum[where], sci[where], rtol=1e-5,
                               atol=1e-6)


def test_single_with_sky_tiles_stops_before_any_job(tmp_path):
    """A whole-grid image per group is not made with sky tiles: one line, nothing written."""
    asn = synth.make_association(tmp_path / "data", n=2, size=256, seed=4)
    proc = snakemake(tmp_path, "-n", config={"asn": asn, "output_dir": "out",
                                             "resample": "{single: true}",
                                             "tiles": "{above_pixels: 0}"}, check=False)
    assert proc.returncode != 0
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("image3: ERROR:") and "resample.single" in last
    assert not (tmp_path / "out").exists()
