"""outlier_detection: one single drizzle per exposure group, their median, and one flagging job
per member writing its _crf (science: image3/outlier.py, files between jobs: image3/median.py)."""


from image3.steps import SIP_DEFAULTS, intermediate_name

OUTLIER = config["outlier_detection"]
OUTLIER_METHOD = OUTLIER["method"]
OUTLIER_PIXMAP_STEPSIZE = OUTLIER["pixmap_stepsize"]
SINGLE_KEYS = ("weight_type", "pixfrac", "kernel", "good_bits", "maskpt", "resample_data")
FLAG_KEYS = ("snr", "scale", "backg", "resample_data")


OUTLIER_SINGLES = {g: f"{WORK}/singles/{g}.fits" for g in GROUPS}
# the geometry sidecar (when tweakreg runs) lets the single jobs read pixels without a datamodel
OUTLIER_MEMBERS = {g: [row | {"geometry": geometry_sidecar(row["member"])}
                       for row in member_table(exposure_files) if row["group_id"] == g]
                   for g in GROUPS}
# save_intermediate_results: the reference's names in the output folder ("" when not saving)
OUTLIER_SAVED = {
    (root, suffix): f"{OUT}/{intermediate_name(root, ASN.asn_id, suffix)}"
    if OUTLIER["save_intermediate_results"] else ""
    for root, suffix in [(members[0].name, "outlier_i2d") for members in ASN.groups.values()]
    + [(MEMBERS[0], "median")] + [(m, "blot") for m in MEMBERS]
}


rule single:
    input:
        exposures=lambda wildcards: [f for row in OUTLIER_MEMBERS[wildcards.group]
                                     for f in (row["cal"], row["wcs"], row["sky"],
                                               row["geometry"]) if f],
        grid=outlier_grid(),
    output:
        single=f"{WORK}/singles/{{group}}.fits",
    params:
        members=lambda wildcards: OUTLIER_MEMBERS[wildcards.group],
        drizzle={**{k: OUTLIER[k] for k in SINGLE_KEYS}, "method": OUTLIER_METHOD,
                 "pixmap_stepsize": OUTLIER_PIXMAP_STEPSIZE},
        intermediate=lambda wildcards: OUTLIER_SAVED[
            (ASN.groups[wildcards.group][0].name, "outlier_i2d")],
    log:
        f"{LOGS}/single/{{group}}.log",
    benchmark:
        f"{BENCH}/single/{{group}}.tsv"
    conda:
        ENV
    threads: 1
    resources:
        # 2048² member: ~0.45 GB (one member read at a time: its arrays, pixel map, drizzle
        # planes); each extra member widens the group's float64 sums (~0.15 GB)
        mem_mb=lambda wildcards: 850 + 150 * len(ASN.groups[wildcards.group]),
        runtime=15,
    script:
        "../scripts/single.py"


rule median:
    input:
        singles=list(OUTLIER_SINGLES.values()),
        grid=outlier_grid(),
    output:
        median=f"{WORK}/median.fits",
    params:
        method=OUTLIER_METHOD,
        intermediate=OUTLIER_SAVED[(MEMBERS[0], "median")],
    log:
        f"{LOGS}/median.log",
    benchmark:
        f"{BENCH}/median.tsv"
    conda:
        ENV
    # a join: nothing else can run meanwhile, so its blocks are combined two at a time
    threads: 2
    resources:
        # 64 MB blocks of single rows (one read, two combined) plus the median and count planes
        mem_mb=1200,
        runtime=15,
    script:
        "../scripts/median.py"


rule flag:
    input:
        unpack(lambda wildcards: exposure_files(wildcards.member)),
        # SCI and ERR for the comparison are then read without opening the datamodel
        geometry=lambda wildcards: geometry_sidecar(wildcards.member),
        median=f"{WORK}/median.fits",
        single=lambda wildcards: OUTLIER_SINGLES[ASN.member(wildcards.member).group_id],
        grid=outlier_grid(),
        final_grid=f"{WORK}/grid.pkl" if step_runs("resample") else [],
    output:
        crf=crf_pattern(),
        # the member's drizzled share of the _i2d, so the resample join only adds them up
        contribution=f"{WORK}/{{member}}/contribution.npz" if step_runs("resample") else [],
    params:
        compare={**{k: OUTLIER[k] for k in FLAG_KEYS}, "method": OUTLIER_METHOD,
                 "pixmap_stepsize": OUTLIER_PIXMAP_STEPSIZE},
        sip={k: config["tweakreg"][k] for k in SIP_DEFAULTS},
        intermediate=lambda wildcards: OUTLIER_SAVED[(wildcards.member, "blot")],
        group=lambda wildcards: ASN.member(wildcards.member).group_id,
        final={**{k: config["resample"][k] for k in DRIZZLE_KEYS},
               "same_grid": outlier_grid() == f"{WORK}/grid.pkl"},
    log:
        f"{LOGS}/flag/{{member}}.log",
    benchmark:
        f"{BENCH}/flag/{{member}}.tsv"
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=1000,  # 2048² member: ~0.42 GB peak (comparison, then the final drizzle)
        runtime=15,
    script:
        "../scripts/flag_outliers.py"
