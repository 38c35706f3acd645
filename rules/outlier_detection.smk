"""outlier_detection: one single drizzle per exposure group, their median, and one flagging job
per member writing its _crf (science: image3/outlier.py, files between jobs: image3/median.py);
with save_intermediate_results, the reference's intermediate files, one job each
(image3/intermediates.py)."""


from image3.parameters import FinalDrizzle, FlagComparison, SingleDrizzle, SipApproximation

OUTLIER = config["outlier_detection"]
OUTLIER_METHOD = OUTLIER["method"]


OUTLIER_SINGLES = {g: f"{WORK}/singles/{g}.fits" for g in GROUPS}
OUTLIER_MEMBERS = {g: [row for row in member_table(exposure_files) if row["group_id"] == g]
                   for g in GROUPS}

# save_intermediate_results, when asked for: per group its single drizzle (outlier_i2d, named
# after the group's first member), the median, per member its blot
SAVED_INTERMEDIATES = (
    [intermediate_path(ms[0].name, "outlier_i2d") for ms in ASN.groups.values()]
    + [intermediate_path(MEMBERS[0], "median")] + [intermediate_path(m, "blot") for m in MEMBERS]
) if step_runs("outlier_detection") and OUTLIER["save_intermediate_results"] else []


rule single:
    input:
        exposures=lambda wildcards: member_inputs(
            exposure_files, [row["name"] for row in OUTLIER_MEMBERS[wildcards.group]]),
        grid=outlier_grid(),
    output:
        single=f"{WORK}/singles/{{group}}.fits",
    params:
        members=lambda wildcards: OUTLIER_MEMBERS[wildcards.group],
        drizzle=SingleDrizzle.select(OUTLIER),
    log:
        f"{LOGS}/single/{{group}}.log",
    benchmark:
        f"{BENCH}/single/{{group}}.tsv"
    conda:
        ENV
    group:
        "singles"
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
        singles=lambda wildcards: median_singles(wildcards.piece),
        grid_shape=outlier_grid().replace(".pkl", "_shape.json"),
    output:
        median=f"{WORK}/median/{{piece}}.fits",
    wildcard_constraints:
        piece=f"all|{TILE_NAME}",
    params:
        method=OUTLIER_METHOD,
        region=lambda wildcards: None if wildcards.piece == "all" else tile_of(wildcards.piece).inner,
    log:
        f"{LOGS}/median/{{piece}}.log",
    benchmark:
        f"{BENCH}/median/{{piece}}.tsv"
    conda:
        ENV
    group:
        "medians"
    threads: 1
    resources:
        # a 16 MB block of single rows at a time (image3.median.MEDIAN_BLOCK_BYTES) plus the
        # median and count planes
        mem_mb=lambda wildcards, input: median_mem_mb(piece_pixels(wildcards.piece,
                                                                   input.grid_shape)),
        runtime=lambda wildcards, input: median_runtime_min(
            piece_pixels(wildcards.piece, input.grid_shape), len(input.singles)),
    script:
        "../scripts/median.py"


rule flag:
    input:
        unpack(lambda wildcards: exposure_files(wildcards.member)),
        median=lambda wildcards: median_pieces(wildcards.member),
        single=lambda wildcards: OUTLIER_SINGLES[ASN.member(wildcards.member).group_id],
        grid=outlier_grid(),
        final_grid=f"{WORK}/grid.pkl",
    output:
        crf=crf_pattern(),
        # the member's drizzled share of the _i2d, so the resample join only adds them up;
        # written whether resample runs or not (with resample.skip it is made for nothing)
        contribution=f"{WORK}/{{member}}/contribution.npz",
    params:
        compare=FlagComparison.select(OUTLIER),
        sip=SipApproximation.select(config["tweakreg"]),
        member=lambda wildcards: member_row(wildcards.member, exposure_files),
        final=FinalDrizzle.select(config["resample"]),
    log:
        f"{LOGS}/flag/{{member}}.log",
    benchmark:
        f"{BENCH}/flag/{{member}}.tsv"
    conda:
        ENV
    group:
        "flags"
    threads: 1
    resources:
        mem_mb=1000,  # 2048² member: ~0.42 GB peak (comparison, then the final drizzle)
        runtime=15,
    script:
        "../scripts/flag_outliers.py"


rule save_single:
    input:
        single=lambda wildcards: OUTLIER_SINGLES[ASN.member(wildcards.member).group_id],
        grid=outlier_grid(),
        # the file's metadata: this member (its group's first) as tweakreg left it
        cal=lambda wildcards: cal_path(wildcards.member),
        wcs=lambda wildcards: wcs_sidecar(wildcards.member),
    output:
        intermediate_path("{member}", "outlier_i2d"),
    log:
        f"{LOGS}/save_single/{{member}}.log",
    benchmark:
        f"{BENCH}/save_single/{{member}}.tsv"
    conda:
        ENV
    group:
        "singles"
    threads: 1
    resources:
        mem_mb=1000,  # measured 290 MB peak for 6 x 2048² (the grid's SCI and WHT, a datamodel)
        runtime=10,
    script:
        "../scripts/save_single.py"


rule save_median:
    input:
        median=lambda wildcards: median_pieces(),
        grid=outlier_grid(),
    output:
        intermediate_path(MEMBERS[0], "median"),
    log:
        f"{LOGS}/save_median.log",
    benchmark:
        f"{BENCH}/save_median.tsv"
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=1000,  # measured 161 MB peak for 6 x 2048²
        runtime=10,
    script:
        "../scripts/save_median.py"


rule save_blot:
    input:
        crf=lambda wildcards: crf_path(wildcards.member),
        median=lambda wildcards: median_pieces(),
        grid=outlier_grid(),
    output:
        intermediate_path("{member}", "blot"),
    params:
        compare=FlagComparison.select(OUTLIER),
    log:
        f"{LOGS}/save_blot/{{member}}.log",
    benchmark:
        f"{BENCH}/save_blot/{{member}}.tsv"
    conda:
        ENV
    group:
        "flags"
    threads: 1
    resources:
        mem_mb=1000,  # measured 418 MB peak for a 2048² exposure (its _crf, pixel map, blot)
        runtime=10,
    script:
        "../scripts/save_blot.py"
