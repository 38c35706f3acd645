"""Step parameters (image3.parameters): every config key the schema accepts is read, each default
is the schema's alone, values are checked when an object is made, and the module the Snakefile
imports stays light."""

import ast
import dataclasses
import re
import subprocess
import sys
from pathlib import Path

import pytest

from image3.config import load_schema, schema_defaults
from image3.errors import ConfigError
from image3.parameters import (BY_SECTION, AlignmentFit, CatalogParameters, FitStage,
                               FlagComparison, SkyStatistics, SourceFinding)

ROOT = Path(__file__).resolve().parents[1]
#: What the workflow reads the config with: the Snakefile, its rules, and image3/config.py,
#: whose helpers (work_dir, ...) the rules call on the whole config.
RULE_SOURCES = [ROOT / "Snakefile", *sorted((ROOT / "rules").glob("*.smk")),
                ROOT / "image3" / "config.py"]
#: Keys the schema accepts that no code reads yet, and why.
KNOWN_UNREAD = {
    "outlier_detection.fillval": "the reference's singles are NaN where the weight is too low, "
                                 "whatever fillval says; accepted for compatibility",
}
PARAMETER_CLASSES = [cls for classes in BY_SECTION.values() for cls in classes]
QUOTED = r"""["'](\w+)["']"""


def accepted_keys() -> set[str]:
    """Every leaf key of the schema: 'asn', 'qa.plots', 'tweakreg.minobj', ..."""
    keys = set()
    for name, prop in load_schema()["properties"].items():
        if "properties" in prop:
            keys |= {f"{name}.{key}" for key in prop["properties"]}
        else:
            keys.add(name)
    return keys


def keys_read_by_rules() -> set[str]:
    """Keys the rules read by name: ``config["asn"]``, ``config.get("work_dir")``,
    ``config["qa"]["plots"]``, ``SECTION["key"]`` after ``SECTION = config["section"]``, and
    ``config[step]["skip"]`` (a key read for whichever section: counted for each)."""
    text = "\n".join(path.read_text() for path in RULE_SOURCES)
    sections = [name for name, prop in load_schema()["properties"].items() if "properties" in prop]
    read = set(re.findall(rf"config(?:\[{QUOTED}\]|\.get\({QUOTED})", text))
    read = {a or b for a, b in read}
    read |= {f"{s}.{k}" for s, k in re.findall(rf"config\[{QUOTED}\](?:\[|\.get\(){QUOTED}", text)}
    aliases = dict(re.findall(rf"^\s*([A-Za-z_]\w*) = config\[{QUOTED}\]\s*$", text, re.M))
    for alias, section in aliases.items():
        read |= {f"{section}.{k}" for k in re.findall(rf"\b{alias}(?:\[|\.get\(){QUOTED}", text)}
    for key in re.findall(rf"config\[[a-z_]\w*\]\[{QUOTED}\]", text):
        read |= {f"{section}.{key}" for section in sections}
    return read


def keys_of_parameter_objects() -> set[str]:
    """Keys a rule hands a job through a parameter object (``Class.select(...)`` in a rule)."""
    text = "\n".join(path.read_text() for path in RULE_SOURCES)
    used = set()
    for section, classes in BY_SECTION.items():
        for cls in classes:
            if f"{cls.__name__}.select(" in text:
                used |= {f"{section}.{key}" for key in cls.keys()}
    return used


def test_every_config_key_is_read_by_a_rule_or_a_parameter_object():
    """Each key the schema accepts (top-level and every section's) is read by name in a rule
    or is a key of a parameter object some rule passes to its jobs; the only exceptions are
    listed, with their reason, in KNOWN_UNREAD, and they must really be unread (a job gets
    config values only through its rule's params)."""
    unread = accepted_keys() - keys_read_by_rules() - keys_of_parameter_objects()
    assert unread == set(KNOWN_UNREAD)


def _attributes_read(path: Path) -> set[str]:
    """Attribute names read in a module, outside ``__post_init__`` (checks are not uses)."""
    names = set()

    def visit(node):
        if isinstance(node, ast.FunctionDef) and node.name == "__post_init__":
            return
        if isinstance(node, ast.Attribute):
            names.add(node.attr)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(ast.parse(path.read_text()))
    return names


@pytest.mark.parametrize("cls", [*PARAMETER_CLASSES, FitStage], ids=lambda c: c.__name__)
def test_every_field_of_a_parameter_object_is_read(cls):
    """A field no code reads would hide an unread key: each is read as an attribute by the
    package or a script (AlignmentFit's by its stages, FitStage's by tweakreg)."""
    read = set()
    for path in [*(ROOT / "image3").rglob("*.py"), *(ROOT / "scripts").glob("*.py")]:
        read |= _attributes_read(path)
    assert {f.name for f in dataclasses.fields(cls)} - read == set()


@pytest.mark.parametrize("cls", PARAMETER_CLASSES, ids=lambda c: c.__name__)
def test_parameter_objects_have_no_default_of_their_own(cls):
    """Every value comes from the config (the schema's defaults): a missing key is an error,
    not a second default."""
    for field in dataclasses.fields(cls):
        assert field.default is dataclasses.MISSING, field.name
        assert field.default_factory is dataclasses.MISSING, field.name
    section = dict(schema_defaults()[cls.section])
    del section[cls.keys()[-1]]
    with pytest.raises(KeyError):
        cls.from_config(section)


@pytest.mark.parametrize("section", list(BY_SECTION))
def test_objects_are_made_from_a_section_or_from_the_keys_a_rule_passes(section):
    """``select`` gives a job exactly its keys (in the class's order); the object made from
    them equals the one made from the whole section."""
    defaults = schema_defaults()[section]
    for cls in BY_SECTION[section]:
        keys = cls.select(defaults)
        assert tuple(keys) == cls.keys() and set(keys) <= set(defaults)
        assert cls.from_config(keys) == cls.from_config(defaults)


def test_catalogue_detection_has_the_keys_of_tweakreg_source_finding():
    """source_catalog's detection keys are tweakreg's finding keys (their defaults differ)."""
    defaults = schema_defaults()
    catalog = CatalogParameters.from_config(defaults["source_catalog"])
    tweakreg = SourceFinding.from_config(defaults["tweakreg"])
    assert set(CatalogParameters.keys()) >= set(SourceFinding.keys())
    assert (catalog.finding.starfinder, tweakreg.starfinder) == ("segmentation", "iraf")


@pytest.mark.parametrize("cls,changes,needle", [
    (AlignmentFit, {"abs_tolerance": 1.0}, "tweakreg.abs_separation (1.0) must exceed"),
    (SkyStatistics, {"lower": 2.0, "upper": 1.0}, "skymatch.lower = 2.0 is above"),
    (SkyStatistics, {"dqbits": "~NOT_A_FLAG"}, "skymatch.dqbits"),
    (FlagComparison, {"snr": "5.0"}, "outlier_detection.snr: expected two numbers"),
    (FlagComparison, {"method": "jwst"}, "outlier_detection.method must be one of"),
    (CatalogParameters, {"aperture_ee2": 80}, "aperture_ee1/2/3 = [30, 80, 70]"),
])
def test_values_that_cannot_work_are_refused_when_the_object_is_made(cls, changes, needle):
    with pytest.raises(ConfigError) as error:
        cls.from_config({**schema_defaults()[cls.section], **changes})
    assert needle in str(error.value) and "\n" not in str(error.value)


def test_the_modules_the_snakefile_imports_stay_light():
    """image3.parameters and image3.steps import no numpy or astropy: every Snakemake process
    (and every cluster job) parses the rules that import them."""
    probe = ("import sys, image3.parameters, image3.steps; "
             "print(sorted(m for m in ('numpy', 'astropy') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == "[]"
