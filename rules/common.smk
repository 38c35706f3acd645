"""Config validation, the association, and the path and input helpers every stage uses."""

import copy
import functools
import re
import sys
from pathlib import Path

import numpy as np

from snakemake.utils import validate

import image3.config as i3config
from image3.asn import Association, Member, crf_name, pair_partners, product_names, read_association
from image3.errors import GridError, Image3Error
from image3.errors import stop_before_any_job as fail
from image3.footprints import estimated_grid_pixels, parse_s_region
from image3.input_identity import update_stamp
from image3.inspect import save_inspection, screen
from image3.parameters import CatalogParameters, FinalDrizzle, OutputGrid, SkySolve, SkyStatistics
from image3.runtime.jobserver import start as start_job_server
from image3.runtime.resources import (background_boxes_mem_mb, background_boxes_runtime_min,
                                      catalog_mem_mb, catalog_runtime_min, grid_pixels, grid_shape,
                                      image_pixels, median_mem_mb, median_runtime_min,
                                      resample_mem_mb, resample_runtime_min)
from image3.runtime.output_folder import at_start, missing_members, read_members, settle
from image3.runtime.output_folder import lock as lock_output
from image3.runtime.runjob import clear_errors, recorded_errors
from image3.runtime.snakemake_process import (handle_sigterm_off_the_main_thread,
                                               print_stop_reasons, unwritable_folder)
from image3.steps import intermediate_name
from image3.background import Lattice
from image3.tiles import read_tiles, tiles_holding


# Included by a user's workflow as a Snakemake module (README): its config: is the user's, the
# user's workflow has its own default target, and onstart/onerror do not run (Snakemake runs
# only the main Snakefile's).
AS_MODULE = not workflow.modifier.is_main_snakefile()
SCHEMA_PATH = workflow.source_path("../config/schema.yaml")
try:
    _schema = i3config.load_schema(SCHEMA_PATH)
    _coerced = i3config.coerce(dict(config), _schema)
    _as_given = copy.deepcopy(_coerced)  # before the schema's defaults fill config in
    config.clear()
    config.update(_coerced)
    i3config.validate(config, _schema)
    validate(config, SCHEMA_PATH)  # Snakemake's validation also fills the schema defaults
    i3config.check_consistency(config)
except Image3Error as exc:
    fail(exc)
SCHEMA_DEFAULTS = i3config.schema_defaults(_schema)

OUT = config["output_dir"].rstrip("/")
WORK = i3config.work_dir(config).rstrip("/")
# members whose source list and geometry another association of the run makes (rules/program.smk)
MEMBER_WORK_DIRS = {m: str(Path(d)) for m, d in config["member_work_dirs"].items()}
LOGS = f"{WORK}/logs"
BENCH = f"{WORK}/benchmarks"
ENV = "../envs/image3.yaml"
DEMO = not config["asn"]
DEMO_DIR = f"{OUT}/demo_input"


def demo_association():
    """The demo association as it will be written by rule demo_data (names known in advance)."""
    from image3 import synth

    names = synth.member_names(config["demo"]["n_exposures"])
    members = tuple(
        Member(name=n, path=Path(DEMO_DIR, f"{n}_cal.fits"), group_id=synth.group_id(n))
        for n in names
    )
    return Association(product=synth.PRODUCT_NAME, asn_id=synth.ASN_ID, members=members,
                       source=Path(DEMO_DIR, synth.asn_filename()))


INSPECTION = f"{WORK}/inspection.json"
try:
    ASN, INSPECTED = (demo_association(), {}) if DEMO else screen(
        read_association(ASSOCIATIONS[0]), INSPECTION, weighted_by_exptime="exptime" in (
            config["resample"]["weight_type"], config["outlier_detection"]["weight_type"]))
except Image3Error as exc:
    fail(exc)
for _line in ASN.warnings:
    print(f"image3: WARNING: {_line}", file=sys.stderr)


def first_member_facts():
    """INSTRUME/FILTER/PUPIL/DETECTOR of the association's first member (the demo's are
    known before its files exist)."""
    if DEMO:
        from image3 import synth

        return {"instrument": synth.INSTRUMENT, "filter": synth.FILTER, "pupil": synth.PUPIL,
                "detector": synth.DETECTORS[0]}
    return INSPECTED[str(ASN.members[0].path)]["facts"]


# What the user set (config/config.yaml, --configfile, --config; as a module, its config:): the
# parameter table never changes it, and the QA table calls it "user".
USER_SETTINGS = _as_given if AS_MODULE else i3config.user_settings(
    workflow.configfiles, workflow.config_settings.overwrite_config)
# Per-instrument/filter parameters (config/parameters.yaml): over the schema's defaults, under
# the user's settings.
PARAMETER_TABLE = config["parameter_table"] or workflow.source_path("../config/parameters.yaml")
TABLE_VALUES = {}
if config["parameter_table"] != "none":
    try:
        _updated, TABLE_VALUES = i3config.apply_parameter_table(
            config, i3config.read_parameter_table(PARAMETER_TABLE, _schema),
            first_member_facts(), USER_SETTINGS)
        i3config.check_consistency(_updated)
    except Image3Error as exc:
        fail(exc)
    config.update(_updated)
if TABLE_VALUES:
    _facts = first_member_facts()
    print(f"image3: {' '.join(str(_facts[k]) for k in ('instrument', 'filter') if _facts[k])}: "
          f"{', '.join(f'{k}={v}' for k, v in TABLE_VALUES.items())} "
          f"(from {Path(str(PARAMETER_TABLE)).name})", file=sys.stderr)

MEMBERS = [m.name for m in ASN.members]
GROUPS = list(ASN.groups)  # exposures: one single drizzle each in outlier detection
# member -> its group in tweakreg (tweakreg.group_by: the members that move together)
TWEAKREG_GROUP = {m: g for g, names in ASN.grouped_by(config["tweakreg"]["group_by"]).items()
                  for m in names}
SINGLE = ASN.is_single_exposure
PRODUCTS = {kind: f"{OUT}/{name}" for kind, name in product_names(ASN.product).items()}
TILES = config["tiles"]
TILE_NAME = r"t\d\d-\d\d"


def estimated_mosaic_pixels():
    """The final grid's pixels: the user's output_shape, else estimated from the members'
    S_REGION and shapes (image3.footprints.estimated_grid_pixels); None when unknown (the
    demo, a user's output_wcs, a member without a readable S_REGION)."""
    grid = config["resample"]
    if grid["output_shape"]:
        return grid["output_shape"][0] * grid["output_shape"][1]
    if DEMO or grid["output_wcs"]:
        return None
    facts = [INSPECTED[str(m.path)]["facts"] for m in ASN.members]
    try:
        polygons = [np.vstack(parse_s_region(f["s_region"])) for f in facts]
    except (GridError, AttributeError, KeyError):  # no S_REGION (None) or a malformed one
        return None
    return estimated_grid_pixels(polygons, [f["shape"] for f in facts], grid["pixel_scale"],
                                 grid["pixel_scale_ratio"])


def sky_tiles_wanted():
    """Whether the products are made as sky tiles (rules/tiles.smk): tiles.above_pixels 0, or
    a mosaic estimated larger than it (said in one line)."""
    limit = TILES["above_pixels"]
    if limit is None or not step_runs("resample"):
        return False
    if limit == 0:
        return True
    pixels = estimated_mosaic_pixels()
    if pixels is None or pixels <= limit:
        return False
    side = int(pixels ** 0.5)
    print(f"image3: the mosaic will be about {pixels / 1e6:.0f} million pixels (~{side} x {side}; "
          f"tiles.above_pixels = {limit}): made as sky tiles of {TILES['size']}² pixels, an "
          f"_i2d, _segm and _cat each and one merged _cat.ecsv", file=sys.stderr)
    return True


def tile_product(kind, tile="{tile}"):
    """A sky tile's product (kind i2d, cat or segm): <product>_<tile>_<kind>.<ext>."""
    stem, suffix = PRODUCTS[kind].rsplit(f"_{kind}.", 1)
    return f"{stem}_{tile}_{kind}.{suffix}"


def tile_list():
    """The sky tiles, once the tiles checkpoint has run (image3.tiles.read_tiles); the table is
    read once per version of its file (the DAG asks for it once per tile job)."""
    path = Path(checkpoints.tiles.get().output[0])
    return _tiles_read(path, path.stat().st_mtime_ns)


@functools.lru_cache(maxsize=4)
def _tiles_read(path, mtime_ns):
    return tuple(read_tiles(path))


def tile_of(name):
    return next(t for t in tile_list() if t.name == name)


def tile_pixels(name, region="window"):
    """Pixels of a tile's window or of its inner region."""
    return region_pixels(getattr(tile_of(name), region))


def region_pixels(region):
    y0, y1, x0, x1 = region
    return (y1 - y0) * (x1 - x0)


def box_lattice():
    """The lattice of the catalogue's background boxes over the tiled grid
    (image3.background)."""
    return Lattice.of(grid_shape(f"{WORK}/grid_shape.json"),
                      config["source_catalog"]["bkg_boxsize"])


def box_region(name):
    """The pixels of the background boxes that start in tile ``name``."""
    lattice = box_lattice()
    return lattice.pixels(lattice.boxes_starting_in(tile_of(name).inner))


def box_sources(name):
    """The tiles that hold the pixels of the background boxes that start in tile ``name``."""
    return tiles_holding(box_region(name), tile_list())


def piece_pixels(piece, grid_shape):
    """Pixels of a median piece: the outlier grid's (its shape file ``grid_shape``), or a tile's
    inner region."""
    return grid_pixels(grid_shape) if piece == "all" else tile_pixels(piece, "inner")


def median_pieces(member=None):
    """The median of outlier detection: one file, or one per sky tile (rule median); with
    ``member``, the pieces its flagging reads (image3.tiles.Tile.core), ancient for a member
    that keeps its flags."""
    if not TILED:
        return [f"{WORK}/median/all.fits"]
    pieces = [f"{WORK}/median/{t.name}.fits" for t in tile_list()
              if member is None or member in t.core]
    return [ancient(p) for p in pieces] if member in MADE_BEFORE else pieces


def median_singles(piece):
    """The single images a median piece combines: every group's, or those of the groups of the
    tile's members."""
    if piece == "all":
        return list(OUTLIER_SINGLES.values())
    groups = dict.fromkeys(ASN.member(m).group_id for m in tile_of(piece).members)
    return [OUTLIER_SINGLES[g] for g in groups]


def _alternatives(values):
    return "|".join(re.escape(v) for v in values)


wildcard_constraints:
    member=_alternatives(MEMBERS),
    group=_alternatives(GROUPS),


def step_runs(step):
    """Whether a step runs for this input, following the reference's own skip rules."""
    if config[step]["skip"]:
        return False
    if step == "tweakreg":
        return not SINGLE and (len(set(TWEAKREG_GROUP.values())) > 1
                               or bool(config["tweakreg"]["abs_refcat"]))
    if step in ("skymatch", "outlier_detection"):
        return not SINGLE and len(MEMBERS) > 1
    return True


# sky tiles (rules/tiles.smk)?
TILED = sky_tiles_wanted()
# A tiled run keeps its grid, alignment and sky levels for members added later (image3/kept.py):
# the work folder they are kept in, or None; tiles.keep_previous false refits them all (what the
# joins make is kept all the same).
KEEP_IN = WORK if TILED else None
REFIT = not TILES["keep_previous"]
# When members were added since the last run, the members made before: they keep their outlier
# flags (their flag jobs ignore the median's date, ancient, which the new members change) and
# their sky partners (sky_partners).
_PREVIOUS = set(read_members(WORK)) if KEEP_IN and not REFIT else set()
MADE_BEFORE = _PREVIOUS & set(MEMBERS) if _PREVIOUS and set(MEMBERS) - _PREVIOUS else set()


def cal_path(member):
    return str(ASN.member(member).path)


def identity_stamp(member):
    """The identity of the member's _cal its work was made from (image3.input_identity): an
    input of every job that reads the _cal (none for the demo, whose files a rule makes)."""
    return [] if DEMO else f"{WORK}/{member}/input.json"


def wcs_sidecar(member):
    """The corrected gwcs of a member (a pickle: image3.datamodel.write_sidecar), when tweakreg
    runs."""
    return f"{WORK}/{member}/wcs.pkl" if step_runs("tweakreg") else []


def geometry_sidecar(member):
    """A member's gwcs, shape and wcsinfo (a pickle) written by find_sources, when it runs."""
    return f"{member_work(member)}/{member}/geometry.pkl" if step_runs("tweakreg") else []


def member_work(member):
    """The work folder of a member's source list and geometry: this association's, or that of
    the association of the run that makes them (member_work_dirs)."""
    return MEMBER_WORK_DIRS.get(member, WORK)


def sky_sidecar(member):
    """The skymatch record of a member, when skymatch runs."""
    return f"{WORK}/{member}/sky.json" if step_runs("skymatch") else []


def crf_path(member):
    return f"{OUT}/{crf_name(member, ASN.asn_id)}"


def intermediate_path(root, suffix):
    """A save_intermediate_results file: the reference's name (intermediate_name) in output_dir."""
    return f"{OUT}/{intermediate_name(root, ASN.asn_id, suffix)}"


def crf_pattern():
    """The _crf output with a {member} wildcard (crf_name's rule)."""
    return f"{OUT}/{crf_name('{member}', ASN.asn_id)}"


def exposure_files(member):
    """What a per-member job reads: the _cal and the sidecars of the stages that ran."""
    return {"cal": cal_path(member), "identity": identity_stamp(member),
            "geometry": geometry_sidecar(member), "wcs": wcs_sidecar(member),
            "sky": sky_sidecar(member)}


def final_exposure_files(member):
    """The final resample reads the _crf when outlier detection ran, else _cal + sidecars."""
    if step_runs("outlier_detection"):
        return {"cal": crf_path(member)}
    return exposure_files(member)


def layout_files(member):
    """The layout reads each member's gwcs as tweakreg left it: no sky record yet."""
    return {**exposure_files(member), "sky": []}


def sky_partners(member):
    """The members whose offsets a member's sky_statistics job measures (image3.asn.
    pair_partners: every pair once); when members were added to a kept tiled run, those made
    before keep their partners among themselves and each new member takes every one of them
    and its share of the new ones, so only the new members' jobs run."""
    if not MADE_BEFORE:
        return pair_partners(MEMBERS, member)
    before = [m for m in MEMBERS if m in MADE_BEFORE]
    if member in MADE_BEFORE:
        return pair_partners(before, member)
    return before + pair_partners([m for m in MEMBERS if m not in MADE_BEFORE], member)


def sky_partner_files(member):
    """The files of a member's sky partners (sky_partners)."""
    return [path for partner in sky_partners(member)
            for path in layout_files(partner).values() if path]


def member_row(member, files_of):
    """A member's image3.datamodel.MemberFiles fields (passed to scripts as params): name,
    group id and the files of ``files_of``, None for the sidecars of stages that do not run."""
    files = files_of(member)
    return {"name": member, "group_id": ASN.member(member).group_id,
            **{k: files.get(k) or None for k in ("cal", "geometry", "wcs", "sky")}}


def member_inputs(files_of, members):
    """Every file ``files_of`` gives for each of ``members``: what a join over them reads."""
    return [f for m in members for f in files_of(m).values() if f]


def member_table(files_of, members=MEMBERS):
    """:func:`member_row` of every member (or of ``members``), in association order."""
    return [member_row(m, files_of) for m in members]


def layout_inputs():
    """What the layout jobs read: every member's sidecars when tweakreg runs, else its _cal."""
    if step_runs("tweakreg"):
        return {"geometry": [geometry_sidecar(m) for m in MEMBERS],
                "wcs": [wcs_sidecar(m) for m in MEMBERS]}
    return {"cals": [cal_path(m) for m in MEMBERS],
            "identities": [identity_stamp(m) for m in MEMBERS if not DEMO]}


def grid_params(name):
    """Grid parameters (OutputGrid's keys): the resample section's for ``grid``; for
    ``grid_outlier`` the schema's defaults but the user's ``max_output_pixels`` (outlier
    detection always drizzles onto the reference's default grid)."""
    final = OutputGrid.select(config["resample"])
    if TILED:  # a tiled mosaic has no size limit (image3.tiles.MAX_TILES_A_SIDE)
        final["max_output_pixels"] = None
    if name == "grid":
        return final
    default = OutputGrid.select(SCHEMA_DEFAULTS["resample"])
    return {**default, "max_output_pixels": final["max_output_pixels"]}


def outlier_grid():
    """The grid outlier detection uses: the final grid itself when the two coincide (the flag
    job then drizzles onto the final grid with the pixel map of its comparison) or with sky
    tiles (one projection, cut into the same tiles for the median and the products)."""
    same = grid_params("grid_outlier") == grid_params("grid") or TILED
    return f"{WORK}/grid.pkl" if same else f"{WORK}/grid_outlier.pkl"


def resample_inputs(members=MEMBERS):
    """What the final resample of ``members`` (all, or a sky tile's) reads: with outlier
    detection their contributions (drizzled by the flag jobs) and the first one's _crf (the
    product's base metadata); without it, their files."""
    if step_runs("outlier_detection"):
        return {"contributions": [f"{WORK}/{m}/contribution.npz" for m in members],
                "first": crf_path(members[0])}
    return {"exposures": member_inputs(final_exposure_files, members)}


def skystats_path(member):
    return f"{WORK}/{member}/skystats.json"


def skymatch_params():
    """What the sky solve (skymatch job) depends on: SkySolve's keys."""
    return SkySolve.select(config["skymatch"])


def sky_statistics_params():
    """What a member's sky statistics (sky_statistics job) depend on: SkyStatistics'
    keys, not the solve's, so a new skymethod, match_down, subtract or skylist reruns the solve
    alone, not the per-member jobs. The pair offsets are measured whatever the method (~0.6 s
    per pair of dithered 2048² members that 'local', 'global' and 'user' do not use)."""
    return SkyStatistics.select(config["skymatch"])


def catalog_params():
    """CatalogParameters' keys of the source_catalog section; the demo uses the generator's own
    APCORR/ABVEGAOFFSET files."""
    params = CatalogParameters.select(config["source_catalog"])
    if DEMO:
        for key, name in (("apcorr_file", "apcorr.fits"), ("abvegaoffset_file", "abvegaoffset.asdf")):
            params[key] = params[key] or f"{DEMO_DIR}/truth/{name}"
    return params


def final_outputs():
    """The products of the steps that run, and the optional files asked for (SAVED_CATALOGS:
    rules/tweakreg.smk, SAVED_STEP_RESULTS: rules/tweakreg.smk and skymatch.smk,
    SAVED_INTERMEDIATES: rules/outlier_detection.smk)."""
    outputs = []
    if step_runs("outlier_detection"):
        outputs += [crf_path(m) for m in MEMBERS]
    if step_runs("resample") and not TILED:
        outputs.append(PRODUCTS["i2d"])
        if step_runs("source_catalog"):
            outputs += [PRODUCTS["cat"], PRODUCTS["segm"]]
    elif step_runs("resample") and step_runs("source_catalog"):
        outputs.append(PRODUCTS["cat"])  # merged from the tiles' (rule merge_catalog)
    return outputs + SAVED_CATALOGS + SAVED_STEP_RESULTS + SAVED_INTERMEDIATES


def tiled_outputs(wildcards):
    """With sky tiles, every tile's products (known once the grid is: the tiles checkpoint)."""
    if not TILED:
        return []
    kinds = ("i2d", "cat", "segm") if step_runs("source_catalog") else ("i2d",)
    return [tile_product(kind, t.name) for t in tile_list() for kind in kinds]


QA = str(Path(config["qa"]["folder"] or f"{OUT}/qa"))  # QA plots (rules/qa.smk)


def qa_plot(name, step):
    """A QA plot's path flagged for the report (caption report/<name>.rst, category: its step)."""
    return report(f"{QA}/{name}.png", caption=f"../report/{name}.rst", category=step,
                  labels={"step": step, "figure": name})


def qa_outputs():
    """The QA plots of the stages that run, and the table of the run's parameters."""
    if not config["qa"]["plots"]:
        return []
    plots = {"mosaic": "resample", "tweakreg": "tweakreg", "skymatch": "skymatch",
             "outliers": "outlier_detection", "catalog": "source_catalog"}
    if TILED:  # the catalogue plot reads one whole _i2d
        plots.pop("catalog")
    return [f"{QA}/{name}.png" for name, step in plots.items()
            if step_runs(step) and (step != "source_catalog" or step_runs("resample"))
            ] + [f"{QA}/parameters.html"]


def claim_output():
    """The run's claim on output_dir (image3.runtime.output_folder), once every check of the
    configuration passed (rules/product.smk calls it last; in the Snakemake process only, not
    in a cluster job's): its lock, the check of the members the products were last
    made from, and each member's input identity (image3.input_identity). Returns the lock's
    refusal, which stops the run in onstart (a dry run during another run goes on); as a module
    (no onstart of ours) a refusal stops at once."""
    refusal = None
    try:
        lock_output(OUT)
    except OSError as exc:  # an output_dir that cannot be created or written
        fail(unwritable_folder(exc, OUT))
    except Image3Error as exc:
        if AS_MODULE:
            fail(exc)
        refusal = str(exc)
    if refusal is None:
        current = {m.name: {"cal": str(m.path), "crf": crf_path(m.name)} for m in ASN.members}
        gone, dropped = missing_members(read_members(WORK), current,
                                        {str(p) for p in ASN.listed})
        if gone and not config["allow_missing_members"]:
            cal = next(iter(gone.values()))["cal"]
            more = f" (and {len(gone) - 1} more)" if len(gone) > 1 else ""
            fail(f"{cal}{more}: used by the previous run of {OUT}, missing or unusable now; "
                 "restore it, or set allow_missing_members: true to make the products without "
                 "it (its _crf is then removed)")
        at_start(WORK, {} if DEMO else current,
                 [record["crf"] for record in {**gone, **dropped}.values()])
    for member in [] if DEMO else ASN.members:
        # during another run only the stamps a dry run needs: those missing
        if refusal is None or not Path(identity_stamp(member.name)).exists():
            update_stamp(identity_stamp(member.name), member.path)
    return refusal



onstart:
    handle_sigterm_off_the_main_thread()
    if CLAIM_REFUSED:
        fail(CLAIM_REFUSED)
    try:
        Path(LOGS).mkdir(parents=True, exist_ok=True)
        clear_errors(LOGS)
        for line in settle():
            print(f"image3: {line}", file=sys.stderr)
        if config["job_server"] and workflow.local_exec and not workflow.remote_exec:
            start_job_server(LOGS)
        if INSPECTED:
            save_inspection(INSPECTION, INSPECTED)
    except OSError as exc:  # an output_dir or work_dir that cannot be written
        fail(unwritable_folder(exc, WORK))


onerror:
    print_stop_reasons(recorded_errors(LOGS))
