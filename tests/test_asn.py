"""Association parsing and naming rules, checked against the reference's examples (image3.md §1.3, §4)."""

import json
from pathlib import Path

import pytest
from astropy.io import fits

from image3.asn import (
    association_paths,
    crf_name,
    exposure_root,
    group_id_from_header,
    product_names,
    read_association,
    read_sample_sheet,
    single_exposure,
    write_association,
)
from image3.config import association_settings
from image3.errors import AssociationError

EXAMPLE_MEMBERS = [
    "jw01234001001_02101_00001_nrca1_cal.fits",
    "jw01234001001_02101_00001_nrca2_cal.fits",
    "jw01234001001_02101_00002_nrca1_cal.fits",
    "jw01234001001_02101_00002_nrca2_cal.fits",
]
OBS_KEYS = dict(PROGRAM="01234", OBSERVTN="001", VISIT="001", VISITGRP="02", SEQ_ID="1",
                ACT_ID="01")


def touch_cal(path: Path, exposure: str | None = "00001") -> Path:
    header = fits.Header(OBS_KEYS)
    if exposure is not None:
        header["EXPOSURE"] = exposure
    fits.PrimaryHDU(header=header).writeto(path)
    return path


def reference_example(tmp_path: Path) -> Path:
    """The hand-written ASN of image3.md §4 with its four member files."""
    for name in EXAMPLE_MEMBERS:
        touch_cal(tmp_path / name, exposure=name.split("_")[2])
    asn = {
        "asn_type": "image3", "asn_id": "o001", "asn_pool": "handmade_pool",
        "products": [{
            "name": "jw01234-o001_t001_nircam_clear-f200w",
            "members": [
                {"expname": EXAMPLE_MEMBERS[0], "exptype": "science"},
                {"expname": EXAMPLE_MEMBERS[1], "exptype": "science"},
                {"expname": EXAMPLE_MEMBERS[2], "exptype": "science",
                 "tweakreg_catalog": "cats/dither2_nrca1.ecsv"},
                {"expname": EXAMPLE_MEMBERS[3], "exptype": "science",
                 "group_id": "jw01234001001_02101_00002"},
                {"expname": "jw01234001001_02101_00001_nrca1_bkg.fits", "exptype": "background"},
            ],
        }],
    }
    path = tmp_path / "jw01234-o001_20260101t000000_image3_00001_asn.json"
    path.write_text(json.dumps(asn))
    return path


def test_reference_example_names_and_groups(tmp_path):
    asn = read_association(reference_example(tmp_path))
    assert asn.product == "jw01234-o001_t001_nircam_clear-f200w"
    assert asn.asn_id == "o001"
    # Background members are dropped, as in the reference (asn_exptypes=["science"]).
    assert [m.name for m in asn.members] == [n.replace("_cal.fits", "") for n in EXAMPLE_MEMBERS]
    assert [asn.crf_name(m) for m in asn.members] == [
        "jw01234001001_02101_00001_nrca1_o001_crf.fits",
        "jw01234001001_02101_00001_nrca2_o001_crf.fits",
        "jw01234001001_02101_00002_nrca1_o001_crf.fits",
        "jw01234001001_02101_00002_nrca2_o001_crf.fits",
    ]
    assert asn.outputs == {
        "i2d": "jw01234-o001_t001_nircam_clear-f200w_i2d.fits",
        "cat": "jw01234-o001_t001_nircam_clear-f200w_cat.ecsv",
        "segm": "jw01234-o001_t001_nircam_clear-f200w_segm.fits",
    }
    # Two exposures of two detectors each: 2 groups, detectors of one exposure share a group.
    assert list(asn.groups) == ["jw01234001001_02101_00001", "jw01234001001_02101_00002"]
    assert [len(v) for v in asn.groups.values()] == [2, 2]
    assert asn.members[2].tweakreg_catalog == (tmp_path / "cats/dither2_nrca1.ecsv").resolve()


def test_group_id_from_header_matches_reference_formula():
    header = fits.Header({**OBS_KEYS, "EXPOSURE": "00003"})
    assert group_id_from_header(header) == "jw01234001001_02101_00003"
    del header["VISIT"]
    assert group_id_from_header(header) is None


def test_member_group_id_key_overrides_header(tmp_path):
    touch_cal(tmp_path / "a_cal.fits", "00001")
    touch_cal(tmp_path / "b_cal.fits", "00002")
    path = tmp_path / "x_asn.json"
    write_association(path, "prod", "o002", ["a_cal.fits", "b_cal.fits"], ["g1", "g1"])
    asn = read_association(path)
    assert [m.group_id for m in asn.members] == ["g1", "g1"]


def test_group_id_falls_back_to_member_index(tmp_path):
    touch_cal(tmp_path / "a_cal.fits", exposure=None)
    path = write_association(tmp_path / "x_asn.json", "prod", None, ["a_cal.fits"])
    asn = read_association(path)
    assert asn.members[0].group_id == "exposure0001"
    assert asn.crf_name(asn.members[0]) == "a_crf.fits"  # no asn_id: no component


@pytest.mark.parametrize("name,root", [
    ("jw01234001001_02101_00001_nrca1_cal.fits", "jw01234001001_02101_00001_nrca1"),
    ("jw01234001001_02101_00001_nrca1_o001_crf.fits", "jw01234001001_02101_00001_nrca1_o001"),
    ("dir/my_exposure.fits", "my_exposure"),
    ("mosaic_i2d.fits", "mosaic"),
])
def test_exposure_root(name, root):
    assert exposure_root(name) == root


def test_output_names():
    assert crf_name("jw96090001001_03101_00001_nrca2", "o001") == \
        "jw96090001001_03101_00001_nrca2_o001_crf.fits"
    assert product_names("jw01234-o001_t001_nircam_clear-f200w")["i2d"] == \
        "jw01234-o001_t001_nircam_clear-f200w_i2d.fits"


def test_single_cal_is_its_own_product(tmp_path):
    path = touch_cal(tmp_path / "jw01234001001_02101_00001_nrca1_cal.fits")
    asn = single_exposure(path)
    assert asn.is_single_exposure and asn.asn_id is None
    assert asn.outputs["i2d"] == "jw01234001001_02101_00001_nrca1_i2d.fits"
    assert read_association(path).product == asn.product


@pytest.mark.parametrize("text,message", [
    ("{not json", "not valid JSON (line 1"),
    ("[1, 2]", "must be a JSON object"),
    ('{"products": []}', "no 'products' list"),
    ('{"products": [{"name": "p"}]}', "no 'members' list"),
    ('{"products": [{"name": "p", "members": [{"expname": "a.fits", "exptype": "background"}]}]}',
     "no science member"),
    ('{"products": [{"name": "p", "members": [{"expname": "gone_cal.fits", "exptype": "science"}]}]}',
     "none of the 1 science members is usable"),
])
def test_malformed_association_is_one_line_naming_the_file(tmp_path, text, message):
    path = tmp_path / "bad_asn.json"
    path.write_text(text)
    with pytest.raises(AssociationError) as err:
        read_association(path)
    line = str(err.value)
    assert "\n" not in line
    assert str(path) in line and message in line


def test_missing_and_duplicate_members_are_left_out_with_a_warning(tmp_path):
    touch_cal(tmp_path / "a_cal.fits")
    path = write_association(tmp_path / "x_asn.json", "prod", "o001",
                             ["a_cal.fits", "missing_cal.fits", "a_cal.fits"])
    asn = read_association(path)
    assert [m.name for m in asn.members] == ["a"]
    assert len(asn.warnings) == 2
    assert "missing_cal.fits: member file not found" in asn.warnings[0]
    assert "listed twice" in asn.warnings[1]


def test_missing_association_file(tmp_path):
    with pytest.raises(AssociationError, match="association file not found"):
        read_association(tmp_path / "nothing_asn.json")


def test_members_grouped_by_exposure_detector_or_visit():
    """Two detectors of exposures 1 and 2 of visit 001, one detector of visit 002, and a
    member whose group id has another form (its own visit)."""
    from image3.asn import Association, Member

    def member(name, group):
        return Member(name=name, path=Path(f"{name}_cal.fits"), group_id=group)

    members = (member("a1", "jw01234001001_02101_00001"), member("a2", "jw01234001001_02101_00001"),
               member("b1", "jw01234001001_02101_00002"), member("c1", "jw01234001002_02101_00001"),
               member("d1", "exposure0005"))
    asn = Association(product="p", asn_id="o001", members=members, source=Path("x_asn.json"))
    assert list(asn.grouped_by("exposure").values()) == [["a1", "a2"], ["b1"], ["c1"], ["d1"]]
    assert list(asn.grouped_by("detector").values()) == [["a1"], ["a2"], ["b1"], ["c1"], ["d1"]]
    assert asn.grouped_by("visit") == {"jw01234001001": ["a1", "a2", "b1"],
                                       "jw01234001002": ["c1"], "exposure0005": ["d1"]}


def test_a_sample_sheet_lists_associations_with_their_own_settings(tmp_path):
    """A CSV sheet: asn paths relative to the sheet, `section.key` columns read as YAML
    scalars, empty cells unset; a TSV the same; no asn column is one line naming the sheet."""
    (tmp_path / "a_asn.json").write_text("{}")
    (tmp_path / "b_asn.json").write_text("{}")
    sheet = tmp_path / "program.csv"
    sheet.write_text("asn,resample.pixfrac,tweakreg.skip,qa.folder\n"
                     "a_asn.json,0.8,,\n"
                     "b_asn.json,,true,qa_b\n")
    settings = read_sample_sheet(sheet)
    a, b = tmp_path / "a_asn.json", tmp_path / "b_asn.json"
    assert settings == {a: {"resample": {"pixfrac": 0.8}},
                        b: {"tweakreg": {"skip": True}, "qa": {"folder": "qa_b"}}}
    assert association_paths(str(sheet)) == [a, b]
    assert association_paths(f"[{sheet}, {a}]") == [a, b]  # each once
    tsv = tmp_path / "program.tsv"
    tsv.write_text("asn\tresample.kernel\nb_asn.json\tgaussian\n")
    assert read_sample_sheet(tsv) == {b: {"resample": {"kernel": "gaussian"}}}
    bad = tmp_path / "bad.csv"
    bad.write_text("file,resample.pixfrac\na_asn.json,0.8\n")
    with pytest.raises(AssociationError, match=r"bad.csv: a sample sheet needs .* 'asn' column"):
        read_sample_sheet(bad)


def test_an_associations_settings_merge_the_users_its_rows_and_the_runs():
    """Section by section: the row's pixfrac over the user's, the run's grid keys over both,
    the user's other keys kept."""
    user = {"resample": {"pixfrac": 0.5, "kernel": "square"}, "job_server": False}
    row = {"resample": {"pixfrac": 0.8, "pixel_scale": 0.02}}
    fixed = {"asn": "a_asn.json", "resample": {"pixel_scale": 0.031, "crval": [1.0, 2.0]}}
    assert association_settings(user, row, fixed) == {
        "resample": {"pixfrac": 0.8, "kernel": "square", "pixel_scale": 0.031,
                     "crval": [1.0, 2.0]},
        "job_server": False, "asn": "a_asn.json"}
    assert user["resample"]["pixfrac"] == 0.5  # not changed in place
