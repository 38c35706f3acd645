"""The instruments, detectors and bands of the synthetic sky: what a ``_cal`` file says about them.

Three imagers, each a table of facts (no physics here):

- NIRCam (``NRC_IMAGE``): short-wavelength detectors NRCA1-4 and NRCB1-4 (channel SHORT),
  long-wavelength NRCALONG and NRCBLONG (channel LONG); filter in the filter wheel, pupil
  CLEAR. MEDIUM8 readout, 5 groups.
- MIRI imager (``MIR_IMAGE``): MIRIMAGE, 1032 × 1024 pixels of which columns 0-3 and
  1028-1031 are reference pixels and the columns left of the imager's field
  (MIRI_IMAGER_FIRST_COLUMN) hold the coronagraphs (Lyot, three 4QPM) and the LRS slit: both
  are flagged DO_NOT_USE (and REFERENCE_PIXEL or NON_SCIENCE) with NaN SCI, as in real files.
  No pupil. FASTR1 readout, 50 groups.
- NIRISS (``NIS_IMAGE``): NIS; the short filters sit in the pupil wheel (filter CLEAR), the long
  ones in the filter wheel (pupil CLEARP). NIS readout, 11 groups.

Times are in seconds, surface brightness in MJy/sr. ``electrons_per_mjysr`` (gain ×
measurement time / PHOTMJSR) converts a band's surface brightness into detected electrons
per pixel, the basis of the noise model (``image3.synth.detector``). Pixel columns and rows
are 0-based, in the detector's full-frame science (DMS) frame.
"""

from dataclasses import dataclass
from functools import cache
from importlib.resources import files

from astropy.table import QTable

from image3.errors import ConfigError

#: NIRCam MEDIUM8 / full-frame frame time [s], also used for its subarrays and for NIRISS.
NIRCAM_FRAME_TIME_S = 10.73677
#: Columns of MIRIMAGE's full frame (0-based) left of which lie the coronagraphs and the LRS slit.
MIRI_IMAGER_FIRST_COLUMN = 360
MIRI_REFERENCE_COLUMNS = 4  # on each side of the MIRIMAGE frame


@dataclass(frozen=True)
class Readout:
    """An exposure's readout: pattern, frames per group, dropped frames, groups, integrations."""

    pattern: str
    nframes: int
    groupgap: int
    ngroups: int
    nints: int
    frame_time_s: float

    @property
    def group_time_s(self) -> float:
        return (self.nframes + self.groupgap) * self.frame_time_s

    @property
    def integration_time_s(self) -> float:
        return (self.ngroups * self.nframes + (self.ngroups - 1) * self.groupgap) * self.frame_time_s

    @property
    def exposure_time_s(self) -> float:
        return self.integration_time_s * self.nints

    @property
    def measurement_time_s(self) -> float:
        """Time between the first and last group of each integration, summed [s]."""
        return (self.ngroups - 1) * self.group_time_s * self.nints

    @property
    def duration_s(self) -> float:
        return (self.ngroups * (self.nframes + self.groupgap) + 1) * self.frame_time_s * self.nints


@dataclass(frozen=True)
class Instrument:
    """An imager: its exposure type, readout, detector electronics and the steps of its _cal files."""

    name: str
    exp_type: str
    readout: Readout
    gain_e_per_dn: float
    read_noise_e: float
    noutputs: int
    level2_steps: tuple[str, ...]


_NIR_STEPS = (
    "group_scale dq_init saturation ipc superbias refpix linearity dark_sub jump ramp_fit gain_scale"
    " assign_wcs flat_field photom"
).split()

INSTRUMENTS = {
    "NIRCAM": Instrument("NIRCAM", "NRC_IMAGE", Readout("MEDIUM8", 8, 2, 5, 1, NIRCAM_FRAME_TIME_S),
                         2.0, 8.0, 4, tuple(_NIR_STEPS)),
    "MIRI": Instrument("MIRI", "MIR_IMAGE", Readout("FASTR1", 1, 0, 50, 1, 2.77504), 5.5, 14.0, 1,
                       tuple(("group_scale dq_init saturation firstframe lastframe reset linearity rscd"
                              " dark_sub jump ramp_fit gain_scale assign_wcs flat_field photom").split())),
    "NIRISS": Instrument("NIRISS", "NIS_IMAGE", Readout("NIS", 1, 0, 11, 1, NIRCAM_FRAME_TIME_S),
                         1.6, 11.0, 4, tuple(_NIR_STEPS)),
}


@dataclass(frozen=True)
class Detector:
    """One detector: its instrument, channel (NIRCam SHORT/LONG), module, SCA number, and the
    key of its random streams (fixed: adding a detector changes no other detector's pixels)."""

    name: str
    instrument: str
    channel: str | None
    module: str | None
    sca: int
    key: int
    pixel_scale_arcsec: float  # nominal: cuts and margins only, never photometry


_SW, _LW = 0.030746, 0.0630
# NRCB1 and NRCB2 keep keys 0 and 1 (the generator's first two detectors).
DETECTORS = {
    d.name: d
    for d in (
        Detector("NRCB1", "NIRCAM", "SHORT", "B", 486, 0, _SW),
        Detector("NRCB2", "NIRCAM", "SHORT", "B", 487, 1, _SW),
        Detector("NRCB3", "NIRCAM", "SHORT", "B", 488, 2, _SW),
        Detector("NRCB4", "NIRCAM", "SHORT", "B", 489, 3, _SW),
        Detector("NRCA1", "NIRCAM", "SHORT", "A", 481, 4, _SW),
        Detector("NRCA2", "NIRCAM", "SHORT", "A", 482, 5, _SW),
        Detector("NRCA3", "NIRCAM", "SHORT", "A", 483, 6, _SW),
        Detector("NRCA4", "NIRCAM", "SHORT", "A", 484, 7, _SW),
        Detector("NRCALONG", "NIRCAM", "LONG", "A", 485, 8, _LW),
        Detector("NRCBLONG", "NIRCAM", "LONG", "B", 490, 9, _LW),
        Detector("MIRIMAGE", "MIRI", None, None, 493, 10, 0.1108),
        Detector("NIS", "NIRISS", None, None, 496, 11, 0.0656),
    )
}


@dataclass(frozen=True)
class Band:
    """One bandpass: the filter/pupil keywords, the channel whose detectors see it, the sky
    level range [MJy/sr], PHOTMJSR [MJy/sr per DN/s], pivot wavelength [µm] and m_AB − m_Vega."""

    name: str
    instrument: str
    filter: str
    pupil: str | None
    channel: str | None
    sky_mjysr: tuple[float, float]
    photmjsr: float
    pivot_um: float
    abvega_offset: float

    @property
    def electrons_per_mjysr(self) -> float:
        """Detected electrons per pixel per MJy/sr over the measurement time."""
        instrument = INSTRUMENTS[self.instrument]
        return instrument.gain_e_per_dn * instrument.readout.measurement_time_s / self.photmjsr

    @property
    def optical_elements(self) -> str:
        """The reference's product-name element: filter and pupil, sorted, lower case, '-'-joined."""
        elements = [e for e in (self.filter, self.pupil) if e]
        return "-".join(sorted(e.lower() for e in elements))


@cache
def _pivots() -> dict:
    table = QTable.read(files("image3") / "data" / "jwst_imaging_filters.ecsv", format="ascii.ecsv")
    return {(str(r["instrument"]), str(r["element"])): float(r["pivot_um"].value) for r in table}


def _band(instrument, name, filter, pupil, channel, sky, photmjsr, abvega):
    return Band(name, instrument, filter, pupil, channel, sky, photmjsr,
                _pivots()[(instrument, name)], abvega)


@cache
def bands() -> dict:
    """Every band the generator knows, by (instrument, band name)."""
    table = [
        *(_band("NIRCAM", f, f, "CLEAR", "SHORT", (0.1, 0.3), 0.5, ab)
          for f, ab in (("F090W", 0.48), ("F115W", 0.76), ("F150W", 1.21), ("F200W", 1.70))),
        *(_band("NIRCAM", f, f, "CLEAR", "LONG", (0.2, 0.5), 0.2, ab)
          for f, ab in (("F277W", 2.31), ("F356W", 2.82), ("F444W", 3.24))),
        *(_band("MIRI", f, f, None, None, sky, 0.3, ab)
          for f, sky, ab in (("F560W", (1.5, 3.0), 3.75), ("F770W", (8.0, 12.0), 4.38),
                             ("F1000W", (20.0, 30.0), 4.92))),
        *(_band("NIRISS", f, "CLEAR", f, None, (0.1, 0.3), 0.3, ab)
          for f, ab in (("F115W", 0.76), ("F150W", 1.21), ("F200W", 1.70))),
        *(_band("NIRISS", f, f, "CLEARP", None, (0.2, 0.5), 0.15, ab)
          for f, ab in (("F277W", 2.31), ("F356W", 2.82), ("F444W", 3.24))),
    ]
    return {(b.instrument, b.name): b for b in table}


#: The band of a program that names none.
DEFAULT_BANDS = {"NIRCAM": "F200W", "MIRI": "F770W", "NIRISS": "F150W"}


def band(instrument: str, name: str) -> Band:
    """A band by instrument (any case) and name (``F200W``); ConfigError if unknown."""
    key = (instrument.upper(), name.upper())
    if key not in bands():
        known = ", ".join(n for i, n in bands() if i == key[0]) or "none"
        raise ConfigError(f"unknown band {name!r} for {instrument} (known: {known})")
    return bands()[key]


def default_band() -> Band:
    """NIRCam F200W, the band of the default program."""
    return band("NIRCAM", DEFAULT_BANDS["NIRCAM"])


def band_detectors(band: Band, modules: str) -> tuple[str, ...]:
    """The detectors that see ``band`` in NIRCam ``modules`` ("A", "B" or "AB"; ignored elsewhere)."""
    if band.instrument == "MIRI":
        return ("MIRIMAGE",)
    if band.instrument == "NIRISS":
        return ("NIS",)
    if band.channel == "LONG":
        return tuple(f"NRC{m}LONG" for m in modules)
    return tuple(f"NRC{m}{k}" for m in modules for k in range(1, 5))
