"""image3's copy of the JWST pixel DQ table is stdatamodels' table."""

from stdatamodels.jwst.datamodels import dqflags

from image3 import dqflags as ours


def test_pixel_flags_equal_stdatamodels():
    assert ours.PIXEL == dqflags.pixel
    assert (ours.DO_NOT_USE, ours.OUTLIER) == (dqflags.pixel["DO_NOT_USE"],
                                               dqflags.pixel["OUTLIER"])
