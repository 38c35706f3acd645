"""JWST-format I/O: real MIRI products read intact; our products round-trip; sidecars apply on read."""

import copy
import os

import numpy as np
import pytest
from astropy.io import fits
from astropy.modeling.models import Shift
from astropy.wcs import WCS
from stdatamodels.jwst import datamodels

from image3.datamodel import (
    ExposureMeta,
    MemberFiles,
    SkyRecord,
    atomic_path,
    check_exposure,
    open_exposure,
    read_exposure,
    read_exposure_model,
    save_model,
    sky_level_to_remove,
    write_wcs,
)
from image3.errors import InputFileError
from image3.sidecar import read_sidecar
from image3.grid import geometry_of, save_geometry
from image3.mosaic import member_meta
from image3.resample import exposure_time, prepare_arrays


@pytest.mark.real
def test_real_miri_products_read_with_units_meta_and_gwcs(miri_i2d_files):
    assert len(miri_i2d_files) == 3
    for path in miri_i2d_files:
        model = open_exposure(path)
        with model:
            assert model.meta.bunit_data == "MJy/sr" and model.meta.bunit_err == "MJy/sr"
            assert model.meta.instrument.name == "MIRI"
            assert model.meta.instrument.filter.lower() in {"f770w", "f1130w", "f1500w"}
            assert model.meta.photometry.pixelarea_steradians == pytest.approx(2.844e-13, rel=1e-3)
            assert model.data.dtype.newbyteorder("=") == np.float32
            assert model.con.dtype.newbyteorder("=") == np.int32
            # The gwcs agrees with the FITS TAN header the pipeline wrote beside it.
            header = fits.getheader(path, "SCI")
            fits_wcs = WCS(header)
            ny, nx = model.data.shape
            y, x = np.mgrid[0:ny:16, 0:nx:16]
            ra, dec = model.meta.wcs(x, y)
            fx, fy = fits_wcs.all_world2pix(ra, dec, 0)
            assert np.nanmax(np.hypot(fx - x, fy - y)) < 0.05


def small_model(shape=(40, 50)) -> datamodels.ImageModel:
    """A tiny imaging model with a TAN gwcs, built from a FITS header."""
    from gwcs import WCS as GWCS
    from gwcs import coordinate_frames as cf
    from astropy import units as u
    from astropy.modeling.models import Pix2Sky_TAN, RotateNative2Celestial, Scale

    scale = 0.03 / 3600
    transform = (Shift(-25) & Shift(-20)) | (Scale(scale) & Scale(scale)) | Pix2Sky_TAN() | \
        RotateNative2Celestial(10.0, -20.0, 180.0)
    wcs = GWCS([(cf.Frame2D(name="detector"), transform),
                (cf.CelestialFrame(name="world", reference_frame=__import__("astropy.coordinates").coordinates.ICRS(),
                                   unit=(u.deg, u.deg)), None)])
    wcs.bounding_box = ((-0.5, shape[1] - 0.5), (-0.5, shape[0] - 0.5))
    rng = np.random.default_rng(3)
    model = datamodels.ImageModel(shape)
    model.data = rng.normal(0.2, 0.01, shape).astype(np.float32)
    model.err = np.full(shape, 0.01, np.float32)
    model.var_rnoise = np.full(shape, 0.0001, np.float32)
    model.meta.wcs = wcs
    model.meta.exposure.type = "NRC_IMAGE"
    model.meta.bunit_data = "MJy/sr"
    model.meta.bunit_err = "MJy/sr"
    model.meta.instrument.name = "NIRCAM"
    return model


def test_product_round_trips_through_stdatamodels_and_astropy(tmp_path):
    model = small_model()
    path = save_model(model, tmp_path / "prod_i2d.fits")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["prod_i2d.fits"]  # no temp file left
    with datamodels.open(path) as back:
        assert back.meta.filename == "prod_i2d.fits"
        np.testing.assert_array_equal(back.data, model.data)
        np.testing.assert_array_equal(back.var_rnoise, model.var_rnoise)
        assert back.meta.wcs(10, 10) == pytest.approx(model.meta.wcs(10, 10), abs=1e-12)
    with fits.open(path) as hdul:
        assert [h.name for h in hdul][:3] == ["PRIMARY", "SCI", "ERR"] and "ASDF" in hdul
        assert hdul["SCI"].header["BUNIT"] == "MJy/sr"


def test_sidecars_apply_on_read(tmp_path):
    """The corrected gwcs and the sky record apply alike to the datamodel (for products) and
    to the Exposure (for computing): the gwcs moved by 1 pixel to 1e-12 deg, the level kept
    in meta or subtracted from SCI to 1e-7 MJy/sr."""
    model = small_model()
    cal = save_model(model, tmp_path / "x_cal.fits")
    shifted = copy.deepcopy(model.meta.wcs)
    shifted.insert_transform("detector", Shift(1.0) & Shift(0.0), after=True)
    write_wcs(tmp_path / "wcs.pkl", shifted, status="COMPLETE")
    SkyRecord(level=0.2, method="match", subtracted=False).write(tmp_path / "sky.json")
    files = {"wcs": tmp_path / "wcs.pkl", "sky": tmp_path / "sky.json"}
    loaded = read_exposure_model(cal, **files)
    exposure = read_exposure(cal, **files)
    ra0, dec0 = model.meta.wcs(11.0, 10.0)
    for wcs in (loaded.meta.wcs, exposure.meta.wcs):
        assert wcs(10.0, 10.0) == pytest.approx((ra0, dec0), abs=1e-12)
    assert loaded.meta.wcsinfo.s_region.startswith("POLYGON ICRS")
    assert loaded.meta.background.level == 0.2 and loaded.meta.background.subtracted is False
    assert exposure.meta.steps["tweakreg"] == loaded.meta.cal_step.tweakreg == "COMPLETE"
    assert sky_level_to_remove(exposure) == pytest.approx(0.2)
    np.testing.assert_array_equal(loaded.data, model.data)  # not subtracted in the data
    np.testing.assert_array_equal(exposure.data, model.data)
    SkyRecord(level=0.2, method="match", subtracted=True).write(tmp_path / "sky.json")
    subtracted = read_exposure_model(cal, sky=tmp_path / "sky.json")
    np.testing.assert_allclose(subtracted.data, model.data - np.float32(0.2), atol=1e-7)
    exposure = read_exposure(cal, sky=tmp_path / "sky.json")
    np.testing.assert_allclose(exposure.data, model.data - np.float32(0.2), atol=1e-7)
    assert sky_level_to_remove(exposure) == 0.0


def _with_geometry(tmp_path, model):
    """``model`` saved as a _cal with its geometry sidecar (as find_sources writes it)."""
    cal = save_model(model, tmp_path / "x_cal.fits")
    with open_exposure(cal) as opened:
        save_geometry(tmp_path / "geometry.pkl", geometry_of(opened), ExposureMeta.of(opened, cal))
    return cal, tmp_path / "geometry.pkl"


def test_an_exposure_read_with_its_geometry_sidecar_equals_the_datamodel_read(tmp_path):
    """read_exposure with the geometry sidecar (astropy arrays, the sidecar's metadata) gives
    exactly the arrays, gwcs, exposure time, sky handling and product metadata of the datamodel
    read: prepare_arrays returns identical arrays; arrays not asked for are None."""
    model = small_model()
    model.var_flat = None  # an input without VAR_FLAT
    model.dq = np.zeros(model.data.shape, np.uint32)
    model.dq[3, 4] = 1  # DO_NOT_USE
    model.meta.exposure.measurement_time = 123.0
    cal, geometry = _with_geometry(tmp_path, model)
    shifted = copy.deepcopy(model.meta.wcs)
    shifted.insert_transform("detector", Shift(1.0) & Shift(0.0), after=True)
    write_wcs(tmp_path / "wcs.pkl", shifted, status="COMPLETE")
    for subtracted in (False, True):
        SkyRecord(level=0.2, method="match", subtracted=subtracted).write(tmp_path / "sky.json")
        member = MemberFiles("x", "g", cal, geometry, tmp_path / "wcs.pkl", tmp_path / "sky.json")
        fast = member.read()
        slow = read_exposure(cal, wcs=member.wcs, sky=member.sky)
        assert fast.var_flat is None and fast.data.dtype == np.float32
        assert fast.meta.wcs(10.0, 10.0) == pytest.approx(slow.meta.wcs(10.0, 10.0), abs=0)
        assert sky_level_to_remove(fast) == sky_level_to_remove(slow)
        assert exposure_time(fast, "exptime") == exposure_time(slow, "exptime") == 123.0
        assert member_meta(fast, "g") == member_meta(slow, "g")
        for ours, theirs in zip(prepare_arrays(fast, "~DO_NOT_USE+NON_SCIENCE", "ivm"),
                                prepare_arrays(slow, "~DO_NOT_USE+NON_SCIENCE", "ivm"), strict=True):
            if isinstance(ours, dict):
                assert ours.keys() == theirs.keys()
                for name in ours:
                    np.testing.assert_array_equal(ours[name], theirs[name])
            else:
                np.testing.assert_array_equal(ours, theirs)
    only = member.read(("dq",))
    assert only.dq is not None and only.err is None and only.var_rnoise is None


def test_a_geometry_sidecar_of_another_version_of_the_cal_is_one_line(tmp_path):
    """The geometry sidecar records the _cal's identity (path, size, mtime, ctime); a _cal
    rewritten since (here: 1 s newer) is refused, naming the sidecar and the _cal."""
    cal, geometry = _with_geometry(tmp_path, small_model())
    meta = read_exposure(cal, geometry).meta
    assert (meta.identity.path, meta.identity.size) == (str(cal.resolve()), cal.stat().st_size)
    assert meta.identity.mtime_ns == cal.stat().st_mtime_ns
    stat = cal.stat()
    os.utime(cal, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    with pytest.raises(InputFileError) as err:
        read_exposure(cal, geometry)
    assert str(geometry) in str(err.value) and str(cal) in str(err.value)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("change,message", [
    (lambda m: setattr(m.meta.exposure, "type", "NRC_WFSS"), "is not an imaging exposure"),
    (lambda m: setattr(m.meta, "bunit_data", "DN/s"), "SCI units are 'DN/s'"),
    (lambda m: setattr(m, "data", np.full(m.data.shape, np.nan, np.float32)), "no usable science pixel"),
    (lambda m: setattr(m, "dq", np.ones(m.data.shape, np.uint32)), "no usable science pixel"),
])
def test_unusable_exposures_are_one_line(tmp_path, change, message):
    model = small_model()
    change(model)
    with pytest.raises(InputFileError) as err:
        check_exposure(model, tmp_path / "bad_cal.fits")
    assert message in str(err.value) and "bad_cal.fits" in str(err.value)


def test_corrupt_file_is_one_line(tmp_path):
    path = save_model(small_model(), tmp_path / "x_cal.fits")
    path.write_bytes(path.read_bytes()[:5000])
    with pytest.raises(InputFileError) as err:
        open_exposure(path)
    assert str(path) in str(err.value) and "\n" not in str(err.value)


def test_failed_write_leaves_nothing(tmp_path):
    with pytest.raises(RuntimeError):
        with atomic_path(tmp_path / "out.fits") as tmp:
            tmp.write_bytes(b"half")
            raise RuntimeError("crash")
    assert list(tmp_path.iterdir()) == []


def test_damaged_work_files_are_one_line_naming_them(tmp_path):
    """300 random changes of 1-3 bytes of a gwcs sidecar (the corrected WCS of tweakreg), and
    damaged or foreign sky records: each raises InputFileError naming the file in one line (the
    issue saw 26 of 300 such pickles raise other exceptions, and sky.json a JSONDecodeError;
    without the checksum 32 of 300 damaged pickles still read)."""
    model = small_model()
    write_wcs(tmp_path / "wcs.pkl", model.meta.wcs, status="COMPLETE")
    clean = (tmp_path / "wcs.pkl").read_bytes()
    rng = np.random.default_rng(3)
    damaged = tmp_path / "damaged.pkl"
    for _ in range(300):
        data = bytearray(clean)
        for where in rng.integers(0, len(data), size=int(rng.integers(1, 4))):
            data[where] = (data[where] + int(rng.integers(1, 256))) % 256
        damaged.write_bytes(bytes(data))
        with pytest.raises(InputFileError) as err:
            read_sidecar(damaged)
        assert str(err.value).startswith(f"{damaged}: ") and "\n" not in str(err.value)
    assert read_sidecar(tmp_path / "wcs.pkl")["status"] == "COMPLETE"
    for text in ('{"level": 0.2, "meth', '{"flux": 1}', "\x00\x01"):
        (tmp_path / "sky.json").write_text(text)
        with pytest.raises(InputFileError, match=f"^{tmp_path / 'sky.json'}: "):
            SkyRecord.read(tmp_path / "sky.json")
