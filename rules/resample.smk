"""Output grid(s) with the sky footprints, and the final resample into the _i2d mosaic."""

rule layout:
    input:
        unpack(lambda wildcards: all_footprint_inputs()),
    output:
        footprints=f"{WORK}/footprints.json",
        **layout_grids(),
    params:
        members=layout_members(),
        stepsize=config["skymatch"]["stepsize"],
        grids={name: grid_params(name) for name in layout_grids()},
    log:
        f"{LOGS}/layout.log",
    benchmark:
        f"{BENCH}/layout.tsv"
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    script:
        "../scripts/layout.py"


rule resample:
    input:
        unpack(lambda wildcards: resample_inputs()),
        grid=f"{WORK}/grid.pkl",
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
