"""JWST pixel data-quality flags: name -> bit value of the DQ arrays of level-2 and -3 files.

The table stdatamodels keeps in ``stdatamodels.jwst.datamodels.dqflags.pixel``, held here so a
job that only needs the bit values does not import ``stdatamodels.jwst.datamodels`` (every
datamodel class, ~1 s per process on a 2-core VM). ``tests/test_dqflags.py`` checks the two
tables are equal, so a change upstream fails the suite instead of drifting.

:func:`interpret_bits` reads the reference's ``good_bits`` / ``dqbits`` values. It parses them
as astropy's ``interpret_bit_flags`` does (tested equal on valid and invalid values), without
importing ``astropy.nddata`` (~0.5 s), which jobs like the median's need for nothing else.
"""

import numbers

from .errors import ConfigError

PIXEL = {
    "GOOD": 0,
    "DO_NOT_USE": 1 << 0,
    "SATURATED": 1 << 1,
    "JUMP_DET": 1 << 2,
    "DROPOUT": 1 << 3,
    "OUTLIER": 1 << 4,
    "PERSISTENCE": 1 << 5,
    "AD_FLOOR": 1 << 6,
    "CHARGELOSS": 1 << 7,
    "RESERVED": 1 << 8,
    "NON_SCIENCE": 1 << 9,
    "DEAD": 1 << 10,
    "HOT": 1 << 11,
    "WARM": 1 << 12,
    "LOW_QE": 1 << 13,
    "RC": 1 << 14,
    "TELEGRAPH": 1 << 15,
    "NONLINEAR": 1 << 16,
    "BAD_REF_PIXEL": 1 << 17,
    "NO_FLAT_FIELD": 1 << 18,
    "NO_GAIN_VALUE": 1 << 19,
    "NO_LIN_CORR": 1 << 20,
    "NO_SAT_CHECK": 1 << 21,
    "UNRELIABLE_BIAS": 1 << 22,
    "UNRELIABLE_DARK": 1 << 23,
    "UNRELIABLE_SLOPE": 1 << 24,
    "UNRELIABLE_FLAT": 1 << 25,
    "OPEN": 1 << 26,
    "ADJ_OPEN": 1 << 27,
    "FLUX_ESTIMATED": 1 << 28,
    "MSA_FAILED_OPEN": 1 << 29,
    "OTHER_BAD_PIXEL": 1 << 30,
    "REFERENCE_PIXEL": 1 << 31,
}

DO_NOT_USE = PIXEL["DO_NOT_USE"]
OUTLIER = PIXEL["OUTLIER"]


def interpret_bits(spec: int | str | None) -> int:
    """DQ bits that make a pixel unusable, from a reference-style ``good_bits`` value.

    ``good_bits`` lists the DQ flags to *ignore* (astropy ``interpret_bit_flags`` syntax with
    JWST flag names): an int or "4+8" / "JUMP_DET,DROPOUT" = those bits are harmless, any
    other set bit is bad; "0" = any set bit is bad; a leading "~" flips the meaning, so
    "~DO_NOT_USE+NON_SCIENCE" = only DO_NOT_USE (1) and NON_SCIENCE (512) are bad;
    None = no bit is bad (the DQ array is not used).
    """
    try:
        good = _bit_flags(spec)
    except (KeyError, ValueError, TypeError) as err:
        raise ConfigError(f"good_bits {spec!r} is not a DQ bit specification ({err})") from None
    if good is None:
        return 0
    return ~int(good) & 0xFFFFFFFF


def _bit_flags(spec) -> int | None:
    """The bit mask of an int, None or str ``spec`` (astropy ``interpret_bit_flags`` rules:
    one kind of separator among ``,+|``, names from :data:`PIXEL`, a leading ``~`` flips,
    the list may sit in parentheses; several values must each be a power of two)."""
    if isinstance(spec, numbers.Integral) and not isinstance(spec, bool):
        return int(spec)
    if spec is None:
        return None
    if isinstance(spec, (list, tuple)):
        if all(isinstance(f, str) for f in spec):
            spec = [PIXEL[f] for f in spec]
        if not all(isinstance(f, numbers.Integral) and not isinstance(f, bool) for f in spec):
            raise TypeError("Every bit flag in a list must be an integer or a flag name.")
        return _sum_of_flags(spec, single_may_be_any=False)
    if not isinstance(spec, str):
        raise TypeError("Unsupported type for argument 'bit_flags'.")
    text = spec.strip()
    if text.upper() in ("", "NONE", "INDEF"):
        return None
    flip = text.startswith("~")
    if flip:
        text = text[1:].lstrip()
    elif "~" in text:
        raise ValueError("Bitwise-NOT must precede bit flag list.")
    while "(" in text or ")" in text:
        if text.count("(") != text.count(")"):
            raise ValueError("Unbalanced parentheses in bit flag list.")
        if not (text.startswith("(") and text.endswith(")")):
            raise ValueError("Incorrect syntax (incorrect use of parenthesis) in bit flag list.")
        text = text[1:-1].strip()
    separators = [sep for sep in ",+|" if sep in text]
    if len(separators) > 1:
        raise ValueError("Only one type of bit flag separator may be used in one expression.")
    if not separators and text == "":
        raise ValueError("Empty bit flag lists not allowed when either bitwise-NOT or "
                         "parenthesis are present.")
    flags = [f.strip() for f in (text.split(separators[0]) if separators else [text])]
    try:
        int(flags[0])
    except ValueError:
        flags = [PIXEL[f] for f in flags]
    mask = _sum_of_flags(flags, single_may_be_any=True)
    return ~mask if flip else mask


def _sum_of_flags(flags, single_may_be_any: bool) -> int:
    """Sum of the distinct ``flags``, each a power of two (a lone string value may be any)."""
    values = {int(f) for f in flags}
    if not (single_may_be_any and len(flags) == 1) and any(
            v < 1 or v.bit_count() != 1 for v in values):
        raise ValueError("Input list contains invalid (not powers of two) bit flags.")
    return sum(values)
