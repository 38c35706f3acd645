"""The per-instrument/filter parameter table (config/parameters.yaml): its numbers, how entries
match and merge, and that a user's own setting always wins, in the function and in a run."""

import math
import re
from pathlib import Path

import pytest
import yaml
from astropy.table import QTable

from image3 import config as cfg
from image3 import synth
from image3.errors import ConfigError
from workflow import snakemake

ROOT = Path(__file__).resolve().parents[1]
TABLE = ROOT / "config" / "parameters.yaml"
F200W = {"instrument": "NIRCAM", "filter": "F200W", "pupil": "CLEAR", "detector": "NRCB1"}


@pytest.fixture(scope="module")
def schema():
    return cfg.load_schema(ROOT / "config" / "schema.yaml")


@pytest.fixture
def config(schema):
    """A validated config without settings of the user's: the schema's defaults."""
    return cfg.schema_defaults(schema)


def test_shipped_kernel_fwhm_is_the_sampled_diffraction_fwhm(schema):
    """The table's stated reason: FWHM = sqrt((1.03 λ/D / p)² + (2.355/√12)²), D = 6.5 m, with
    the pivot wavelength and pixel scale of image3's filter table; to the 0.1 px it is rounded
    to."""
    filters = QTable.read(ROOT / "image3" / "data" / "jwst_imaging_filters.ecsv")
    entries = [entry for entry in cfg.read_parameter_table(TABLE, schema)
               if "kernel_fwhm" in entry.get("tweakreg", {})]
    assert len(entries) >= 17
    for entry in entries:
        match = entry["match"]
        row = filters[(filters["instrument"] == match["instrument"])
                      & (filters["element"] == match["filter"])][0]
        core_px = (1.03 * row["pivot_um"].to_value("m") / 6.5 * (180 / math.pi * 3600)
                   / row["pixel_scale_arcsec"].to_value("arcsec"))
        fwhm = math.hypot(core_px, 2.3548 / math.sqrt(12))
        for step in ("tweakreg", "source_catalog"):
            assert entry[step]["kernel_fwhm"] == pytest.approx(fwhm, abs=0.05), (match, step)


def test_matching_entry_sets_values_over_the_defaults(schema, config):
    entries = cfg.read_parameter_table(TABLE, schema)
    out, applied = cfg.apply_parameter_table(config, entries, F200W, explicit={})
    assert applied == {"tweakreg.abs_gmag_bright": 16.0, "tweakreg.kernel_fwhm": 2.2,
                       "source_catalog.kernel_fwhm": 2.2}
    assert out["tweakreg"]["kernel_fwhm"] == 2.2 and out["source_catalog"]["kernel_fwhm"] == 2.2
    assert config["tweakreg"]["kernel_fwhm"] == 2.5  # the input is not modified
    changed = ("kernel_fwhm", "abs_gmag_bright")
    rest = {k: v for k, v in out["tweakreg"].items() if k not in changed}
    assert rest == {k: v for k, v in config["tweakreg"].items() if k not in changed}


def test_a_users_own_value_wins(schema, config):
    """What `--config 'tweakreg={kernel_fwhm: 3}'` leaves in Snakemake's overwrite_config:
    the key is present (its value still a string), so the table does not touch it."""
    entries = cfg.read_parameter_table(TABLE, schema)
    config["tweakreg"]["kernel_fwhm"] = 3.0
    explicit = {"asn": "a_asn.json", "tweakreg": {"kernel_fwhm": "3"}}
    out, applied = cfg.apply_parameter_table(config, entries, F200W, explicit)
    assert out["tweakreg"]["kernel_fwhm"] == 3.0
    assert applied == {"tweakreg.abs_gmag_bright": 16.0, "source_catalog.kernel_fwhm": 2.2}
    sources = {(step, key): source
               for step, key, _, source in cfg.parameter_sources(out, applied, explicit)}
    assert sources[("tweakreg", "kernel_fwhm")] == "user"
    assert sources[("source_catalog", "kernel_fwhm")] == "parameter table"
    assert sources[("resample", "pixfrac")] == "default"


def test_a_value_in_the_users_config_file_wins(schema, config, tmp_path):
    """config/config.yaml and --configfile files hold the user's own values: the table does
    not touch a key set there, and the QA table calls it the user's."""
    own = tmp_path / "config.yaml"
    own.write_text("source_catalog:\n  kernel_fwhm: 2.0\n")
    explicit = cfg.user_settings([own], {"resample": {"pixfrac": "0.8"}})
    assert explicit == {"source_catalog": {"kernel_fwhm": 2.0}, "resample": {"pixfrac": "0.8"}}
    out, applied = cfg.apply_parameter_table(config, cfg.read_parameter_table(TABLE, schema),
                                             F200W, explicit)
    assert applied == {"tweakreg.abs_gmag_bright": 16.0, "tweakreg.kernel_fwhm": 2.2}
    assert out["source_catalog"]["kernel_fwhm"] == 2.0
    sources = {(step, key): source
               for step, key, _, source in cfg.parameter_sources(out, applied, explicit)}
    assert sources[("source_catalog", "kernel_fwhm")] == sources[("resample", "pixfrac")] == "user"
    assert sources[("tweakreg", "kernel_fwhm")] == "parameter table"


@pytest.mark.parametrize("exposure,instrument_wide", [
    ({"instrument": "NIRISS", "filter": "F200W", "pupil": "CLEAR", "detector": "NIS"}, {}),
    ({"instrument": "NIRCAM", "filter": "F210M", "pupil": "CLEAR", "detector": "NRCB1"},
     {"tweakreg.abs_gmag_bright": 16.0}),
    ({"instrument": "NIRCAM", "filter": None, "pupil": None, "detector": None},
     {"tweakreg.abs_gmag_bright": 16.0}),
    ({"instrument": "MIRI", "filter": "F1065C", "pupil": None, "detector": "MIRIMAGE"},
     {"tweakreg.abs_gmag_bright": 13.0}),
])
def test_exposure_without_a_filter_entry_gets_only_its_instruments_values(schema, config,
                                                                          exposure,
                                                                          instrument_wide):
    """Filters without an entry change nothing but the instrument-wide Gaia G bright limit."""
    entries = cfg.read_parameter_table(TABLE, schema)
    out, applied = cfg.apply_parameter_table(config, entries, exposure, explicit={})
    assert applied == instrument_wide
    assert out["tweakreg"] == {**config["tweakreg"],
                               **{k.split(".")[1]: v for k, v in instrument_wide.items()}}
    assert {k: v for k, v in out.items() if k != "tweakreg"} == {
        k: v for k, v in config.items() if k != "tweakreg"}


def test_patterns_and_file_order(schema, config, tmp_path):
    """Shell patterns, case-insensitive; of two matching entries the later one wins."""
    table = tmp_path / "t.yaml"
    table.write_text(yaml.safe_dump({"entries": [
        {"match": {"instrument": "nircam", "detector": "NRC?LONG"}, "reason": "LW",
         "source_catalog": {"npixels": 12}},
        {"match": {"instrument": "NIRCAM"}, "reason": "all", "source_catalog": {"npixels": 20},
         "skymatch": {"nclip": 3}},
        {"match": {"instrument": "NIRCAM", "filter": "F4*W"}, "reason": "wide LW",
         "source_catalog": {"npixels": 30}},
    ]}))
    entries = cfg.read_parameter_table(table, schema)
    lw = {"instrument": "NIRCAM", "filter": "F444W", "pupil": "CLEAR", "detector": "NRCALONG"}
    out, applied = cfg.apply_parameter_table(config, entries, lw, explicit={})
    assert applied == {"source_catalog.npixels": 30, "skymatch.nclip": 3}
    _, applied = cfg.apply_parameter_table(config, entries, {**lw, "filter": "F356W"}, {})
    assert applied == {"source_catalog.npixels": 20, "skymatch.nclip": 3}
    _, applied = cfg.apply_parameter_table(config, entries, F200W, {})
    assert applied == {"source_catalog.npixels": 20, "skymatch.nclip": 3}


@pytest.mark.parametrize("entry,needle", [
    ({"match": {"filter": "F200W"}, "reason": "r", "tweakreg": {"snr_threshold": 5}},
     "'match' needs 'instrument'"),
    ({"match": {"instrument": "MIRI"}, "tweakreg": {"snr_threshold": 5}}, "give a 'reason'"),
    ({"match": {"instrument": "MIRI"}, "reason": "r", "tweakrag": {"snr_threshold": 5}},
     "not step sections"),
    ({"match": {"instrument": "MIRI"}, "reason": "r", "tweakreg": {"snr_threshold": -1}},
     "tweakreg.snr_threshold = -1 is invalid"),
    ({"match": {"instrument": "MIRI"}, "reason": "r", "tweakreg": {"snr": 5}}, "'snr'"),
])
def test_bad_entries_are_one_line_naming_the_entry(schema, tmp_path, entry, needle):
    table = tmp_path / "t.yaml"
    table.write_text(yaml.safe_dump({"entries": [entry]}))
    with pytest.raises(ConfigError) as err:
        cfg.read_parameter_table(table, schema)
    message = str(err.value)
    assert message.startswith(f"{table}: entry 1") and needle in message and "\n" not in message


@pytest.mark.workflow
def test_the_run_takes_table_values_unless_the_user_set_them(tmp_path):
    """Through the Snakefile: a synthetic NIRCam F200W association gets the F200W entry
    (one line on the terminal; the run's parameter table says where each value came from),
    except the parameter given on the command line; a value in a --configfile is the user's
    too; parameter_table=none turns it off."""
    asn = synth.make_association(tmp_path / "data", n=2, size=256, seed=4)
    config = {"asn": asn, "output_dir": "out", "tweakreg": "{kernel_fwhm: 3}"}
    (tmp_path / "mine.yaml").write_text("skymatch:\n  nclip: 5\n")
    proc = snakemake(tmp_path, "--cores", "1", "out/qa/parameters.html",
                     "--configfile", str(tmp_path / "mine.yaml"), config=config)
    line = next(ln for ln in proc.stderr.splitlines() if "from parameters.yaml" in ln)
    assert line == ("image3: NIRCAM F200W: tweakreg.abs_gmag_bright=16.0, "
                    "source_catalog.kernel_fwhm=2.2 (from parameters.yaml)")
    html = (tmp_path / "out" / "qa" / "parameters.html").read_text()
    cells = [re.findall(r"<td>(.*?)</td>", row)
             for row in re.findall(r"<tr>(.*?)</tr>", html, re.S)]
    rows = {(step, key): (value, source) for step, key, value, source in filter(None, cells)}
    assert rows[("tweakreg", "kernel_fwhm")] == ("3", "user")
    assert rows[("source_catalog", "kernel_fwhm")] == ("2.2", "parameter table")
    assert rows[("skymatch", "nclip")] == ("5", "user")
    assert rows[("tweakreg", "abs_gmag_bright")] == ("16.0", "parameter table")
    assert rows[("resample", "pixfrac")] == ("1.0", "default")
    assert sum(source != "default" for _, source in rows.values()) == 4

    off = snakemake(tmp_path, "-n", config={**config, "parameter_table": "none"})
    assert "from parameters.yaml" not in off.stderr
