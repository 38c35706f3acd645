"""Configuration: type coercion, validation with one-line errors, derived paths.

Snakemake's ``--config 'resample={pixfrac: 0.8}'`` leaves every nested leaf a string ('0.8');
:func:`coerce` casts such leaves to the type the schema asks for before validation, so nested
overrides behave like values in the config file.
"""

from __future__ import annotations

import copy
import math
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from .errors import ConfigError

STEPS = ("tweakreg", "skymatch", "outlier_detection", "resample", "source_catalog")


def load_schema(path: str | Path) -> dict:
    return yaml.safe_load(Path(path).read_text())


def _resolve(schema: dict, root: dict) -> dict:
    """Follow a local ``$ref`` (``#/$defs/name``), merging sibling keys over the target."""
    ref = schema.get("$ref")
    if not ref:
        return schema
    target = root
    for part in ref.lstrip("#/").split("/"):
        target = target[part]
    merged = dict(_resolve(target, root))
    merged.update({k: v for k, v in schema.items() if k != "$ref"})
    return merged


def _types(schema: dict) -> list[str]:
    t = schema.get("type", [])
    return [t] if isinstance(t, str) else list(t)


def _coerce_value(value: Any, schema: dict, root: dict) -> Any:
    schema = _resolve(schema, root)
    types = _types(schema)
    if isinstance(value, dict) and "object" in types:
        props = schema.get("properties", {})
        return {k: _coerce_value(v, props[k], root) if k in props else v for k, v in value.items()}
    if isinstance(value, str) and "string" not in types:
        parsed = yaml.safe_load(value) if value.strip() else None
        return parsed
    if isinstance(value, str) and set(types) - {"string"}:
        # e.g. DQ bits: "~DO_NOT_USE" stays a string, "4" becomes an int
        parsed = yaml.safe_load(value)
        if isinstance(parsed, int) and "integer" in types:
            return parsed
    return value


def coerce(config: dict, schema: dict) -> dict:
    """Return a copy of ``config`` with string leaves cast to the schema's non-string types."""
    return _coerce_value(copy.deepcopy(config), schema, schema)


def _location(error: jsonschema.ValidationError) -> str:
    return ".".join(str(p) for p in error.absolute_path) or "config"


def validate(config: dict, schema: dict) -> None:
    """Raise :class:`ConfigError` with one line for the first schema violation."""
    validator = jsonschema.Draft202012Validator(schema)
    errors = sorted(validator.iter_errors(config), key=lambda e: list(e.absolute_path))
    if errors:
        error = errors[0]
        where = _location(error)
        if error.validator == "additionalProperties":
            raise ConfigError(f"config: {error.message} (under {where})")
        raise ConfigError(f"config: {where} = {error.instance!r} is invalid: {error.message}")


def check_consistency(config: dict) -> None:
    """Cross-parameter rules of the reference that a schema cannot state."""
    tw = config["tweakreg"]
    for prefix in ("", "abs_"):
        sep, tol = tw[f"{prefix}separation"], tw[f"{prefix}tolerance"]
        if not sep > math.sqrt(2) * tol:
            raise ConfigError(
                f"config: tweakreg.{prefix}separation ({sep}) must exceed sqrt(2) x "
                f"tweakreg.{prefix}tolerance ({tol})")
    sc = config["source_catalog"]
    ees = [sc["aperture_ee1"], sc["aperture_ee2"], sc["aperture_ee3"]]
    if not ees[0] < ees[1] < ees[2]:
        raise ConfigError(f"config: source_catalog.aperture_ee1/2/3 = {ees} must increase strictly")


def work_dir(config: dict) -> str:
    """Intermediates folder: ``work_dir`` or ``<output_dir>/work``."""
    return config.get("work_dir") or str(Path(config["output_dir"]) / "work")


def step_params(config: dict, step: str) -> dict:
    """The parameters of one step without the workflow-only ``skip`` key."""
    return {k: v for k, v in config[step].items() if k != "skip"}
