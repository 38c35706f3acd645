"""Config: schema defaults equal config.yaml, nested string overrides are cast, bad values are one line."""

from pathlib import Path

import pytest
import yaml
from snakemake.utils import validate as snakemake_validate

from image3 import config as cfg
from image3.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]
SCHEMA_PATH = ROOT / "config" / "schema.yaml"


@pytest.fixture(scope="module")
def schema():
    return cfg.load_schema(SCHEMA_PATH)


@pytest.fixture
def config():
    return yaml.safe_load((ROOT / "config" / "config.yaml").read_text())


def test_config_file_is_valid_and_matches_schema_defaults(schema, config):
    cfg.validate(config, schema)
    cfg.check_consistency(config)
    filled = {}
    snakemake_validate(filled, str(SCHEMA_PATH))
    assert cfg.schema_defaults(schema) == filled  # what unit tests build parameter objects from
    for step in cfg.STEPS:
        assert filled[step] == config[step], step
        assert config[step]["skip"] is False


def test_reference_defaults(config):
    # A few code defaults of the reference (image3.md §2) that users rely on.
    assert config["tweakreg"]["fitgeometry"] == "rshift" and config["tweakreg"]["minobj"] == 15
    assert config["skymatch"]["skymethod"] == "match" and config["skymatch"]["subtract"] is False
    assert config["outlier_detection"]["snr"] == "5.0 4.0"
    assert config["resample"]["pixfrac"] == 1.0 and config["resample"]["kernel"] == "square"
    assert config["source_catalog"]["npixels"] == 25


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
