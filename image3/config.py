"""Configuration: type coercion, validation with one-line errors, the schema's defaults, the
user's own settings, the per-instrument/filter parameter table, derived paths.

Every default is defined once, in ``config/schema.yaml``: Snakemake's validation fills them into
the config (:func:`schema_defaults` gives the same values without Snakemake). What the user set
(:func:`user_settings`) comes from ``config/config.yaml``, which holds only the user's own
values, from ``--configfile`` files and from ``--config``.

Snakemake's ``--config 'resample={pixfrac: 0.8}'`` leaves every nested leaf a string ('0.8');
:func:`coerce` casts such leaves to the type the schema asks for before validation, so nested
overrides behave like values in the config file.

The parameter table (``config/parameters.yaml``) plays the role of the reference's CRDS
``pars-*`` reference files: entries whose ``match`` fits the association's first member
(primary header INSTRUME, FILTER, PUPIL, DETECTOR; ``fnmatch`` patterns, case-insensitive) set
step parameters over the schema's defaults, in file order (a later entry wins), but never a
parameter the user set (:func:`apply_parameter_table`).
"""

from __future__ import annotations

import copy
import fnmatch
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from .errors import ConfigError, first_line
from .parameters import BY_SECTION

STEPS = ("tweakreg", "skymatch", "outlier_detection", "resample", "source_catalog")
#: What a parameter-table entry can match on (exposure facts of image3.inspect).
MATCH_KEYS = ("instrument", "filter", "pupil", "detector")
#: The workflow's config schema, beside the Snakefile (as image3.cli finds the Snakefile).
SCHEMA_PATH = Path(__file__).resolve().parents[1] / "config" / "schema.yaml"


def load_schema(path: str | Path = SCHEMA_PATH) -> dict:
    return yaml.safe_load(Path(path).read_text())


def schema_defaults(schema: dict | None = None) -> dict:
    """The configuration of an empty config file: every default of the schema (the workflow's
    own schema when None), nested as the config is; the values Snakemake's ``validate`` fills
    in. Unit tests build parameter objects from it, so they repeat no default."""
    schema = load_schema() if schema is None else schema
    return _defaults(schema, schema)


def _defaults(schema: dict, root: dict) -> dict:
    out = {}
    for key, prop in _resolve(schema, root).get("properties", {}).items():
        prop = _resolve(prop, root)
        if "properties" in prop:
            out[key] = _defaults(prop, root)
        elif "default" in prop:
            out[key] = copy.deepcopy(prop["default"])
    return out


def _merge(base: dict, update: Mapping) -> dict:
    """``base`` updated by ``update``, nested mappings merged key by key (as Snakemake merges
    config files and ``--config``)."""
    for key, value in update.items():
        if isinstance(value, Mapping) and isinstance(base.get(key), dict):
            _merge(base[key], value)
        else:
            base[key] = copy.deepcopy(value)
    return base


def user_settings(config_files: Iterable[str | Path], command_line: Mapping) -> dict:
    """What the user set: the config files the run read (``config/config.yaml``, which holds
    only the user's values, and ``--configfile`` files) merged in order, then ``--config``
    (Snakemake's ``workflow.config_settings.overwrite_config``). No schema default is in it."""
    settings: dict = {}
    for path in config_files:
        try:
            document = yaml.safe_load(Path(path).read_text()) or {}
        except (OSError, yaml.YAMLError) as exc:
            reason = first_line(exc)
            raise ConfigError(f"{path}: not a readable config file ({reason})") from None
        _merge(settings, document)
    return _merge(settings, command_line)


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
    if isinstance(value, (list, tuple)) and "array" in types:
        # Snakemake's --config gives list items as strings: crpix=['127.5', '127.5']
        items = schema.get("items", {})
        return [_coerce_value(v, items, root) for v in value]
    if isinstance(value, str) and "string" not in types:
        parsed = yaml.safe_load(value) if value.strip() else None
        return parsed if isinstance(parsed, str) else _coerce_value(parsed, schema, root)
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
    """Every step's parameter objects (:mod:`image3.parameters`) made once from a validated
    config, so the rules a schema cannot state (e.g. tweakreg's separation > √2 × tolerance,
    increasing aperture_ee1/2/3, DQ flag names) stop the run before any job, as one line."""
    for section, classes in BY_SECTION.items():
        for parameters in classes:
            try:
                parameters.from_config(config[section])
            except ConfigError as exc:
                raise ConfigError(f"config: {exc}") from None


def association_settings(user: Mapping, row: Mapping, fixed: Mapping) -> dict:
    """One association's settings in a run of several: the user's, then its sample-sheet
    ``row``'s (image3.asn.read_sample_sheet), then what the run sets for it (``fixed``: its
    asn, folders, common grid), each merged over the one before section by section."""
    out = copy.deepcopy(dict(user))
    for layer in (row, fixed):
        for key, value in layer.items():
            if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
                out[key] = {**out[key], **value}
            else:
                out[key] = copy.deepcopy(value)
    return out


def work_dir(config: dict) -> str:
    """Intermediates folder: ``work_dir`` or ``<output_dir>/work``."""
    return config.get("work_dir") or str(Path(config["output_dir"]) / "work")


def read_parameter_table(path: str | Path, schema: dict) -> list[dict]:
    """The entries of a parameter table file, checked; :class:`ConfigError` names the entry.

    The file holds ``entries:``, a list of mappings with ``match`` ({key: pattern} over
    :data:`MATCH_KEYS`, ``instrument`` required), ``reason`` (why these values: a table
    without reasons cannot be reviewed) and one section per step ({parameter: value}) whose
    values must pass the config schema.
    """
    path = Path(path)
    try:
        document = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        reason = first_line(exc)
        raise ConfigError(f"{path}: not a readable parameter table ({reason})") from None
    entries = (document or {}).get("entries") if isinstance(document, dict) else None
    if not isinstance(entries, list):
        raise ConfigError(f"{path}: a parameter table needs a list under 'entries:'")
    for number, entry in enumerate(entries, start=1):
        where = f"{path}: entry {number}"
        if not isinstance(entry, dict) or not isinstance(entry.get("match"), dict):
            raise ConfigError(f"{where}: needs a 'match:' mapping")
        match = entry["match"]
        unknown = set(match) - set(MATCH_KEYS)
        if "instrument" not in match or unknown:
            raise ConfigError(f"{where}: 'match' needs 'instrument' and only {MATCH_KEYS} "
                              f"(got {sorted(match)})")
        if not str(entry.get("reason", "")).strip():
            raise ConfigError(f"{where} ({_describe_match(match)}): give a 'reason'")
        steps = {k: v for k, v in entry.items() if k not in ("match", "reason")}
        bad = [k for k, v in steps.items() if k not in STEPS or not isinstance(v, dict)]
        if bad:
            raise ConfigError(f"{where} ({_describe_match(match)}): {bad} are not step "
                              f"sections (one of {STEPS}, each a mapping)")
        try:
            validate(steps, schema)
        except ConfigError as exc:
            raise ConfigError(f"{where} ({_describe_match(match)}): {exc}") from None
    return entries


def _describe_match(match: Mapping) -> str:
    return " ".join(f"{k}={match[k]}" for k in MATCH_KEYS if k in match)


def entry_matches(match: Mapping, exposure: Mapping) -> bool:
    """Whether every pattern of ``match`` fits the exposure's fact (case-insensitive
    ``fnmatch``: ``NRC?LONG``, ``F1*W``); a fact the exposure lacks never matches."""
    return all(exposure.get(key) is not None
               and fnmatch.fnmatchcase(str(exposure[key]).upper(), str(pattern).upper())
               for key, pattern in match.items())


def _is_explicit(explicit: Mapping, step: str, key: str) -> bool:
    section = explicit.get(step)
    return isinstance(section, Mapping) and key in section


def apply_parameter_table(config: dict, entries: list[dict], exposure: Mapping,
                          explicit: Mapping) -> tuple[dict, dict[str, object]]:
    """``config`` with the values of the entries that match ``exposure``, and what was set.

    ``exposure`` holds the first member's facts (``instrument``, ``filter``, ``pupil``,
    ``detector``); ``explicit`` the user's own settings (:func:`user_settings`, e.g.
    ``{"tweakreg": {"kernel_fwhm": "3"}}``): a parameter there keeps the user's value.
    Returns a new config and {"step.parameter": value} of the values taken from the table.
    """
    out = copy.deepcopy(config)
    applied: dict[str, object] = {}
    for entry in entries:
        if not entry_matches(entry["match"], exposure):
            continue
        for step in STEPS:
            for key, value in entry.get(step, {}).items():
                if not _is_explicit(explicit, step, key):
                    out[step][key] = value
                    applied[f"{step}.{key}"] = value
    return out, applied


def parameter_sources(config: Mapping, table_values: Mapping[str, object],
                      explicit: Mapping) -> list[tuple[str, str, str, str]]:
    """Every step parameter of a run as (step, parameter, value, source), steps in order.

    ``source`` is "user" for the user's own settings (``explicit``, see
    :func:`apply_parameter_table`), "parameter table" for values from it (``table_values``,
    {"step.parameter": value}), else "default" (the schema's).
    """
    rows = []
    for step in STEPS:
        for key, value in config[step].items():
            if _is_explicit(explicit, step, key):
                source = "user"
            elif f"{step}.{key}" in table_values:
                source = "parameter table"
            else:
                source = "default"
            rows.append((step, key, yaml.safe_dump(value, default_flow_style=True).strip()
                         .removesuffix("\n..."), source))
    return rows
