"""The final resample into the _i2d mosaic."""


rule resample:
    input:
        unpack(lambda wildcards: resample_inputs()),
        grid=f"{WORK}/grid.pkl",
        grid_shape=f"{WORK}/grid_shape.json",
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
        mem_mb=lambda wildcards, input: resample_mem_mb(grid_pixels(input.grid_shape)),
        runtime=lambda wildcards, input: resample_runtime_min(
            grid_pixels(input.grid_shape), len(MEMBERS), not step_runs("outlier_detection")),
    script:
        "../scripts/resample.py"
