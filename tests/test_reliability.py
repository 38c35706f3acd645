"""Bad inputs (issue 10): each gives one clear line naming the file; member-level problems leave
the member out and the rest still makes a valid product; fatal ones leave nothing behind.

Every case is run through the real Snakefile as a user would.
"""

import json
import shutil

import numpy as np
import pytest
from astropy.io import fits
from stdatamodels.jwst import datamodels

from image3 import synth
from image3.asn import write_association
from workflow import snakemake

pytestmark = pytest.mark.workflow

SKIP_SLOW = {"source_catalog": "{skip: true}"}


@pytest.fixture(scope="module")
def good(tmp_path_factory):
    """Two good 256² exposures to copy from."""
    root = tmp_path_factory.mktemp("good")
    synth.make_association(root, n=2, size=256, seed=8)
    return [root / synth.cal_filename(m) for m in synth.member_names(2)]


def _copy(src, dst, change=None):
    shutil.copy(src, dst)
    if change is not None:
        with fits.open(dst, mode="update") as hdul:
            change(hdul)
    return dst.name


def _bad_members(folder, template):
    """One file per member-level problem, each derived from a good exposure."""
    bad = {}

    def name(label):
        return folder / f"jw99999001001_02101_0009{len(bad)}_{label}_cal.fits"

    f = name("trunc")
    data = template.read_bytes()
    f.write_bytes(data[: len(data) // 3])
    bad["truncated"] = f.name
    bad["no WCS"] = _copy(template, name("nowcs"), lambda h: h.__delitem__("ASDF"))
    bad["not imaging"] = _copy(template, name("wfss"),
                               lambda h: h[0].header.__setitem__("EXP_TYPE", "NRC_WFSS"))
    bad["all NaN"] = _copy(template, name("nan"),
                           lambda h: h["SCI"].data.__setitem__(Ellipsis, np.nan))
    bad["all DO_NOT_USE"] = _copy(template, name("dnu"),
                                  lambda h: h["DQ"].data.__setitem__(Ellipsis, 1))
    bad["wrong units"] = _copy(template, name("units"),
                               lambda h: h["SCI"].header.__setitem__("BUNIT", "DN/s"))
    bad["other instrument"] = _copy(template, name("miri"),
                                    lambda h: h[0].header.__setitem__("INSTRUME", "MIRI"))
    bad["ERR NaN"] = _copy(template, name("errnan"),
                           lambda h: h["ERR"].data.__setitem__(Ellipsis, np.nan))
    bad["ERR negative"] = _copy(template, name("errneg"),
                                lambda h: h["ERR"].data.__setitem__(Ellipsis, -1.0))
    bad["a frame of 1e30"] = _copy(template, name("huge"),
                                   lambda h: h["SCI"].data.__setitem__(Ellipsis, 1e30))
    return bad


def test_member_level_problems_leave_the_member_out(tmp_path, good):
    folder = tmp_path / "data with spaces"
    folder.mkdir()
    names = [_copy(p, folder / p.name) for p in good]
    bad = _bad_members(folder, good[0])
    members = names + list(bad.values()) + ["missing_cal.fits", names[0]]
    asn = write_association(folder / "mixed_asn.json", "mixed", "o001", members)
    proc = snakemake(tmp_path, "--cores", "2",
                     config={"asn": asn, "output_dir": tmp_path / "out", **SKIP_SLOW})
    warnings = [line for line in proc.stderr.splitlines() if line.startswith("image3: WARNING:")]
    for problem, filename in bad.items():
        assert any(filename in line for line in warnings), f"{problem}: no warning naming it"
    assert any("missing_cal.fits: member file not found" in line for line in warnings)
    assert any(bad["truncated"] in line and "truncated or corrupt FITS" in line
               for line in warnings)
    assert any("listed twice" in line for line in warnings)
    assert any(bad["a frame of 1e30"] in line and "SCI beyond 1e+08 MJy/sr" in line
               for line in warnings)
    assert sum("ERR is NaN, infinite or <= 0 on 100% of its usable pixels" in line
               for line in warnings) == 2
    assert "Traceback" not in proc.stderr
    with datamodels.open(tmp_path / "out" / "mixed_i2d.fits") as i2d:
        assert i2d.meta.resample.pointings == 2
        assert np.isfinite(i2d.data).sum() > 0.5 * i2d.data.size


def test_a_member_without_exposure_time_warns_and_is_left_out_when_weighted_by_it(tmp_path, good):
    names = [_copy(good[0], tmp_path / good[0].name),
             _copy(good[1], tmp_path / good[1].name, lambda h: [h[0].header.__setitem__(k, 0.0)
                                                             for k in ("TMEASURE", "EFFEXPTM")])]
    asn = write_association(tmp_path / "t_asn.json", "t", "o001", names)
    for weight, verdict in (("ivm-smooth", "kept"), ("exptime", "left out")):
        proc = snakemake(tmp_path, "-n", config={"asn": asn, "output_dir": tmp_path / weight,
                                                  "resample": f"{{weight_type: {weight}}}"})
        warnings = [line for line in proc.stderr.splitlines() if line.startswith("image3: WARNING")]
        assert len(warnings) == 1 and names[1] in warnings[0], warnings
        assert "exposure time 0 s" in warnings[0] and verdict in warnings[0], warnings


def test_members_named_with_spaces_and_brackets_are_used_non_ascii_ones_named(tmp_path, good):
    """The issue's `étoile 2 (v2)_cal.fits` was dropped as "not usable as an exposure name":
    spaces and brackets are usable; non-ASCII is not (FITS headers hold ASCII: the _crf's
    FILENAME), and the warning now says so."""
    names = [_copy(good[0], tmp_path / "star 2 (v2)_cal.fits"),
             _copy(good[1], tmp_path / "b+c_cal.fits"), _copy(good[1], tmp_path / "étoile_cal.fits")]
    asn = write_association(tmp_path / "names_asn.json", "names", "o001", names)
    proc = snakemake(tmp_path, "--cores", "2",
                     config={"asn": asn, "output_dir": tmp_path / "out", **SKIP_SLOW})
    warnings = [line for line in proc.stderr.splitlines()
                if line.startswith("image3: WARNING") and "file name" in line]
    assert len(warnings) == 1 and "étoile_cal.fits: file name has non-ASCII" in warnings[0]
    assert (tmp_path / "out" / "star 2 (v2)_o001_crf.fits").is_file()
    with datamodels.open(tmp_path / "out" / "names_i2d.fits") as i2d:
        assert i2d.meta.resample.pointings == 2


def test_an_output_dir_that_cannot_be_written_is_one_line(tmp_path, good):
    """(/proc refuses new folders even to root, who may write anywhere else.)"""
    asn = write_association(tmp_path / "w_asn.json", "w", "o001",
                            [_copy(p, tmp_path / p.name) for p in good])
    proc = snakemake(tmp_path, "--cores", "1", check=False,
                     config={"asn": asn, "output_dir": "/proc/image3-test-output"})
    last = proc.stderr.strip().splitlines()[-1]
    assert proc.returncode != 0 and "Traceback" not in proc.stderr and "File \"" not in proc.stderr
    assert last.startswith("image3: ERROR: /proc/image3-test-output") and "can write" in last, last


def _fatal(tmp_path, asn, needle, **config):
    proc = snakemake(tmp_path, "--cores", "1", config={"asn": asn, "output_dir": tmp_path / "out",
                                                       **config}, check=False)
    last = proc.stderr.strip().splitlines()[-1]
    assert proc.returncode != 0
    assert last.startswith("image3: ERROR:") and needle in last, last
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "out").exists()
    return last


def test_every_member_unusable_is_fatal(tmp_path, good):
    bad = _bad_members(tmp_path, good[0])
    asn = write_association(tmp_path / "bad_asn.json", "bad", "o001", list(bad.values())[:5])
    line = _fatal(tmp_path, asn, "no usable member left")
    assert str(asn) in line


def test_moving_target_is_refused(tmp_path, good):
    names = [_copy(p, tmp_path / p.name,
                   lambda h: h[0].header.__setitem__("TARGTYPE", "MOVING")) for p in good]
    asn = write_association(tmp_path / "mt_asn.json", "mt", "o001", names)
    _fatal(tmp_path, asn, "moving-target associations are not supported")


def test_not_an_association(tmp_path):
    asn = tmp_path / "x_asn.json"
    asn.write_text(json.dumps({"products": "nope"}))
    _fatal(tmp_path, asn, "no 'products' list")


def test_single_cal_with_a_space_in_its_path(tmp_path, good):
    folder = tmp_path / "my data"
    folder.mkdir()
    cal = folder / good[0].name
    shutil.copy(good[0], cal)
    proc = snakemake(tmp_path, "--cores", "2", config={"asn": f"'{cal}'", "output_dir": "out"})
    assert "Traceback" not in proc.stderr
    root = good[0].name.replace("_cal.fits", "")
    assert (tmp_path / "out" / f"{root}_i2d.fits").exists()
    assert (tmp_path / "out" / f"{root}_cat.ecsv").exists()


def test_exposures_from_another_generator(tmp_path):
    """MIRI-like exposures with a plain detector -> world gwcs (tweakwcs's JWST corrector
    cannot correct it), no VAR_FLAT: tweakreg is skipped with one warning naming the member and
    every other stage runs. Truth: sky steps of 0.3 MJy/sr recovered to 0.01 MJy/sr; >= 95% of
    the cosmic-ray pixels above 10 ERR flagged; > 95% of the flags on cosmic rays."""
    from foreign import SKY_STEP_MJYSR, make_foreign_association

    asn = make_foreign_association(tmp_path / "data", ny=300, nx=310, n=3)
    proc = snakemake(tmp_path, "--cores", "2", config={"asn": asn, "output_dir": "out"})
    assert "Traceback" not in proc.stderr
    assert any(line.startswith("image3: WARNING: relative alignment not done: jw01234001001")
               and "cannot be corrected" in line for line in proc.stderr.splitlines())
    out = tmp_path / "out"
    hits = flagged_total = on_cr = bright = 0
    for k, crf in enumerate(sorted(out.glob("*_crf.fits"))):
        member = crf.name[:-len("_o001_crf.fits")]
        injected = np.load(tmp_path / "data" / f"{member}_cr.npy")
        with datamodels.ImageModel(str(crf)) as model, \
                datamodels.ImageModel(str(tmp_path / "data" / f"{member}_cal.fits")) as cal:
            assert model.meta.background.level == pytest.approx(SKY_STEP_MJYSR * k, abs=0.01)
            new = ((model.dq & 16) != 0) & ((cal.dq & 1) == 0)
            strong = (injected > 10 * cal.err) & ((cal.dq & 1) == 0)
        hits += int((new & strong).sum())
        bright += int(strong.sum())
        flagged_total += int(new.sum())
        on_cr += int((new & (injected > 0)).sum())
    assert bright > 50 and hits / bright >= 0.95, (hits, bright)
    assert on_cr / flagged_total > 0.95, (on_cr, flagged_total)
    for suffix in ("i2d.fits", "cat.ecsv", "segm.fits"):
        assert (out / f"jw01234-o001_t001_miri_f770w_{suffix}").exists()
