"""Output grid(s) with the sky footprints (their own job only when tweakreg does not run), and
the final resample into the _i2d mosaic."""

if not step_runs("tweakreg"):  # otherwise the tweakreg job writes the layout

    rule layout:
        input:
            cals=[cal_path(m) for m in MEMBERS],
        output:
            footprints=f"{WORK}/footprints.json",
            **layout_grids(),
        params:
            layout=layout_params(),
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
        drizzle=FinalDrizzle.select(config["resample"]),
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
