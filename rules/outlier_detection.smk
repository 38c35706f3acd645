"""outlier_detection: single drizzles per group, their median, per-member flagging → _crf."""

STEPS_AVAILABLE.add("outlier_detection")


rule single:
    input:
        exposures=lambda wildcards: [f for m in ASN.groups[wildcards.group]
                                     for f in exposure_files(m.name).values() if f],
        grid=outlier_grid(),
    output:
        f"{WORK}/singles/{{group}}.fits",
    params:
        members=lambda wildcards: [row for row in member_table(exposure_files)
                                   if row["group_id"] == wildcards.group],
        outlier=outlier_params(),
    log:
        f"{LOGS}/single/{{group}}.log",
    benchmark:
        f"{BENCH}/single/{{group}}.tsv"
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=lambda wildcards: 1200 + 600 * len(ASN.groups[wildcards.group]),
        runtime=15,
    script:
        "../scripts/single.py"


rule median:
    input:
        singles=expand(f"{WORK}/singles/{{group}}.fits", group=GROUPS),
        grid=outlier_grid(),
    output:
        f"{WORK}/median.fits",
    log:
        f"{LOGS}/median.log",
    benchmark:
        f"{BENCH}/median.tsv"
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=1500,
        runtime=15,
    script:
        "../scripts/median.py"


rule flag_outliers:
    input:
        unpack(lambda wildcards: exposure_files(wildcards.member)),
        median=f"{WORK}/median.fits",
        grid=outlier_grid(),
    output:
        crf_pattern(),
    params:
        outlier=outlier_params(),
        tweakreg=config["tweakreg"],
    log:
        f"{LOGS}/flag_outliers/{{member}}.log",
    benchmark:
        f"{BENCH}/flag_outliers/{{member}}.tsv"
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=2000,
        runtime=15,
    script:
        "../scripts/flag_outliers.py"
