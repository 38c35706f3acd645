"""tweakreg through the real Snakefile: the aligned mosaic against truth, failure paths, skips.

Data: 4 dithered 512² synthetic exposures (seed 3, no sky offsets or cosmic rays, so the
mosaic needs neither skymatch nor outlier detection), once with injected pointing errors and
once without (its twin: same sources, dithers and noise). Only find_sources, tweakreg, grid and
resample run, so the test does not depend on the other stages.
"""

import json
import shutil

import numpy as np
import pytest
from astropy.stats import sigma_clipped_stats
from astropy.table import Table
from photutils.psf import fit_fwhm
from stdatamodels.jwst import datamodels

from image3 import synth
from image3.asn import write_association
from image3.datamodel import read_sidecar
from truth import isolation_arcsec, to_pixels, truth_sources, windowed_centroid
from workflow import jobs_run, snakemake

pytestmark = pytest.mark.workflow

OTHER_STEPS = {step: "{skip: true}" for step in ("skymatch", "outlier_detection", "source_catalog")}
I2D = f"out/{synth.PRODUCT_NAME}_i2d.fits"


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """The association with pointing errors and its error-free twin."""
    root = tmp_path_factory.mktemp("data")
    return {errors: synth.make_association(root / ("errors" if errors else "twin"), n=4,
                                           size=512, seed=3, wcs_errors=errors,
                                           sky_offsets=False, cosmic_rays=False)
            for errors in (True, False)}


def _mosaic(root, asn, **config):
    proc = snakemake(root, "--cores", "2", I2D,
                     config={"asn": asn, "output_dir": "out", **OTHER_STEPS, **config})
    with datamodels.open(root / I2D) as model:
        return model.data.copy(), model.meta.wcs, jobs_run(proc)


@pytest.fixture(scope="module")
def mosaics(data, tmp_path_factory):
    aligned = _mosaic(tmp_path_factory.mktemp("aligned"), data[True])
    twin = _mosaic(tmp_path_factory.mktemp("twin"), data[False], tweakreg="{skip: true}")
    return aligned, twin


def _bright_isolated_stars(asn, image, wcs):
    """Truth stars brighter than 0.2 µJy with no other source within 1", fully on the mosaic."""
    sources = truth_sources(asn)
    stars = sources[(sources["kind"] == "star") & (isolation_arcsec(sources) > 1.0)
                    & (sources["flux_ujy"] > 0.2)]
    x, y = to_pixels(wcs, stars)
    ny, nx = image.shape
    ok = np.zeros(len(x), dtype=bool)
    for i, (a, b) in enumerate(zip(x, y)):
        if 12 < a < nx - 12 and 12 < b < ny - 12:
            ok[i] = np.isfinite(image[int(b) - 10:int(b) + 11, int(a) - 10:int(a) + 11]).all()
    return stars[ok]


def test_aligned_mosaic_puts_stars_on_truth_with_the_twins_fwhm(data, mosaics):
    """Windowed centroids of bright isolated stars on the aligned i2d are within 0.05 pixel
    RMS of the truth (the error-free twin measures 0.015 pixel, unaligned data 2.4 pixel),
    and their FWHM within 5% of the twin's (unaligned: +58%)."""
    asn = data[True]
    (image, wcs, jobs), (twin_image, twin_wcs, twin_jobs) = mosaics
    assert jobs["find_sources"] == 4 and jobs["tweakreg"] == 1
    assert "tweakreg" not in twin_jobs
    stars = _bright_isolated_stars(asn, image, wcs)
    assert len(stars) >= 8
    x, y = to_pixels(wcs, stars)
    sky = sigma_clipped_stats(image, sigma=3.0)[1]
    measured = np.array([windowed_centroid(image - sky, a, b) for a, b in zip(x, y)])
    offsets = np.hypot(measured[:, 0] - x, measured[:, 1] - y)
    rms = float(np.sqrt(np.mean(offsets**2)))
    assert rms <= 0.05, (rms, offsets)

    tx, ty = to_pixels(twin_wcs, stars)
    twin_sky = sigma_clipped_stats(twin_image, sigma=3.0)[1]
    fwhm = fit_fwhm(image - sky, xypos=np.column_stack([x, y]), fit_shape=7)
    twin_fwhm = fit_fwhm(twin_image - twin_sky, xypos=np.column_stack([tx, ty]), fit_shape=7)
    ratio = float(np.median(fwhm / twin_fwhm))
    assert abs(ratio - 1.0) <= 0.05, (ratio, fwhm, twin_fwhm)


def test_exposure_without_sources_stays_unaligned_and_the_run_goes_on(data, tmp_path):
    """Member 3 of 3 gets an empty user catalogue (ASN ``tweakreg_catalog``): one warning line
    naming its group, its WCS unchanged, the others aligned; a changed fit parameter then
    re-runs only the join, not source finding."""
    names = synth.member_names(3)
    cals = [str(data[True].parent / synth.cal_filename(m)) for m in names]
    Table({"x": np.zeros(0), "y": np.zeros(0)}).write(tmp_path / "empty.ecsv")
    asn = write_association(tmp_path / "three_asn.json", synth.PRODUCT_NAME, "o001", cals)
    spec = json.loads(asn.read_text())
    spec["products"][0]["members"][2]["tweakreg_catalog"] = "empty.ecsv"
    asn.write_text(json.dumps(spec))
    config = {"asn": asn, "output_dir": "out",
              "tweakreg": "{use_custom_catalogs: true, save_catalogs: true}"}
    # the alignment and the saved catalogues (rule save_catalog, asked for by the final target)
    proc = snakemake(tmp_path, "--cores", "2", "--until", "tweakreg", "save_catalog",
                     config=config)
    groups = [synth.group_id(m) for m in names]
    warnings = [line for line in proc.stderr.splitlines() if line.startswith("image3: WARNING")]
    assert len(warnings) == 1 and groups[2] in warnings[0], warnings

    report = Table.read(tmp_path / "out" / "work" / "tweakreg_report.ecsv")
    assert list(report["status"])[:2] == ["REFERENCE", "SUCCESS"]
    assert report["status"][2].startswith("FAILED") and not report["applied"][2]
    with datamodels.open(cals[2]) as cal:
        original = cal.meta.wcs
    sidecar = read_sidecar(tmp_path / "out" / "work" / names[2] / "wcs.pkl")
    assert sidecar["status"] == "COMPLETE" and sidecar["corrected"] is False
    assert sidecar["wcs"](100.0, 200.0) == pytest.approx(original(100.0, 200.0), abs=1e-12)
    # save_catalogs: the reference's names, only for catalogues found by the workflow
    saved = sorted(p.name for p in (tmp_path / "out").glob("*_cat.ecsv"))
    assert saved == [f"{m}_cal_cat.ecsv" for m in names[:2]]
    assert set(Table.read(tmp_path / "out" / saved[0]).colnames) >= {"x", "y"}

    config["tweakreg"] = "{use_custom_catalogs: true, save_catalogs: true, minobj: 20}"
    rerun = snakemake(tmp_path, "-n", "out/work/tweakreg_report.ecsv", config=config)
    assert jobs_run(rerun) == {"tweakreg": 1}


@pytest.fixture(scope="module")
def small_exposures(tmp_path_factory):
    """Two exposures of two detectors each, 256²: real files for the member screening."""
    root = tmp_path_factory.mktemp("small")
    synth.make_association(root, n=2, size=256, seed=6, detectors=2)
    return root


def _small(small_exposures, path, exposure, detector="nrcb1"):
    """Copy of exposure ``exposure`` (1 or 2), detector nrcb1/nrcb2, into ``path``."""
    name = f"jw99999001001_02101_{exposure:05d}_{detector}_cal.fits"
    shutil.copy(small_exposures / name, path / name)
    return name


def test_single_exposure_or_single_group_has_no_tweakreg_jobs(tmp_path, small_exposures):
    """(Two groups get one finding job per member and one join: see the mosaic test.)"""
    single = tmp_path / _small(small_exposures, tmp_path, 1)
    jobs = jobs_run(snakemake(tmp_path, "-n", config={"asn": single, "output_dir": "o1"}))
    assert "tweakreg" not in jobs and "find_sources" not in jobs and jobs["resample"] == 1
    # two detectors of one exposure: one group, nothing to align
    names = [_small(small_exposures, tmp_path, 2, "nrcb1"), _small(small_exposures, tmp_path, 2, "nrcb2")]
    asn = write_association(tmp_path / "one_group_asn.json", "jw01234-o001_t001_nircam_clear",
                            "o001", names)
    jobs = jobs_run(snakemake(tmp_path, "-n", config={"asn": asn, "output_dir": "o2"}))
    assert "tweakreg" not in jobs and "find_sources" not in jobs
    # tweakreg.group_by: detector makes them two bodies to align
    jobs = jobs_run(snakemake(tmp_path, "-n", config={"asn": asn, "output_dir": "o3",
                                                      "tweakreg": "{group_by: detector}"}))
    assert jobs["tweakreg"] == 1 and jobs["find_sources"] == 2


def test_network_catalogue_stops_before_any_job(tmp_path, small_exposures):
    names = [_small(small_exposures, tmp_path, 1), _small(small_exposures, tmp_path, 2)]
    asn = write_association(tmp_path / "asn.json", "jw01234-o001_t001_nircam_clear", "o001", names)
    proc = snakemake(tmp_path, "-j1", config={"asn": asn, "output_dir": "out",
                                              "tweakreg": "{abs_refcat: GAIADR3}"}, check=False)
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("image3: ERROR:") and "GAIADR3" in last and "offline" in last
    assert not (tmp_path / "out").exists()


def test_save_abs_catalog_writes_the_catalogue_used_under_the_references_name(tmp_path,
                                                                              small_exposures):
    """A Gaia-format abs_refcat (the truth's stars, ref_epoch 2016, no motion) with
    save_abs_catalog: one save_abs_catalog job writes fit_<file stem lower>_ref.ecsv to
    output_dir, with the rows within the G limits and the file's SHA-256; without the option
    there is no such job (the tweakreg job writes the work copy either way)."""
    names = [_small(small_exposures, tmp_path, 1), _small(small_exposures, tmp_path, 2)]
    asn = write_association(tmp_path / "asn.json", "jw01234-o001_t001_nircam_clear", "o001", names)
    stars = Table.read(small_exposures / "truth" / "sources.ecsv")
    stars = stars[stars["kind"] == "star"]
    mag = 23.9 - 2.5 * np.log10(np.asarray(stars["flux_ujy"]))
    Table({"ra": stars["ra"], "dec": stars["dec"], "phot_g_mean_mag": mag,
           "pmra": np.zeros(len(stars)), "pmdec": np.zeros(len(stars))},
          meta={"ref_epoch": 2016.0}).write(tmp_path / "My_Gaia.ecsv")
    faint = float(np.median(mag))
    tweakreg = f"{{abs_refcat: {tmp_path / 'My_Gaia.ecsv'}, abs_gmag_faint: {faint}"
    config = {"asn": asn, "output_dir": "out", "tweakreg": tweakreg + "}"}
    assert "save_abs_catalog" not in jobs_run(snakemake(tmp_path, "-n", config=config))

    config["tweakreg"] = tweakreg + ", save_abs_catalog: true}"
    dry = jobs_run(snakemake(tmp_path, "-n", config=config))
    assert dry["save_abs_catalog"] == 1 and dry["tweakreg"] == 1
    proc = snakemake(tmp_path, "--cores", "2", "out/fit_my_gaia_ref.ecsv", config=config)
    assert jobs_run(proc)["save_abs_catalog"] == 1
    saved = Table.read(tmp_path / "out" / "fit_my_gaia_ref.ecsv")
    assert len(saved) == np.count_nonzero(mag <= faint) and np.all(saved["mag"] <= faint)
    report = Table.read(tmp_path / "out" / "work" / "tweakreg_report.ecsv")
    assert saved.meta["abs_refcat_sha256"] == report.meta["abs_refcat_sha256"]
    assert report.meta["abs_refcat_name"] == "My_Gaia.ecsv"
