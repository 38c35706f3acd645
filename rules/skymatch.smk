"""skymatch: sky statistics per member in parallel, one small solve for the levels."""


rule footprints:
    input:
        unpack(lambda wildcards: all_footprint_inputs()),
    output:
        f"{WORK}/footprints.json",
    params:
        members=lambda wildcards: member_table(exposure_files),
        stepsize=config["skymatch"]["stepsize"],
    log:
        f"{LOGS}/footprints.log",
    benchmark:
        f"{BENCH}/footprints.tsv"
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    script:
        "../scripts/footprints.py"


rule sky_statistics:
    input:
        unpack(lambda wildcards: exposure_files(wildcards.member) | {"sky": []}),
        footprints=f"{WORK}/footprints.json",
    output:
        f"{WORK}/{{member}}/skystats.json",
    params:
        group=lambda wildcards: ASN.member(wildcards.member).group_id,
        sky=skymatch_params(),
    log:
        f"{LOGS}/sky_statistics/{{member}}.log",
    benchmark:
        f"{BENCH}/sky_statistics/{{member}}.tsv"
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=1500,
        runtime=10,
    script:
        "../scripts/sky_statistics.py"


rule skymatch:
    input:
        stats=expand(f"{WORK}/{{member}}/skystats.json", member=MEMBERS),
    output:
        expand(f"{WORK}/{{member}}/sky.json", member=MEMBERS),
    params:
        members=MEMBERS,
        groups={g: [m.name for m in ms] for g, ms in ASN.groups.items()},
        sky=skymatch_params(),
    log:
        f"{LOGS}/skymatch.log",
    benchmark:
        f"{BENCH}/skymatch.tsv"
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=500,
        runtime=5,
    script:
        "../scripts/skymatch.py"
