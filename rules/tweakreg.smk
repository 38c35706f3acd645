"""tweakreg: per-member source lists, then one alignment of all members (gwcs sidecars)."""

STEPS_AVAILABLE.add("tweakreg")

from image3.refcat import check_abs_refcat, custom_catalogs
from image3.tweakreg import FINDING_KEYS as TWEAKREG_FINDING_KEYS
from image3.tweakreg import FIT_KEYS as TWEAKREG_FIT_KEYS

TWEAKREG = config["tweakreg"]


def _tweakreg_setup():
    """Custom catalogue per member and the absolute reference file, checked before any job."""
    if not step_runs("tweakreg"):
        return {}, None
    try:
        catalogs = {}
        if TWEAKREG["use_custom_catalogs"]:
            catalogs = custom_catalogs(
                ((m.name, m.path, m.tweakreg_catalog) for m in ASN.members), TWEAKREG["catfile"])
        for member, path in catalogs.items():
            if path is not None and not Path(path).is_file():
                raise Image3Error(f"{path}: custom source catalogue of {member} not found")
        return catalogs, check_abs_refcat(TWEAKREG["abs_refcat"])
    except Image3Error as exc:
        fail(exc)


TWEAKREG_CATALOGS, TWEAKREG_ABS_REFCAT = _tweakreg_setup()


def sources_path(member):
    return f"{WORK}/{member}/sources.ecsv"


def find_sources_inputs(wildcards):
    inputs = {"cal": cal_path(wildcards.member)}
    if TWEAKREG_CATALOGS.get(wildcards.member):
        inputs["catalog"] = str(TWEAKREG_CATALOGS[wildcards.member])
    return inputs


def saved_catalog_members():
    """Members whose found sources are saved (the reference never re-saves a user catalogue)."""
    if not TWEAKREG["save_catalogs"]:
        return []
    return [m for m in MEMBERS if not TWEAKREG_CATALOGS.get(m)]


def saved_catalog_path(member):
    """The reference's name: the input file name with ``.fits`` → ``_cat.<catalog_format>``."""
    name = Path(cal_path(member)).name.replace(".fits", f"_cat.{TWEAKREG['catalog_format']}")
    return f"{OUT}/{name}"


rule find_sources:
    input:
        unpack(find_sources_inputs),
    output:
        sources=f"{WORK}/{{member}}/sources.ecsv",
    params:
        # finding parameters only: a changed fit parameter re-runs the join, not finding
        finding={k: TWEAKREG[k] for k in TWEAKREG_FINDING_KEYS},
    log:
        f"{LOGS}/find_sources/{{member}}.log",
    benchmark:
        f"{BENCH}/find_sources/{{member}}.tsv"
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=1500,
        runtime=15,
    script:
        "../scripts/find_sources.py"


rule tweakreg:
    input:
        sources=[sources_path(m) for m in MEMBERS],
        cals=[cal_path(m) for m in MEMBERS],
        abs_refcat=[str(TWEAKREG_ABS_REFCAT)] if TWEAKREG_ABS_REFCAT else [],
    output:
        wcs=[f"{WORK}/{m}/wcs.asdf" for m in MEMBERS],
        report=f"{WORK}/tweakreg_report.ecsv",
        saved_catalogs=[saved_catalog_path(m) for m in saved_catalog_members()],
    params:
        members=[{"member": m, "group_id": ASN.member(m).group_id, "cal": cal_path(m),
                  "sources": sources_path(m)} for m in MEMBERS],
        fit={k: TWEAKREG[k] for k in TWEAKREG_FIT_KEYS},
        abs_refcat=str(TWEAKREG_ABS_REFCAT) if TWEAKREG_ABS_REFCAT else "",
        saved_catalogs=[{"member": m, "sources": sources_path(m)} for m in saved_catalog_members()],
    log:
        f"{LOGS}/tweakreg.log",
    benchmark:
        f"{BENCH}/tweakreg.tsv"
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=lambda wildcards, input: 1000 + 20 * len(MEMBERS),
        runtime=lambda wildcards, input: 10 + len(MEMBERS) // 10,
    script:
        "../scripts/tweakreg.py"
