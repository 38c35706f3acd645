"""Step parameters: one typed, frozen object per kind of job, built from the validated config.

photutils' configured finders are the model: values are checked once, when the object is made
(:class:`~image3.errors.ConfigError` naming the key), and a call site passes one object instead
of a row of keywords. Field names and meanings are the reference's (jwst step parameters, see
config/README.md); units are in config/README.md and in the docstrings of the science that reads
them.

No class has a default of its own: every default is defined once, in config/schema.yaml, and
Snakemake's validation fills it into the config before any class sees it (unit tests build
objects from the schema's defaults, :func:`image3.config.schema_defaults`).

How the workflow uses them:

- a rule passes a job ``Class.select(config[section])``: the keys that job depends on, so a
  changed key reruns exactly the jobs that read it (Snakemake's params trigger);
- the job's script builds ``Class.from_config(snakemake.params.<name>)`` once, at its edge, and
  hands the object to the science, which reads attributes;
- at parse time :func:`image3.config.check_consistency` makes every object once, so a value
  that cannot work stops the run before any job.

Light on purpose, like :mod:`image3.steps`: the Snakefile imports it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any, ClassVar

from .dqflags import interpret_bits
from .errors import ConfigError

__all__ = [
    "BY_SECTION",
    "Program",
    "OUTLIER_METHODS",
    "SKY_METHODS",
    "SKY_STATISTICS",
    "STARFINDERS",
    "AlignmentFit",
    "CatalogParameters",
    "FinalDrizzle",
    "FitStage",
    "FlagComparison",
    "OutputGrid",
    "ReferenceStars",
    "SingleDrizzle",
    "SipApproximation",
    "SkySolve",
    "SkyStatistics",
    "SourceFinding",
    "parse_pair",
]

STARFINDERS = ("iraf", "dao", "segmentation")
#: Degrees of the spline through a sparse pixel map (:func:`image3.wcs.pixel_map`).
PIXMAP_ORDERS = (1, 3)
SKY_METHODS = ("local", "global", "match", "global+match", "user")
#: ``mode`` is the peak of the pixel-value distribution found by a fit (see
#: :func:`image3.skymatch.sky_statistic`); ``imagestats_mode`` is the reference's coarse
#: histogram mode, kept for comparisons (the config does not offer it).
SKY_STATISTICS = ("mode", "imagestats_mode", "midpt", "median", "mean")
#: outlier_detection.method: this workflow's test, or jwst's algorithm exactly.
OUTLIER_METHODS = ("image3", "reference")


def _choice(name: str, value: Any, allowed: tuple) -> None:
    if value not in allowed:
        raise ConfigError(f"{name} must be one of {', '.join(map(str, allowed))}, not {value!r}")


def _bits(name: str, value) -> None:
    try:
        interpret_bits(value)
    except ConfigError as err:
        raise ConfigError(f"{name}: {err}") from None


def parse_pair(text, name: str = "") -> tuple[float, float]:
    """The reference's two-value string parameters ('5.0 4.0') as floats."""
    try:
        first, second = (float(v) for v in str(text).split())
    except ValueError:
        raise ConfigError(f"{name + ': ' if name else ''}expected two numbers such as "
                          f"'5.0 4.0', got {text!r}") from None
    return first, second


class _FromConfig:
    """What every parameter class offers: its keys, and itself made from a config section."""

    #: The config section the keys are read from.
    section: ClassVar[str]

    @classmethod
    def keys(cls) -> tuple[str, ...]:
        """The config keys this kind of job depends on, in a fixed order."""
        return tuple(f.name for f in fields(cls))

    @classmethod
    def select(cls, section: Mapping) -> dict:
        """{key: value} of :meth:`keys` from a config section (or a rule's ``params``); a
        missing key is a KeyError: the schema has filled every key of a validated config."""
        return {key: section[key] for key in cls.keys()}

    @classmethod
    def from_config(cls, section: Mapping):
        """The object from a validated config section (other keys of the section ignored)."""
        return cls(**cls.select(section))


# --------------------------------------------------------------------------------------------
# tweakreg


@dataclass(frozen=True)
class SourceFinding(_FromConfig):
    """Finding sources: the reference's ``make_tweakreg_catalog`` (tweakreg's per-exposure jobs,
    and the detection of the source_catalog step, whose section has the same keys).

    ``starfinder`` 'iraf' or 'dao' use the star-finder keys (``minsep_fwhm`` … ``peakmax``),
    'segmentation' the segmentation ones (``npixels`` … ``deblend``); all use
    ``snr_threshold`` (background RMS), ``kernel_fwhm`` and ``bkg_boxsize`` (pixels).
    """

    section = "tweakreg"

    starfinder: str
    snr_threshold: float
    kernel_fwhm: float
    bkg_boxsize: int
    minsep_fwhm: float
    sigma_radius: float
    sharplo: float
    sharphi: float
    roundlo: float
    roundhi: float
    brightest: int | None
    peakmax: float | None
    npixels: int
    connectivity: int
    nlevels: int
    contrast: float
    multithresh_mode: str
    localbkg_width: int
    apermask_method: str
    kron_params: list[float] | None
    deblend: bool

    def __post_init__(self):
        _choice("starfinder", self.starfinder, STARFINDERS)
        _choice("connectivity", self.connectivity, (4, 8))
        _choice("multithresh_mode", self.multithresh_mode, ("exponential", "linear", "sinh"))
        _choice("apermask_method", self.apermask_method, ("correct", "mask", "none"))


@dataclass(frozen=True)
class FitStage:
    """The matching and fit settings of one alignment stage (:attr:`AlignmentFit.relative`
    or :attr:`AlignmentFit.absolute`); angles in arcsec. ``prefix`` names the stage's keys
    in messages ('' or 'abs_')."""

    prefix: str
    minobj: int
    fitgeometry: str
    nclip: int
    sigma: float
    searchrad: float
    use2dhist: bool
    separation: float
    tolerance: float
    xoffset: float
    yoffset: float


@dataclass(frozen=True)
class AlignmentFit(_FromConfig):
    """Matching and fitting the source lists (tweakreg's join job): the relative stage's keys,
    the absolute stage's (``abs_*``; the absolute fit takes no initial offset), and this
    workflow's own: ``relative_method`` (auto, joint, sequential) and ``pair_minobj`` of the
    joint fit, and ``max_rms_pixels`` [pixels of the data] and ``max_rms`` [arcsec], above
    either of which a fit's residual RMS is not applied."""

    section = "tweakreg"

    enforce_user_order: bool
    expand_refcat: bool
    minobj: int
    fitgeometry: str
    nclip: int
    sigma: float
    searchrad: float
    use2dhist: bool
    separation: float
    tolerance: float
    xoffset: float
    yoffset: float
    relative_method: str
    pair_minobj: int
    max_rms_pixels: float
    max_rms: float
    abs_minobj: int
    abs_fitgeometry: str
    abs_nclip: int
    abs_sigma: float
    abs_searchrad: float
    abs_use2dhist: bool
    abs_separation: float
    abs_tolerance: float

    def __post_init__(self):
        # the reference's rule for both stages, whether or not an absolute fit will run
        for prefix, sep, tol in (("", self.separation, self.tolerance),
                                 ("abs_", self.abs_separation, self.abs_tolerance)):
            if not sep > math.sqrt(2.0) * tol:
                raise ConfigError(f"tweakreg.{prefix}separation ({sep}) must exceed sqrt(2) x "
                                  f"tweakreg.{prefix}tolerance ({tol})")

    @property
    def relative(self) -> FitStage:
        return FitStage("", self.minobj, self.fitgeometry, self.nclip, self.sigma,
                        self.searchrad, self.use2dhist, self.separation, self.tolerance,
                        self.xoffset, self.yoffset)

    @property
    def absolute(self) -> FitStage:
        return FitStage("abs_", self.abs_minobj, self.abs_fitgeometry, self.abs_nclip,
                        self.abs_sigma, self.abs_searchrad, self.abs_use2dhist,
                        self.abs_separation, self.abs_tolerance, 0.0, 0.0)


@dataclass(frozen=True)
class ReferenceStars(_FromConfig):
    """Which rows of the absolute reference catalogue (``abs_refcat``) the absolute fit uses:
    Gaia G magnitudes from ``abs_gmag_bright`` to ``abs_gmag_faint`` [mag] (None: no limit on
    that side; see :func:`image3.refcat.within_magnitudes`)."""

    section = "tweakreg"

    abs_gmag_bright: float | None
    abs_gmag_faint: float | None

    def __post_init__(self):
        if None not in (self.abs_gmag_bright, self.abs_gmag_faint) and not (
                self.abs_gmag_bright < self.abs_gmag_faint):
            raise ConfigError(f"tweakreg.abs_gmag_bright ({self.abs_gmag_bright}) must be less "
                              f"than tweakreg.abs_gmag_faint ({self.abs_gmag_faint})")


@dataclass(frozen=True)
class SipApproximation(_FromConfig):
    """The FITS TAN-SIP approximation of a corrected gwcs written into each ``_crf``'s SCI
    header (the flag jobs); errors in pixels, a degree of None: the lowest that meets them."""

    section = "tweakreg"

    sip_approx: bool
    sip_max_pix_error: float
    sip_degree: int | None
    sip_max_inv_pix_error: float
    sip_inv_degree: int | None
    sip_npoints: int


# --------------------------------------------------------------------------------------------
# skymatch


@dataclass(frozen=True)
class SkyStatistics(_FromConfig):
    """Measuring one member's sky (the per-member jobs): the pixels used (``dqbits``, the
    limits ``lower``/``upper`` in MJy/sr) and the statistic (``skystat``, clipped ``nclip``
    times at ``lsigma``/``usigma`` standard deviations, histograms ``binwidth`` of them wide).
    The offsets from overlapping members are measured whatever the sky method: only the solve
    (:class:`SkySolve`) depends on it."""

    section = "skymatch"

    dqbits: int | str | None
    skystat: str
    lower: float | None
    upper: float | None
    nclip: int
    lsigma: float
    usigma: float
    binwidth: float

    def __post_init__(self):
        _choice("skymatch.skystat", self.skystat, SKY_STATISTICS)
        if self.lower is not None and self.upper is not None and self.lower > self.upper:
            raise ConfigError(f"skymatch.lower = {self.lower} is above skymatch.upper = "
                              f"{self.upper}")
        if self.nclip < 0 or self.lsigma <= 0 or self.usigma <= 0 or self.binwidth <= 0:
            raise ConfigError("skymatch: nclip must be >= 0 and lsigma, usigma, binwidth > 0")
        _bits("skymatch.dqbits", self.dqbits)


@dataclass(frozen=True)
class SkySolve(_FromConfig):
    """One sky level per group from the members' statistics (the solve job): ``skymethod``,
    ``match_down``, ``subtract`` and, for 'user', ``skylist`` (a file; empty: none)."""

    section = "skymatch"

    skymethod: str
    match_down: bool
    subtract: bool
    skylist: str

    def __post_init__(self):
        _choice("skymatch.skymethod", self.skymethod, SKY_METHODS)


# --------------------------------------------------------------------------------------------
# outlier_detection


@dataclass(frozen=True)
class SingleDrizzle(_FromConfig):
    """Drizzling one exposure group onto the outlier-detection grid (the single jobs):
    drizzle weight, drop size and kernel, the DQ flags to ignore, ``maskpt`` (pixels below
    this fraction of the clipped mean weight are left out), ``resample_data`` (false: the
    exposures' own pixels), the method and the pixel map's evaluation step (pixels) and
    spline degree."""

    section = "outlier_detection"

    weight_type: str
    pixfrac: float
    kernel: str
    good_bits: int | str | None
    maskpt: float
    resample_data: bool
    method: str
    pixmap_stepsize: int
    pixmap_order: int

    def __post_init__(self):
        _choice("outlier_detection.method", self.method, OUTLIER_METHODS)
        _choice("outlier_detection.pixmap_order", self.pixmap_order, PIXMAP_ORDERS)
        _bits("outlier_detection.good_bits", self.good_bits)


@dataclass(frozen=True)
class FlagComparison(_FromConfig):
    """Comparing one exposure with the blotted median (the flag jobs): ``snr`` and ``scale``,
    two numbers each as the reference writes them ('5.0 4.0'), ``backg`` [MJy/sr],
    ``resample_data``, the method and the pixel map's evaluation step (pixels) and spline
    degree."""

    section = "outlier_detection"

    snr: str
    scale: str
    backg: float
    resample_data: bool
    method: str
    pixmap_stepsize: int
    pixmap_order: int

    def __post_init__(self):
        _choice("outlier_detection.method", self.method, OUTLIER_METHODS)
        _choice("outlier_detection.pixmap_order", self.pixmap_order, PIXMAP_ORDERS)
        parse_pair(self.snr, "outlier_detection.snr")
        parse_pair(self.scale, "outlier_detection.scale")

    @property
    def snr_pair(self) -> tuple[float, float]:
        return parse_pair(self.snr, "outlier_detection.snr")

    @property
    def scale_pair(self) -> tuple[float, float]:
        return parse_pair(self.scale, "outlier_detection.scale")


# --------------------------------------------------------------------------------------------
# resample


@dataclass(frozen=True)
class FinalDrizzle(_FromConfig):
    """Drizzling the exposures into the ``_i2d`` (the flag jobs' contributions and the resample
    job): drop size, kernel, ``fillval`` (SCI where nothing contributes), weight, DQ flags to
    ignore, the pixel map's step (pixels) and spline degree and which planes (DQ: the inputs'
    propagated, ``propagate_dq``) and tables the product gets."""

    section = "resample"

    pixfrac: float
    kernel: str
    fillval: str
    weight_type: str
    good_bits: int | str | None
    pixmap_stepsize: int
    pixmap_order: int
    enable_ctx: bool
    enable_err: bool
    report_var: bool
    blendheaders: bool
    propagate_dq: bool

    def __post_init__(self):
        _choice("resample.pixmap_order", self.pixmap_order, PIXMAP_ORDERS)
        _bits("resample.good_bits", self.good_bits)


@dataclass(frozen=True)
class OutputGrid(_FromConfig):
    """The ``_i2d``'s grid (the grid jobs): pixel scale (a ratio
    to the input's, or arcsec), rotation [deg], reference pixel and point, shape, or a gwcs
    file; ``max_output_pixels`` refuses an absurd grid."""

    section = "resample"

    pixel_scale_ratio: float
    pixel_scale: float | None
    rotation: float | None
    crpix: list[float] | None
    crval: list[float] | None
    output_shape: list[int] | None
    output_wcs: str
    max_output_pixels: int | None  # None: no limit (sky tiles)


# --------------------------------------------------------------------------------------------
# source_catalog


@dataclass(frozen=True)
class CatalogParameters(_FromConfig):
    """The source catalogue of the mosaic (the source_catalog job): reference files (empty:
    a model, with a warning), the apertures' encircled energies [%], the extended-source test,
    the centroids, and the detection (:class:`SourceFinding`, from the same section)."""

    section = "source_catalog"

    apcorr_file: str
    abvegaoffset_file: str
    aperture_ee1: int
    aperture_ee2: int
    aperture_ee3: int
    ci1_star_threshold: float
    ci2_star_threshold: float
    extended_method: str
    ci_extended_margin: float
    centroid: str
    finding: SourceFinding

    def __post_init__(self):
        ees = [self.aperture_ee1, self.aperture_ee2, self.aperture_ee3]
        if not ees[0] < ees[1] < ees[2]:
            raise ConfigError(f"source_catalog.aperture_ee1/2/3 = {ees} must increase strictly")
        _choice("source_catalog.extended_method", self.extended_method,
                ("point_source_ci", "reference"))
        _choice("source_catalog.centroid", self.centroid, ("windowed", "moments"))

    @classmethod
    def _own_keys(cls) -> tuple[str, ...]:
        return tuple(f.name for f in fields(cls) if f.name != "finding")

    @classmethod
    def keys(cls) -> tuple[str, ...]:
        return cls._own_keys() + SourceFinding.keys()

    @classmethod
    def from_config(cls, section: Mapping) -> CatalogParameters:
        return cls(**{key: section[key] for key in cls._own_keys()},
                   finding=SourceFinding.from_config(section))


# --------------------------------------------------------------------------------------------
# program (several associations)


@dataclass(frozen=True)
class Program(_FromConfig):
    """How a program's associations are made together: one projection per target or not, an
    integer pixel ratio between bands, one shape for all bands (:mod:`image3.program_grid`),
    and one alignment of each target's bands (:func:`image3.tweakreg.align_products`)."""

    section = "program"

    common_grid: bool
    integer_ratio: bool
    same_shape: bool
    joint_alignment: bool
    reference_band: str


#: The parameter classes made from each config section.
BY_SECTION = {
    "tweakreg": (SourceFinding, AlignmentFit, ReferenceStars, SipApproximation),
    "skymatch": (SkyStatistics, SkySolve),
    "outlier_detection": (SingleDrizzle, FlagComparison),
    "resample": (FinalDrizzle, OutputGrid),
    "source_catalog": (CatalogParameters,),
    "program": (Program,),
}
