"""File and product names of the synthetic program, as the JWST archive would give them.

Program PROGRAM, observation OBSERVATION. An exposure is
``jw<program><obs><visit>_<visit group><sequence><activity>_<exposure>``, which is also its
group id (shared by the detectors that took it): visit = the mosaic pointing (1-based,
row-major; 001 without a mosaic), visit group 02, sequence 1, activity = the exposure set
(bands taken together; 01 for the first), exposure = the dither within the pointing (1-based).
A member (one detector of one exposure) is ``<exposure>_<detector lower case>``, its file
``<member>_cal.fits``.

The image3 ASN of a one-band program is ``jw<program>-o<obs>_image3_asn.json``; with several
bands each has its own, ``jw<program>-o<obs>_image3_<nnnnn>_asn.json`` (the reference's
pattern without its time stamp, numbered by band from 00001). Its product is the reference's
``jw<program>-o<obs>_t001_<instrument>_<elements>`` (elements: filter and pupil, lower case,
sorted, joined by '-'; e.g. ``clear-f200w``, ``f770w``, ``clearp-f444w``).
"""

from image3.errors import ConfigError

PROGRAM = "99999"
OBSERVATION = "001"
ASN_ID = f"o{OBSERVATION}"
VISIT_GROUP, SEQUENCE = "02", "1"
#: The product of the default program (NIRCam F200W).
PRODUCT_NAME = f"jw{PROGRAM}-{ASN_ID}_t001_nircam_clear-f200w"
#: The default program's detectors (``detectors=1``: the first; ``detectors=2``: both).
DETECTORS = ("NRCB1", "NRCB2")


def exposure_name(exposure: int, visit: int = 1, activity: int = 1) -> str:
    """Name (and group id) of dither ``exposure`` of pointing ``visit`` in exposure set ``activity``."""
    return f"jw{PROGRAM}{OBSERVATION}{visit:03d}_{VISIT_GROUP}{SEQUENCE}{activity:02d}_{exposure:05d}"


def member_name(exposure: str, detector: str) -> str:
    """Member root: an exposure's name and the detector, lower case."""
    return f"{exposure}_{detector.lower()}"


def member_names(n: int, detectors: int = 1) -> list[str]:
    """Members of the default layout (one pointing, one band), by exposure then detector."""
    check_counts(n, detectors)
    return [member_name(exposure_name(k), d) for k in range(1, n + 1) for d in DETECTORS[:detectors]]


def group_id(member: str) -> str:
    """Group id of a member (its root without the detector): shared by the detectors of an exposure."""
    return member.rsplit("_", 1)[0]


def cal_filename(member: str) -> str:
    """File name of a member's level-2 exposure."""
    return f"{member}_cal.fits"


def asn_filename(sequence: int | None = None) -> str:
    """File name of the image3 association; ``sequence`` (1-based) numbers the bands of a program."""
    if sequence is None:
        return f"jw{PROGRAM}-{ASN_ID}_image3_asn.json"
    return f"jw{PROGRAM}-{ASN_ID}_image3_{sequence:05d}_asn.json"


def product_name(instrument: str, optical_elements: str) -> str:
    """The reference's level-3 product name for one band of this observation."""
    return f"jw{PROGRAM}-{ASN_ID}_t001_{instrument.lower()}_{optical_elements}"


def check_counts(n: int, detectors) -> None:
    """ConfigError unless n ≥ 1 and ``detectors`` is 1, 2 or a NIRCam module set (A, B, AB)."""
    if n < 1:
        raise ConfigError(f"number of exposures must be at least 1, got {n}")
    if detectors not in (1, 2, "A", "B", "AB"):
        raise ConfigError(f"detectors must be 1, 2, A, B or AB, got {detectors}")
