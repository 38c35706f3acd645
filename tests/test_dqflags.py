"""image3's copy of the JWST pixel DQ table is stdatamodels' table; its good_bits parser is
astropy's interpret_bit_flags."""

import pytest
from astropy.nddata.bitmask import interpret_bit_flags
from stdatamodels.jwst.datamodels import dqflags

from image3 import dqflags as ours
from image3.errors import ConfigError


def test_pixel_flags_equal_stdatamodels():
    assert ours.PIXEL == dqflags.pixel
    assert (ours.DO_NOT_USE, ours.OUTLIER) == (dqflags.pixel["DO_NOT_USE"],
                                               dqflags.pixel["OUTLIER"])


def test_interpret_bits_uses_jwst_flag_names():
    assert ours.interpret_bits("~DO_NOT_USE+NON_SCIENCE") == 1 | 512
    assert ours.interpret_bits("~DO_NOT_USE") == 1
    assert ours.interpret_bits(None) == 0  # DQ ignored
    assert ours.interpret_bits("0") == ours.interpret_bits(0) == 0xFFFFFFFF  # any flag is bad
    assert ours.interpret_bits(6) == ours.interpret_bits("SATURATED,JUMP_DET") == 0xFFFFFFFF ^ 6
    with pytest.raises(ConfigError, match="NOT_A_FLAG"):
        ours.interpret_bits("~NOT_A_FLAG")


SPECS = [
    None, 0, 6, 1 << 31, "", "  ", "none", "INDEF", "0", "6", "4", "~4", " ~ 4 ", "4,8,16",
    "4+8+16", "4|8|16", "~4,8,16", "~(4+8+16)", "((4+8))", "~(DO_NOT_USE+NON_SCIENCE)",
    "DO_NOT_USE, JUMP_DET", "JUMP_DET|DROPOUT", "~DO_NOT_USE+NON_SCIENCE+DEAD", "4,4,8",
    "GOOD", "~GOOD", "~", "()", "~()", "(4+8", "4+8)", "4(+8)", "4~8", "4+8,16", "4+6",
    "4,0", "-4", "DO_NOT_USE+4", "4+DO_NOT_USE", "do_not_use", "NOT_A_FLAG", 2.5, [4, 8], [6],
    ["DO_NOT_USE", "JUMP_DET"], [4, "JUMP_DET"], [], (4, 8), True,
]


@pytest.mark.parametrize("spec", SPECS)
def test_interpret_bits_reads_good_bits_as_astropy_does(spec):
    """Valid values give astropy's mask; values astropy refuses are one ConfigError."""
    try:
        expected = interpret_bit_flags(spec, flag_name_map=ours.PIXEL)
    except (KeyError, ValueError, TypeError):
        with pytest.raises(ConfigError, match="not a DQ bit specification"):
            ours.interpret_bits(spec)
        return
    bad = 0 if expected is None else ~int(expected) & 0xFFFFFFFF
    assert ours.interpret_bits(spec) == bad
