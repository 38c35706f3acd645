"""Many associations in one run (``asn``: a list, a glob or a folder of ASN files): each one
the workflow of one association (rules/product.smk) as a Snakemake module of its own, with its
own work folder, QA folder and parameter-table entry (matched on its own first member), all
branches of one DAG, so the jobs of different products share the cores or the cluster. The
associations of one target (overlapping footprints) are aligned together and resampled onto one
projection (image3.program_grid; config section program). The products of all go to
``output_dir``. An association that cannot be read is named in one line at
the start; the others run, and the run then ends non-zero (rule refused_associations)."""

import os
import re
import sys
from pathlib import Path

import image3.config as i3config
from image3.asn import read_association, sheet_settings
from image3.errors import Image3Error
from image3.errors import stop_before_any_job as fail
from image3.parameters import Program
from image3.program_grid import jointly_aligned, program_grids
from image3.runtime.jobserver import start as start_job_server
from image3.runtime.output_folder import settle
from image3.runtime.runjob import clear_errors, recorded_errors
from image3.runtime.snakemake_process import (handle_sigterm_off_the_main_thread,
                                               print_stop_reasons, unwritable_folder)


try:
    _schema = i3config.load_schema(workflow.source_path("../config/schema.yaml"))
    _as_given = i3config.coerce(dict(config), _schema)
    i3config.validate(_as_given, _schema)
except Image3Error as exc:
    fail(exc)
_defaults = i3config.schema_defaults(_schema)
OUT = str(_as_given.get("output_dir", _defaults["output_dir"])).rstrip("/")
WORK = i3config.work_dir({"output_dir": OUT, "work_dir": _as_given.get("work_dir")}).rstrip("/")

# a sample sheet's per-association settings (image3.asn.read_sample_sheet)
try:
    SHEET = sheet_settings(config.get("asn"))
except Image3Error as exc:
    fail(exc)
# its target column: the associations of one target, as the user groups them
TARGET_KEYS = {path: row.pop("target") for path, row in SHEET.items() if "target" in row}
PRODUCTS, ASNS, REFUSED = {}, {}, []
for _path in ASSOCIATIONS:
    try:
        _association = read_association(_path)
        _product = _association.product
    except Image3Error as exc:
        print(f"image3: ERROR: {exc}; the other associations go on", file=sys.stderr)
        REFUSED.append(str(exc))
        continue
    if _product in PRODUCTS:
        fail(f"{_path} and {PRODUCTS[_product]} both make the product {_product}")
    PRODUCTS[_product], ASNS[_product] = _path, _association
if not PRODUCTS:
    fail(f"none of the {len(ASSOCIATIONS)} associations can be read")


# one projection per target (image3.program_grid)
PROGRAM = Program(**Program.select({**_defaults["program"], **_as_given.get("program", {})}))
try:
    COMMON_GRIDS, TARGETS, _lines = program_grids(
        ASNS, PROGRAM, _as_given.get("resample", {}),
        {p: str(TARGET_KEYS[Path(a).resolve()]) for p, a in PRODUCTS.items()
         if Path(a).resolve() in TARGET_KEYS})
except (Image3Error, OSError) as exc:
    fail(exc)
for _line in _lines:
    print(f"image3: {_line}", file=sys.stderr)

# a member listed by several associations: its source list and geometry made once, by the first
# that lists it (each association's member_work_dirs names the others' members it reads there)
MEMBER_OWNER = {}
for _product, _association in ASNS.items():
    for _member in _association.members:
        MEMBER_OWNER.setdefault(_member.name, _product)

PRODUCT_ALIASES = {}
for _product, _path in PRODUCTS.items():
    module_name = re.sub(r"\W", "_", _product)
    alias = f"{module_name}_"
    PRODUCT_ALIASES[_product] = module_name
    # the user's settings, its sample-sheet row's, then its asn, folders and common grid
    module_settings = i3config.association_settings(
        _as_given, SHEET.get(Path(_path).resolve(), {}),
        {"asn": str(_path), "output_dir": OUT, "work_dir": f"{WORK}/{_product}",
         "qa": {"folder": f"{OUT}/qa/{_product}"}, "resample": COMMON_GRIDS.get(_product, {}),
         "member_work_dirs": {m.name: f"{WORK}/{MEMBER_OWNER[m.name]}"
                              for m in ASNS[_product].members
                              if MEMBER_OWNER[m.name] != _product}})
    module:
        name: module_name
        snakefile: str(Path(workflow.basedir) / "Snakefile")
        config: module_settings
    use rule * from module_name as alias*

# every product's targets (the inputs of each module's rule all), and the failing rule for the
# associations not read (the Snakefile's rule all)
PRODUCT_TARGETS = [item for name in PRODUCT_ALIASES.values()
                   for item in getattr(rules, f"{name}_all").input]
AS_MODULE = not workflow.modifier.is_main_snakefile()

# each target's bands aligned in one fit (image3.tweakreg.align_products), by a job that
# makes the files of each product's own tweakreg job in its place (program.joint_alignment)
for _k, _target in enumerate(jointly_aligned(TARGETS, PROGRAM)):
    _own = [getattr(rules, f"{PRODUCT_ALIASES[p]}_tweakreg") for p in _target]

    rule:
        name:
            f"tweakreg_target{_k + 1}"
        input:
            sources=[f for r in _own for f in r.input.sources],
            geometry=[f for r in _own for f in r.input.geometry],
            abs_refcat=_own[0].input.abs_refcat,
        output:
            [f for r in _own
             for f in (*r.output.wcs, r.output.residuals, r.output.refcat, r.output.report)],
        params:
            products=[{"name": p, "members": list(r.params.members),
                       "wcs_paths": [str(f) for f in r.output.wcs],
                       "residuals_path": str(r.output.residuals),
                       "refcat_path": str(r.output.refcat),
                       "report_path": str(r.output.report)} for p, r in zip(_target, _own)],
            fit=dict(_own[0].params.fit),
            stars=dict(_own[0].params.stars),
        log:
            f"{WORK}/logs/tweakreg_target{_k + 1}.log",
        conda:
            "../envs/image3.yaml"
        threads: 1
        resources:
            mem_mb=1000 + 20 * sum(len(r.params.members) for r in _own),
            runtime=10 + sum(len(r.params.members) for r in _own) // 10,
        script:
            "../scripts/tweakreg_target.py"

    for _r in _own:
        workflow.ruleorder(f"tweakreg_target{_k + 1}", _r.rule.name)

# QA of each target's bands on its projection (qa/<target>_bands.png), when their _i2d and
# _cat are made (untiled, source_catalog run) and QA plots are asked for
_made = {str(f) for f in PRODUCT_TARGETS}
BAND_PAGES = {
    re.sub(r"[-_][^-_]*$", "", os.path.commonprefix(_target)) or f"target{_k + 1}": _target
    for _k, _target in enumerate(TARGETS)
    if {**_defaults["qa"], **_as_given.get("qa", {})}["plots"]
    and all(f"{OUT}/{p}_{kind}" in _made for p in _target for kind in ("i2d.fits", "cat.ecsv"))}

ALL_TARGETS = [PRODUCT_TARGETS, [f"{OUT}/qa/{t}_bands.png" for t in BAND_PAGES],
               [f"{WORK}/refused"] if REFUSED else []]


rule qa_bands:
    input:
        i2ds=lambda wildcards: [f"{OUT}/{p}_i2d.fits" for p in BAND_PAGES[wildcards.target]],
        catalogs=lambda wildcards: [f"{OUT}/{p}_cat.ecsv" for p in BAND_PAGES[wildcards.target]],
    output:
        f"{OUT}/qa/{{target}}_bands.png",
    params:
        bands=lambda wildcards: BAND_PAGES[wildcards.target],
    log:
        f"{WORK}/logs/qa_bands/{{target}}.log",
    conda:
        "../envs/image3.yaml"
    threads: 1
    resources:
        mem_mb=1500,  # a band of rows of each _i2d and their 1024² display images
        runtime=10,
    script:
        "../scripts/qa_bands.py"


rule refused_associations:
    input:
        PRODUCT_TARGETS,
    output:
        f"{WORK}/refused",
    log:
        f"{WORK}/logs/refused_associations.log",
    conda:
        "../envs/image3.yaml"
    message:
        "image3: the other products are made; the run fails for the associations it could not read"
    localrule: True
    shell:
        "exit 1"


onstart:
    handle_sigterm_off_the_main_thread()
    try:
        for product in PRODUCTS:
            clear_errors(Path(WORK, product, "logs"))
        for line in settle():  # what each product's claim_output noted (rules/common.smk)
            print(f"image3: {line}", file=sys.stderr)
        if _as_given.get("job_server", _defaults["job_server"]) and workflow.local_exec \
                and not workflow.remote_exec:
            start_job_server(f"{WORK}/logs")
    except OSError as exc:  # an output_dir or work_dir that cannot be written
        fail(unwritable_folder(exc, WORK))


onerror:
    print_stop_reasons([f"{line}; not made" for line in REFUSED]
                       + [f"{product}: {line}" for product in PRODUCTS
                          for line in recorded_errors(Path(WORK, product, "logs"))])
