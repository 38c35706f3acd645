"""tweakreg: per-member source lists, then one alignment of all members (gwcs sidecars); with
save_catalogs, each found source list under the reference's name, with save_results each member
with its corrected gwcs (one small job each); with save_abs_catalog, the absolute fit's
reference catalogue under the reference's name."""

from image3.parameters import AlignmentFit, ReferenceStars, SipApproximation, SourceFinding
from image3.refcat import check_abs_refcat, custom_catalogs
from image3.steps import saved_abs_catalog_name, saved_catalog_name

TWEAKREG = config["tweakreg"]

# Custom catalogues and the absolute reference file are checked before any job starts.
TWEAKREG_CATALOGS, TWEAKREG_ABS_REFCAT = {}, None
if step_runs("tweakreg"):
    try:
        if TWEAKREG["use_custom_catalogs"]:
            TWEAKREG_CATALOGS = custom_catalogs(
                ((m.name, m.path, m.tweakreg_catalog) for m in ASN.members), TWEAKREG["catfile"])
        TWEAKREG_ABS_REFCAT = check_abs_refcat(TWEAKREG["abs_refcat"])
    except Image3Error as exc:
        fail(exc)

TWEAKREG_SOURCES = {m: f"{member_work(m)}/{m}/sources.ecsv" for m in MEMBERS}
TWEAKREG_MEMBERS = [
    {"member": m, "group_id": TWEAKREG_GROUP[m], "cal": cal_path(m),
     "sources": TWEAKREG_SOURCES[m], "geometry": f"{member_work(m)}/{m}/geometry.pkl"}
    for m in MEMBERS
]
# save_catalogs: the found source lists (never a user's catalogue) under the reference's names,
# <exposure>_cat.<catalog_format> (saved_catalog_name), <exposure> the member's file name
# without .fits
SAVED_CATALOG_MEMBERS = {Path(cal_path(m)).name.replace(".fits", ""): m for m in MEMBERS
                         if m not in MEMBER_WORK_DIRS}  # another association saves those
SAVED_CATALOGS = [
    f"{OUT}/{saved_catalog_name(cal_path(m), TWEAKREG['catalog_format'])}"
    for m in SAVED_CATALOG_MEMBERS.values() if not TWEAKREG_CATALOGS.get(m)
] if step_runs("tweakreg") and TWEAKREG["save_catalogs"] else []
# save_abs_catalog: the reference catalogue the absolute fit used (the tweakreg job writes it to
# the work folder whatever the config; rule save_abs_catalog copies it), asked for with the
# saved source lists
SAVED_ABS_CATALOG = (f"{OUT}/{saved_abs_catalog_name(TWEAKREG_ABS_REFCAT)}"
                     if TWEAKREG_ABS_REFCAT and TWEAKREG["save_abs_catalog"] else "")
SAVED_CATALOGS += [SAVED_ABS_CATALOG] if SAVED_ABS_CATALOG else []


rule find_sources:
    input:
        unpack(lambda wildcards: {"cal": cal_path(wildcards.member),
                                  "identity": identity_stamp(wildcards.member)}
               | ({"catalog": str(TWEAKREG_CATALOGS[wildcards.member])}
                  if TWEAKREG_CATALOGS.get(wildcards.member) else {})),
    output:
        sources=f"{WORK}/{{member}}/sources.ecsv",
        # the member's gwcs, shape and wcsinfo: the joins after need not open the _cal
        geometry=f"{WORK}/{{member}}/geometry.pkl",
    params:
        # finding parameters only: a changed fit parameter re-runs the join, not finding
        finding=SourceFinding.select(TWEAKREG),
    log:
        f"{LOGS}/find_sources/{{member}}.log",
    benchmark:
        f"{BENCH}/find_sources/{{member}}.tsv"
    conda:
        ENV
    group:
        "sources"
    threads: 1
    resources:
        mem_mb=1000,  # measured 430 MB peak for a 2048² exposure
        runtime=15,
    script:
        "../scripts/find_sources.py"


# a checkpoint: once it has run, Snakemake compares each member's gwcs sidecar with the one the
# jobs after were made from (checksums), so a member whose alignment was kept is not redone
checkpoint tweakreg:
    input:
        sources=[row["sources"] for row in TWEAKREG_MEMBERS],
        geometry=[row["geometry"] for row in TWEAKREG_MEMBERS],
        abs_refcat=[str(TWEAKREG_ABS_REFCAT)] if TWEAKREG_ABS_REFCAT else [],
    output:
        wcs=expand(f"{WORK}/{{member}}/wcs.pkl", member=MEMBERS),
        residuals=f"{WORK}/tweakreg_residuals.ecsv",
        # the absolute fit's reference catalogue (no rows without abs_refcat)
        refcat=f"{WORK}/tweakreg_refcat.ecsv",
        report=f"{WORK}/tweakreg_report.ecsv",
    params:
        members=TWEAKREG_MEMBERS,
        fit=AlignmentFit.select(TWEAKREG),
        stars=ReferenceStars.select(TWEAKREG),
        keep_in=KEEP_IN,
        refit=REFIT,
    log:
        f"{LOGS}/tweakreg.log",
    benchmark:
        f"{BENCH}/tweakreg.tsv"
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=1000 + 20 * len(MEMBERS),
        runtime=10 + len(MEMBERS) // 10,
    script:
        "../scripts/tweakreg.py"


# the product's catalogue (<product>_cat.ecsv) wins should a member file be named <product>.fits
ruleorder: source_catalog > save_catalog


rule save_catalog:
    input:
        sources=lambda wildcards: TWEAKREG_SOURCES[SAVED_CATALOG_MEMBERS[wildcards.exposure]],
    output:
        f"{OUT}/{{exposure}}_cat.{{format}}",
    wildcard_constraints:
        exposure=_alternatives(SAVED_CATALOG_MEMBERS),
        format="ecsv|fits",
    params:
        member=lambda wildcards: SAVED_CATALOG_MEMBERS[wildcards.exposure],
    log:
        f"{LOGS}/save_catalog/{{exposure}}_{{format}}.log",
    benchmark:
        f"{BENCH}/save_catalog/{{exposure}}_{{format}}.tsv"
    conda:
        ENV
    group:
        "sources"
    threads: 1
    resources:
        mem_mb=500,  # measured 116 MB peak
        runtime=5,
    script:
        "../scripts/save_catalog.py"


# save_results: each member as tweakreg left it, <root>_<asn_id>_tweakreg.fits
SAVED_STEP_RESULTS = [intermediate_path(m, "tweakreg") for m in MEMBERS] \
    if step_runs("tweakreg") and TWEAKREG["save_results"] else []


rule save_step_result:
    # a member as tweakreg left it, or as skymatch did (with its sky record): the steps'
    # save_results files (SAVED_STEP_RESULTS; skymatch's in rules/skymatch.smk)
    input:
        cal=lambda wildcards: cal_path(wildcards.member),
        identity=lambda wildcards: identity_stamp(wildcards.member),
        wcs=lambda wildcards: wcs_sidecar(wildcards.member),
        sky=lambda wildcards: sky_sidecar(wildcards.member) if wildcards.step == "skymatch" else [],
    output:
        intermediate_path("{member}", "{step}"),
    wildcard_constraints:
        step="tweakreg|skymatch",
    params:
        sip=SipApproximation.select(TWEAKREG),
    log:
        f"{LOGS}/save_step_result/{{step}}/{{member}}.log",
    benchmark:
        f"{BENCH}/save_step_result/{{step}}/{{member}}.tsv"
    conda:
        ENV
    group:
        "sources"
    threads: 1
    resources:
        mem_mb=1000,  # one datamodel
        runtime=5,
    script:
        "../scripts/save_exposure.py"


if SAVED_ABS_CATALOG:

    rule save_abs_catalog:
        input:
            refcat=f"{WORK}/tweakreg_refcat.ecsv",
        output:
            SAVED_ABS_CATALOG,
        log:
            f"{LOGS}/save_abs_catalog.log",
        benchmark:
            f"{BENCH}/save_abs_catalog.tsv"
        conda:
            ENV
        threads: 1
        resources:
            mem_mb=500,
            runtime=5,
        script:
            "../scripts/save_abs_catalog.py"
