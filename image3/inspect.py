"""Screening association members before any job: what can be used, and why not.

Each member file is checked once (results cached by path, size and modification time in
``<work_dir>/inspection.json``, so the re-parse of the Snakefile in every cluster job costs a
stat per file): readable FITS with a 2-D SCI image, an ASDF extension (the gwcs), an imaging
exposure type, surface-brightness units, and at least one usable pixel (SCI finite and non-zero
where DQ lacks DO_NOT_USE). Among the usable pixels, ERR must be finite and > 0 on at least half
(a few bad ERR pixels do not leave the member out), and no more than
:data:`MAX_IMPLAUSIBLE_FRACTION` of SCI may exceed :data:`SCI_LIMIT_MJYSR` in absolute value
(a frame of 1e30 would shift every sky level and the mosaic). A member that fails is left out
with one warning line naming the file; if none is left the association is refused. Mixed
instruments or units keep the majority (the first member's on a tie). Moving-target
associations are refused (not supported). An exposure time (TMEASURE, EFFEXPTM or EXPTIME in
the primary header) that is missing or <= 0 is recorded: a warning, and the member left out
when it would be weighted by it (``weight_type: exptime``, :func:`screen`).
"""

from __future__ import annotations

import json
import os
import warnings
from collections import Counter
from dataclasses import replace
from pathlib import Path

import numpy as np
from astropy.io import fits

from .asn import IMAGING_EXPTYPES, SURFACE_BRIGHTNESS_UNIT, Association
from .dqflags import DO_NOT_USE
from .errors import AssociationError, first_line
from .input_identity import signature as signature_of

#: Facts read from the primary header: fact name → keyword.
EXPOSURE_KEYWORDS = {"instrument": "INSTRUME", "filter": "FILTER", "pupil": "PUPIL",
                     "detector": "DETECTOR"}
CACHE_VERSION = 5
#: |SCI| above this (MJy/sr) is no sky: ~100x the peak of the brightest unsaturated star a
#: NIRCam short-wavelength pixel can record (a K ~ 10 star puts ~1e6 MJy/sr in its peak pixel,
#: and saturates).
SCI_LIMIT_MJYSR = 1e8
#: Fraction of the usable pixels allowed beyond SCI_LIMIT_MJYSR (isolated hot pixels; outlier
#: detection flags them).
MAX_IMPLAUSIBLE_FRACTION = 1e-3
#: Fraction of the usable pixels whose ERR must be finite and > 0.
MIN_GOOD_ERR_FRACTION = 0.5
#: Primary-header exposure times, in the order the resample reads them.
EXPOSURE_TIME_KEYWORDS = ("TMEASURE", "EFFEXPTM", "EXPTIME")


def _truncated(path: Path, hdul, caught) -> bool:
    """Whether the file ends before its last HDU's data (astropy reads what is there)."""
    hdul.readall()
    if any("truncated" in str(w.message) for w in caught):
        return True
    last = hdul.fileinfo(len(hdul) - 1)
    return last["datLoc"] + last["datSpan"] > path.stat().st_size


def inspect_file(path: str | Path) -> dict:
    """Facts about one exposure file: ``problem`` (None if usable), instrument, filter, pupil,
    detector (primary header INSTRUME, FILTER, PUPIL, DETECTOR; they select the entries of the
    parameter table), unit, moving, and the SCI header's ``s_region`` (None if absent) and the
    SCI ``shape`` (ny, nx): the mosaic's size is estimated from them before any job."""
    path = Path(path)
    facts = {"problem": None, "instrument": None, "filter": None, "pupil": None,
             "detector": None, "unit": None, "moving": False, "s_region": None, "shape": None,
             "exptime": None}
    try:
        with warnings.catch_warnings(record=True) as caught, \
                fits.open(path, memmap=False) as hdul:
            warnings.simplefilter("always")
            if _truncated(path, hdul, caught):
                facts["problem"] = "truncated or corrupt FITS file (shorter than its headers say)"
                return facts
            primary = hdul[0].header
            for key, keyword in EXPOSURE_KEYWORDS.items():
                facts[key] = primary.get(keyword)
            facts["moving"] = str(primary.get("TARGTYPE", "")).strip().upper() == "MOVING"
            facts["exptime"] = _exposure_time(primary)
            exp_type = primary.get("EXP_TYPE")
            if exp_type is not None and exp_type not in IMAGING_EXPTYPES:
                facts["problem"] = f"exposure type {exp_type!r} is not an imaging exposure"
                return facts
            if "SCI" not in hdul:
                facts["problem"] = "has no SCI extension"
                return facts
            sci = hdul["SCI"]
            facts["unit"] = sci.header.get("BUNIT")
            s_region = sci.header.get("S_REGION")
            facts["s_region"] = s_region if isinstance(s_region, str) else None
            if "ASDF" not in hdul:
                facts["problem"] = "has no WCS (no ASDF extension holding the gwcs)"
                return facts
            data = sci.data
            if data is None or data.ndim != 2:
                facts["problem"] = "SCI is not a 2-D image"
                return facts
            facts["shape"] = [int(n) for n in data.shape]
            good = np.isfinite(data) & (data != 0)
            if "DQ" in hdul and hdul["DQ"].data is not None and hdul["DQ"].data.shape == data.shape:
                good &= (hdul["DQ"].data & DO_NOT_USE) == 0
            if not good.any():
                facts["problem"] = "no usable science pixel (SCI all NaN/zero or DQ all DO_NOT_USE)"
                return facts
            facts["problem"] = _implausible_values(data, good, hdul)
            if facts["problem"]:
                return facts
    except (OSError, ValueError, TypeError, IndexError) as exc:
        reason = first_line(exc)
        facts["problem"] = f"not a readable FITS file ({reason})"
        return facts
    if facts["unit"] is not None and facts["unit"] != SURFACE_BRIGHTNESS_UNIT:
        facts["problem"] = (f"SCI units are {facts['unit']!r}, "
                            f"expected {SURFACE_BRIGHTNESS_UNIT!r}")
    return facts


def _exposure_time(primary: fits.Header) -> float | None:
    for keyword in EXPOSURE_TIME_KEYWORDS:
        value = primary.get(keyword)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    return None


def _implausible_values(data: np.ndarray, good: np.ndarray, hdul) -> str | None:
    """Why the usable pixels cannot be used (ERR, SCI beyond any sky), or None."""
    n_good = int(np.count_nonzero(good))
    beyond = int(np.count_nonzero(np.abs(data[good]) > SCI_LIMIT_MJYSR))
    if beyond > MAX_IMPLAUSIBLE_FRACTION * n_good:
        return (f"SCI beyond {SCI_LIMIT_MJYSR:.0e} MJy/sr on {beyond} of its {n_good} usable "
                f"pixels (largest {np.nanmax(np.abs(data[good])):.3g}): not a sky image")
    if "ERR" in hdul and hdul["ERR"].data is not None and hdul["ERR"].data.shape == data.shape:
        err = hdul["ERR"].data[good]
        with np.errstate(invalid="ignore"):
            usable = float(np.count_nonzero(np.isfinite(err) & (err > 0))) / n_good
        if usable < MIN_GOOD_ERR_FRACTION:
            return (f"ERR is NaN, infinite or <= 0 on {1 - usable:.0%} of its usable pixels: "
                    "no noise to weight or flag outliers with")
    return None


def _load_cache(path: Path | None) -> dict:
    if path is None or not path.exists():
        return {}
    try:
        cache = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return {}
    return cache if cache.get("version") == CACHE_VERSION else {}


def _save_cache(path: Path, entries: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps({"version": CACHE_VERSION, "files": entries}, indent=1))
    os.replace(tmp, path)


def screen(asn: Association, cache_path: str | Path | None = None,
           weighted_by_exptime: bool = False) -> tuple[Association, dict]:
    """The association with unusable members left out (warnings added), or AssociationError.
    A member without a positive exposure time gets a warning, and is left out when
    ``weighted_by_exptime`` (a resample ``weight_type: exptime``).

    Also returns the inspection results to cache with :func:`save_inspection` once the run
    really starts (a refused configuration must leave nothing in the output folder).
    """
    cache_path = Path(cache_path) if cache_path else None
    cache = _load_cache(cache_path).get("files", {})
    entries, facts = {}, {}
    for member in asn.members:
        key = str(member.path)
        signature = signature_of(member.path)
        cached = cache.get(key)
        result = cached["facts"] if cached and cached["signature"] == signature else None
        if result is None:
            result = inspect_file(member.path)
        entries[key] = {"signature": signature, "facts": result}
        facts[member.name] = result

    if any(f["moving"] for f in facts.values()):
        raise AssociationError(f"{asn.source}: moving-target associations are not supported")
    warnings = list(asn.warnings)
    usable = []
    for member in asn.members:
        problem = facts[member.name]["problem"]
        exptime = facts[member.name].get("exptime")
        if not problem and (exptime is None or exptime <= 0):
            what = "no exposure time" if exptime is None else f"exposure time {exptime:g} s"
            if weighted_by_exptime:
                problem = f"{what} (TMEASURE/EFFEXPTM/EXPTIME), and weight_type is exptime"
            else:
                warnings.append(f"{member.path}: {what} (TMEASURE/EFFEXPTM/EXPTIME); kept "
                                "(with weight_type exptime it would be left out)")
        if problem:
            warnings.append(f"{member.path}: {problem}; left out")
        else:
            usable.append(member)
    for field, what in (("instrument", "instrument"), ("unit", "SCI units")):
        counts = Counter(facts[m.name][field] for m in usable)
        if len(counts) > 1:
            first = facts[usable[0].name][field]
            keep = max(counts, key=lambda v: (counts[v], v == first))
            for m in [m for m in usable if facts[m.name][field] != keep]:
                warnings.append(f"{m.path}: {what} {facts[m.name][field]!r} differ from the "
                                f"majority's {keep!r}; left out")
            usable = [m for m in usable if facts[m.name][field] == keep]
    if not usable:
        reasons = "; ".join(w for w in warnings[-3:])
        raise AssociationError(f"{asn.source}: no usable member left ({reasons})")
    return replace(asn, members=tuple(usable), warnings=tuple(warnings)), entries


def save_inspection(cache_path: str | Path, entries: dict) -> None:
    """Write the inspection cache (no-op when it is already up to date)."""
    cache_path = Path(cache_path)
    if _load_cache(cache_path).get("files") != entries:
        _save_cache(cache_path, entries)
