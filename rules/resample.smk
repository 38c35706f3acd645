"""Output grid and final resample: all exposures drizzled into the _i2d mosaic."""

rule grid:
    input:
        unpack(lambda wildcards: all_footprint_inputs()),
    output:
        f"{WORK}/{{grid}}.asdf",
    wildcard_constraints:
        grid="grid|grid_outlier",
    params:
        grid=lambda wildcards: grid_params(wildcards.grid),
    log:
        f"{LOGS}/{{grid}}.log",
    benchmark:
        f"{BENCH}/{{grid}}.tsv"
    conda:
        ENV
    resources:
        mem_mb=1000,
        runtime=10,
    script:
        "../scripts/grid.py"


rule resample:
    input:
        exposures=lambda wildcards: [f for row in member_table(final_exposure_files)
                                     for f in (row["cal"], row["wcs"], row["sky"]) if f],
        grid=f"{WORK}/grid.asdf",
    output:
        PRODUCTS["i2d"],
    params:
        members=lambda wildcards: member_table(final_exposure_files),
        drizzle={k: config["resample"][k] for k in DRIZZLE_KEYS},
    log:
        f"{LOGS}/resample.log",
    benchmark:
        f"{BENCH}/resample.tsv"
    conda:
        ENV
    resources:
        mem_mb=lambda wildcards, input: 2000 + 40 * len(MEMBERS),
        runtime=30,
    script:
        "../scripts/resample.py"
