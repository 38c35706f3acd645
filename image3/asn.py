"""Associations: which exposures make one image3 product, and what they are called.

An image3 association (ASN) is a JSON file (jwst level-3 schema) whose first
product lists the member exposures. Only ``exptype == "science"`` members are
used, as in the reference. Member paths are resolved relative to the ASN file.
A single ``_cal.fits`` file is accepted in place of an ASN: its root becomes
the product name and there is no ``asn_id``.

Naming follows the reference (stpipe ``_make_output_path``): an output is
``<basename>[_<asn_id>]_<suffix>.<ext>`` where ``basename`` is the input or
product root with any known pipeline suffix removed.
"""

from __future__ import annotations

import glob
import json
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import yaml
from astropy.io import fits

from .errors import AssociationError, InputFileError, first_line

log = logging.getLogger(__name__)

# Pipeline suffixes stripped from a file stem to get its root (stpipe's list, abridged to
# what can precede image3).
KNOWN_SUFFIXES = (
    "cal", "calints", "crf", "crfints", "i2d", "rate", "rateints", "uncal", "bsub",
    "bsubints", "flat", "photom", "tweakreg", "skymatch", "outlier_detection", "resample",
    "cat", "segm", "s2d", "x1d", "ramp", "trapsfilled", "dark", "linearity", "jump",
)

# Exposure types the image3 (imaging) pipeline accepts.
IMAGING_EXPTYPES = frozenset({"NRC_IMAGE", "MIR_IMAGE", "NIS_IMAGE", "FGS_IMAGE"})

# Units of SCI/ERR that image3 accepts (calibrated surface brightness).
SURFACE_BRIGHTNESS_UNIT = "MJy/sr"

# Header keywords that make up a JWST group id (one exposure, all detectors).
_GROUP_KEYS = ("PROGRAM", "OBSERVTN", "VISIT", "VISITGRP", "SEQ_ID", "ACT_ID", "EXPOSURE")

_NAME_OK = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]*$")
#: An exposure name (a folder and file-name part in the work folder and the products, and the
#: FILENAME of its _crf, which FITS holds in ASCII): printable ASCII but path separators and
#: Snakemake's wildcard braces, not starting with a dot, a dash or a space.
_MEMBER_NAME_OK = re.compile(r"[^ .\-/\\{}][^/\\{}]*")


def strip_suffix(stem: str) -> str:
    """Return ``stem`` without a trailing known pipeline suffix (``x_nrca1_cal`` → ``x_nrca1``)."""
    head, sep, tail = stem.rpartition("_")
    if sep and tail.lower() in KNOWN_SUFFIXES:
        return head
    return stem


def exposure_root(path: str | Path) -> str:
    """Root of an exposure file name: the file name without extension and pipeline suffix."""
    name = Path(path).name
    stem = name[: -len(".fits")] if name.lower().endswith(".fits") else Path(name).stem
    return strip_suffix(stem)


def crf_name(root: str, asn_id: str | None) -> str:
    """Outlier-flagged exposure name: ``<root>_<asn_id>_crf.fits`` (``<root>_crf.fits`` without asn_id)."""
    return f"{root}_{asn_id}_crf.fits" if asn_id else f"{root}_crf.fits"


def product_names(product: str) -> dict[str, str]:
    """File names of the combined products of ``product``: i2d, cat, segm."""
    base = strip_suffix(product)
    return {
        "i2d": f"{base}_i2d.fits",
        "cat": f"{base}_cat.ecsv",
        "segm": f"{base}_segm.fits",
    }


def group_id_from_header(header: fits.Header) -> str | None:
    """The reference's group id, ``jw{prog}{obs}{visit}_{vgroup}{seq}{act}_{expnum}``, or None.

    Returns None when any of the observation keywords is missing, so the caller can fall back.
    """
    values = [header.get(key) for key in _GROUP_KEYS]
    if any(v is None or str(v).strip() == "" for v in values):
        return None
    prog, obs, visit, vgroup, seq, act, expnum = (str(v).strip() for v in values)
    return f"jw{prog}{obs}{visit}_{vgroup}{seq}{act}_{expnum}"


@dataclass(frozen=True)
class Member:
    """One science exposure (one detector of one exposure) of an association.

    ``name`` is the exposure root (``jw..._nrca1``), unique within the association and used as
    the workflow's per-member wildcard. ``group_id`` identifies the exposure: members sharing it
    move together in tweakreg, get one sky level and one single drizzle, as in the reference.
    """

    name: str
    path: Path
    group_id: str
    tweakreg_catalog: Path | None = None


#: What a step's ``group_by`` can group members by: ``exposure``, the association's group id
#: (the reference: all detectors of one exposure move together in tweakreg and share one sky
#: level in skymatch); ``detector``, each member alone; ``visit``, the members of one visit
#: (the ``jw{program}{observation}{visit}`` part of the group id: one guide star, one pointing
#: error; a group id of another form stands for its own visit).
GROUPINGS = ("exposure", "detector", "visit")
_VISIT = re.compile(r"^(jw\d{11})_")


def grouping_label(member: Member, key: str) -> str:
    """The group ``member`` belongs to under the grouping ``key`` (:data:`GROUPINGS`)."""
    if key == "exposure":
        return member.group_id
    if key == "detector":
        return member.name
    if key == "visit":
        found = _VISIT.match(member.group_id)
        return found.group(1) if found else member.group_id
    raise ValueError(f"unknown grouping {key!r}: one of {', '.join(GROUPINGS)}")


@dataclass(frozen=True)
class Association:
    """The parsed association: product name, asn_id and the usable science members in order."""

    product: str
    asn_id: str | None
    members: tuple[Member, ...]
    source: Path
    warnings: tuple[str, ...] = field(default=())
    is_single_exposure: bool = False
    #: every science member's file as the association lists it (resolved), usable or not
    listed: tuple[Path, ...] = field(default=())

    @property
    def groups(self) -> dict[str, list[Member]]:
        """Members by group id, in the order groups first appear."""
        out: dict[str, list[Member]] = {}
        for member in self.members:
            out.setdefault(member.group_id, []).append(member)
        return out

    def member(self, name: str) -> Member:
        for m in self.members:
            if m.name == name:
                return m
        raise KeyError(name)

    def grouped_by(self, key: str) -> dict[str, list[str]]:
        """Member names by group for a step's ``group_by`` (:data:`GROUPINGS`), in order."""
        out: dict[str, list[str]] = {}
        for member in self.members:
            out.setdefault(grouping_label(member, key), []).append(member.name)
        return out


    def crf_name(self, member: Member) -> str:
        return crf_name(member.name, self.asn_id)

    @property
    def outputs(self) -> dict[str, str]:
        return product_names(self.product)


def _read_json(path: Path) -> dict:
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise AssociationError(f"{path}: association file not found") from None
    except OSError as exc:
        raise AssociationError(f"{path}: cannot read association ({exc.strerror})") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise AssociationError(
            f"{path}: not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})"
        ) from None
    if not isinstance(data, dict):
        raise AssociationError(f"{path}: an association must be a JSON object")
    return data


def _header_group_id(path: Path) -> str | None:
    """Group id from the primary header, or None if the file cannot tell."""
    try:
        header = fits.getheader(path, 0)
    except Exception:  # an unreadable file is reported by the member inspection
        return None
    return group_id_from_header(header)


#: File name endings of a sample sheet (:func:`read_sample_sheet`).
SAMPLE_SHEET_SUFFIXES = (".csv", ".tsv")


def _asn_items(spec) -> list[str]:
    if isinstance(spec, str) and spec.strip().startswith("["):
        spec = yaml.safe_load(spec)
    items = spec if isinstance(spec, (list, tuple)) else [spec]
    return [str(item or "").strip() for item in items if str(item or "").strip()]


def is_sample_sheet(text: str) -> bool:
    """Whether an ``asn`` item names a sample sheet (by its file name's ending)."""
    return text.lower().endswith(SAMPLE_SHEET_SUFFIXES)


def association_paths(spec) -> list[Path]:
    """The association files of an ``asn`` setting: one path (an ASN json or a single _cal),
    a folder (its ``*_asn.json``), a glob pattern, a sample sheet (:func:`read_sample_sheet`),
    or a list of these (also as a YAML list string, as ``--config 'asn=[a_asn.json,
    b_asn.json]'`` gives it), in the order given (each folder and pattern sorted), each once.
    An empty setting gives none (the demo)."""
    paths: list[Path] = []
    for text in _asn_items(spec):
        path = Path(text)
        if path.is_dir():
            paths += sorted(path.glob("*_asn.json"))
        elif is_sample_sheet(text):
            paths += list(read_sample_sheet(path))
        elif any(c in text for c in "*?["):
            paths += sorted(Path(p) for p in glob.glob(text))
        else:
            paths.append(path)
    return list(dict.fromkeys(paths))


def sheet_settings(spec) -> dict[Path, dict]:
    """The per-association settings of the sample sheets in an ``asn`` setting (ASN path ->
    nested settings, as :func:`read_sample_sheet`); empty without a sheet."""
    found: dict[Path, dict] = {}
    for text in _asn_items(spec):
        if is_sample_sheet(text):
            found.update(read_sample_sheet(Path(text)))
    return found


def read_sample_sheet(path: str | Path) -> dict[Path, dict]:
    """A sample sheet: a CSV (or TSV) table, one row per association, with a column ``asn``
    (the ASN file, relative to the sheet's folder) and optional columns ``<section>.<key>``
    of the configuration (e.g. ``resample.pixfrac``) whose values, read as YAML scalars (a
    number, true/false, text), are that association's settings; an empty cell sets nothing.
    Returns ASN path -> nested settings ({section: {key: value}}), in the sheet's order. An
    unreadable sheet, or one without an ``asn`` column, is one AssociationError line."""
    import csv

    path = Path(path)
    try:
        with path.open(newline="") as stream:
            rows = list(csv.DictReader(stream, delimiter="\t" if path.suffix.lower() == ".tsv"
                                       else ","))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise AssociationError(f"{path}: cannot read the sample sheet ({first_line(exc)})") \
            from None
    if not rows or "asn" not in rows[0]:
        raise AssociationError(f"{path}: a sample sheet needs a header row with an 'asn' column "
                               "and one row per association")
    sheet: dict[Path, dict] = {}
    for number, row in enumerate(rows, start=2):
        if not (row.get("asn") or "").strip():
            raise AssociationError(f"{path}: row {number} has no asn")
        settings: dict = {}
        for column, cell in row.items():
            if column == "asn" or cell is None or not cell.strip():
                continue
            section, dot, key = column.strip().partition(".")
            value = yaml.safe_load(cell)
            if dot:
                settings.setdefault(section, {})[key] = value
            else:
                settings[section] = value
        sheet[(path.parent / row["asn"].strip()).resolve()] = settings
    return sheet


def read_association(path: str | Path) -> Association:
    """Parse an image3 ASN json (or accept a single ``_cal.fits``).

    Fatal problems (unreadable or malformed JSON, no product, no science member, no member
    file left) raise :class:`AssociationError` with one line naming the file. Member-level
    problems (a missing file, a duplicate) drop that member and are reported in
    ``Association.warnings``.
    """
    path = Path(path)
    if path.name.lower().endswith((".fits", ".fits.gz")):
        return single_exposure(path)
    data = _read_json(path)
    products = data.get("products")
    if not isinstance(products, list) or not products or not isinstance(products[0], dict):
        raise AssociationError(f"{path}: no 'products' list with at least one product")
    product = products[0]
    raw_members = product.get("members")
    if not isinstance(raw_members, list):
        raise AssociationError(f"{path}: products[0] has no 'members' list")
    product_name = product.get("name") or strip_suffix(path.stem)
    if not _NAME_OK.match(str(product_name)):
        raise AssociationError(f"{path}: product name {product_name!r} is not a valid file name")
    asn_id = data.get("asn_id") or None
    if data.get("asn_type") not in (None, "image3"):
        log.info("%s: asn_type is %r, treating it as image3", path, data.get("asn_type"))

    warnings: list[str] = []
    members: list[Member] = []
    listed: list[Path] = []
    seen_paths: dict[Path, str] = {}
    seen_names: dict[str, Path] = {}
    science = [m for m in raw_members if isinstance(m, dict) and
               str(m.get("exptype", "")).lower() == "science"]
    if not science:
        raise AssociationError(f"{path}: no science member in products[0]")
    for index, entry in enumerate(science):
        expname = entry.get("expname")
        if not isinstance(expname, str) or not expname:
            warnings.append(f"{path}: science member {index + 1} has no 'expname'; left out")
            continue
        member_path = (path.parent / expname).resolve()
        listed.append(member_path)
        if member_path in seen_paths:
            warnings.append(f"{member_path}: listed twice in {path.name}; the duplicate is left out")
            continue
        if not member_path.is_file():
            warnings.append(f"{member_path}: member file not found; left out")
            continue
        name = exposure_root(member_path)
        if name in seen_names:
            warnings.append(
                f"{member_path}: same exposure name as {seen_names[name]}; the duplicate is left out")
            continue
        if not name.isascii():
            warnings.append(f"{member_path}: file name has non-ASCII characters, which the FITS "
                            "headers of its products cannot hold; rename it; left out")
            continue
        if not (_MEMBER_NAME_OK.fullmatch(name) and name.isprintable()):
            warnings.append(f"{member_path}: file name is not usable as an exposure name; left out")
            continue
        group_id = entry.get("group_id") or _header_group_id(member_path) or f"exposure{index + 1:04d}"
        catalog = entry.get("tweakreg_catalog")
        members.append(Member(
            name=name, path=member_path, group_id=str(group_id),
            tweakreg_catalog=(path.parent / catalog).resolve() if catalog else None,
        ))
        seen_paths[member_path] = name
        seen_names[name] = member_path

    if not members:
        raise AssociationError(f"{path}: none of the {len(science)} science members is usable "
                               f"({warnings[0] if warnings else 'no member'})")
    return Association(product=str(product_name), asn_id=asn_id, members=tuple(members),
                       source=path, warnings=tuple(warnings), listed=tuple(listed))


def pair_partners(members: Sequence[str], member: str) -> list[str]:
    """The members a per-member job pairs ``member`` with so that every pair of ``members`` is
    taken once, by one of its two members, spread evenly over them: member i takes
    i+1 ... i+(n-1)//2 cyclically in ``members``' order, and i+n/2 when n is even and i is in
    the first half."""
    n = len(members)
    i = list(members).index(member)
    steps = list(range(1, (n - 1) // 2 + 1))
    if n % 2 == 0 and i < n // 2:
        steps.append(n // 2)
    return [members[(i + k) % n] for k in steps]


def single_exposure(path: str | Path) -> Association:
    """An 'association' of one ``_cal`` file: product = its root, no asn_id (the reference's path)."""
    path = Path(path).resolve()
    if not path.is_file():
        raise InputFileError(f"{path}: input file not found")
    name = exposure_root(path)
    group_id = _header_group_id(path) or "exposure0001"
    member = Member(name=name, path=path, group_id=group_id)
    return Association(product=name, asn_id=None, members=(member,), source=path,
                       is_single_exposure=True, listed=(path,))


def write_association(path: str | Path, product: str, asn_id: str | None,
                      expnames: list[str], group_ids: list[str] | None = None) -> Path:
    """Write a minimal image3 ASN json (the format :func:`read_association` reads)."""
    members = []
    for i, expname in enumerate(expnames):
        member = {"expname": expname, "exptype": "science"}
        if group_ids is not None:
            member["group_id"] = group_ids[i]
        members.append(member)
    asn = {"asn_type": "image3", "asn_rule": "candidate_Asn_Lv3Image", "asn_pool": "image3_pool",
           "products": [{"name": product, "members": members}]}
    if asn_id:
        asn["asn_id"] = asn_id
    path = Path(path)
    path.write_text(json.dumps(asn, indent=2) + "\n")
    return path
