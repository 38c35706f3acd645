"""Config: every default in the schema (config.yaml holds none), nested string overrides are
cast, bad values are one line."""

import re
from pathlib import Path

import pytest
import yaml
from snakemake.utils import validate as snakemake_validate

from image3 import config as cfg
from image3.errors import ConfigError
from image3.parameters import SourceFinding

ROOT = Path(__file__).resolve().parents[1]
SCHEMA_PATH = ROOT / "config" / "schema.yaml"


@pytest.fixture(scope="module")
def schema():
    return cfg.load_schema(SCHEMA_PATH)


@pytest.fixture
def config(schema):
    """A validated config without settings of the user's: the schema's defaults."""
    return cfg.schema_defaults(schema)


def test_the_shipped_config_file_is_the_users_and_holds_no_value(schema):
    """config/config.yaml (the Snakefile's configfile) is a mapping without keys: every
    default is the schema's, so the parameter table and the QA table see no user setting."""
    shipped = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
    assert shipped == {}
    cfg.validate(shipped, schema)


def test_schema_defaults_are_what_snakemake_fills_in(schema, config):
    """schema_defaults (what unit tests build parameter objects from) equals the config
    Snakemake's validate makes of an empty config file; every step and parameter has one."""
    filled = {}
    snakemake_validate(filled, str(SCHEMA_PATH))
    assert config == filled
    cfg.validate(config, schema)
    cfg.check_consistency(config)
    for step in cfg.STEPS:
        assert config[step]["skip"] is False
        assert set(config[step]) == set(schema["properties"][step]["properties"]), step


def test_reference_defaults(config):
    # A few code defaults of the reference (image3.md §2) that users rely on.
    assert config["tweakreg"]["fitgeometry"] == "rshift" and config["tweakreg"]["minobj"] == 15
    assert config["skymatch"]["skymethod"] == "match" and config["skymatch"]["subtract"] is False
    assert config["outlier_detection"]["snr"] == "5.0 4.0"
    assert config["resample"]["pixfrac"] == 1.0 and config["resample"]["kernel"] == "square"


def test_nested_command_line_strings_are_cast(schema, config):
    # What `--config 'resample={pixfrac: 0.8, output_shape: [100, 200]}'` gives a workflow.
    config["resample"].update(pixfrac="0.8", output_shape="[100, 200]", rotation="null",
                              enable_ctx="false")
    config["skymatch"]["dqbits"] = "~DO_NOT_USE"
    out = cfg.coerce(config, schema)
    assert out["resample"]["pixfrac"] == 0.8
    assert out["resample"]["output_shape"] == [100, 200]
    assert out["resample"]["rotation"] is None
    assert out["resample"]["enable_ctx"] is False
    assert out["skymatch"]["dqbits"] == "~DO_NOT_USE"
    cfg.validate(out, schema)


def test_list_items_from_the_command_line_are_cast(schema, config):
    # `--config 'resample={crpix: [127.5, 127.5], output_shape: [600, 600]}'` gives a workflow
    # its list items as strings; a whole section can arrive as one string too
    config["resample"].update(crpix=["127.5", "127.5"], crval=["53.16", -27.78],
                              output_shape=["600", "601"])
    config["tiles"] = "{size: '512', above_pixels: '0'}"
    out = cfg.coerce(config, schema)
    assert out["resample"]["crpix"] == [127.5, 127.5]
    assert out["resample"]["crval"] == [53.16, -27.78]
    assert out["resample"]["output_shape"] == [600, 601]
    assert out["tiles"] == {"size": 512, "above_pixels": 0}
    cfg.validate(out, schema)
    config["resample"]["output_shape"] = ["600", "a"]
    with pytest.raises(ConfigError, match="resample.output_shape.1 = 'a' is invalid"):
        cfg.validate(cfg.coerce(config, schema), schema)


@pytest.mark.parametrize("step,key,value,needle", [
    ("resample", "pixfrac", 1.5, "resample.pixfrac = 1.5 is invalid"),
    ("resample", "kernel", "boxcar", "resample.kernel = 'boxcar' is invalid"),
    ("tweakreg", "minobj", 0, "tweakreg.minobj = 0 is invalid"),
    ("skymatch", "skymethod", "median", "skymatch.skymethod = 'median' is invalid"),
])
def test_out_of_range_value_is_one_line(schema, config, step, key, value, needle):
    config[step][key] = value
    with pytest.raises(ConfigError) as err:
        cfg.validate(config, schema)
    assert needle in str(err.value) and "\n" not in str(err.value)


def test_every_sky_statistic_of_the_code_is_a_configuration_value(schema, config):
    """skystat's schema enum is the code's list (the reference's imagestats_mode included)."""
    from image3.parameters import SKY_STATISTICS, SkyStatistics

    assert set(schema["properties"]["skymatch"]["properties"]["skystat"]["enum"]) \
        == set(SKY_STATISTICS)
    config["skymatch"]["skystat"] = "imagestats_mode"
    cfg.validate(config, schema)
    assert SkyStatistics.select(config["skymatch"])["skystat"] == "imagestats_mode"


def test_unknown_key_is_refused(schema, config):
    config["resample"]["pixfrak"] = 0.5
    with pytest.raises(ConfigError, match="pixfrak"):
        cfg.validate(config, schema)


def test_separation_must_exceed_sqrt2_tolerance(config):
    config["tweakreg"]["separation"] = 0.9
    with pytest.raises(ConfigError, match="separation"):
        cfg.check_consistency(config)


def test_work_dir_defaults_under_output_dir(config):
    assert cfg.work_dir(config) == "results/work"
    config["work_dir"] = "/scratch/w"
    assert cfg.work_dir(config) == "/scratch/w"


def _readme_defaults() -> dict[tuple[str, str], str]:
    """(section, key) -> the default as config/README.md's tables write it (`Run` for the
    top-level keys, dotted within: ``qa.plots``); a row may name several keys and values."""
    rows, section = {}, None
    for line in (ROOT / "config" / "README.md").read_text().splitlines():
        heading = re.match(r"^## (\w+)", line)
        if heading:
            section = heading.group(1)
        row = re.match(r"^\| (`[^|]+`) \| (`[^|]*`(?:, `[^|]*`)*) \|", line)
        if row and section:
            keys = re.findall(r"`([\w.]+)`", row.group(1))
            values = re.findall(r"`([^`]*)`", row.group(2))
            rows.update(zip(((section, k) for k in keys), values * len(keys) if len(values) == 1
                            else values))
    return rows


def test_config_readme_states_every_key_with_the_schemas_default(config):
    """config/README.md is the user's reference: every key the schema accepts has a row (the
    source_catalog detection keys are tweakreg's, named there with the defaults that differ)
    and every default it states is the schema's."""
    rows = _readme_defaults()
    for (section, key), text in rows.items():
        value = config
        for part in ([section] if section != "Run" else []) + key.split("."):
            value = value[part]
        assert (yaml.safe_load(text) if text != '""' else "") == value, (section, key)
    finding = set(SourceFinding.keys())
    for step in cfg.STEPS:
        documented = {k for s, k in rows if s == step} | {"skip"}
        if step == "source_catalog":
            documented |= finding
            prose = (ROOT / "config" / "README.md").read_text()
            for key in finding:
                differs = config[step][key] != config["tweakreg"][key]
                assert (f"`{key}: {config[step][key]}`" in prose) == differs, key
        assert documented == set(config[step]), step
