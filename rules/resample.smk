"""The final resample into the _i2d mosaic; with resample.single, one _i2d per exposure group."""


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


# resample.single (the reference's): each exposure group drizzled alone onto the _i2d's grid,
# one _i2d each, <first member>_<asn_id>_single_i2d.fits in output_dir (SINGLE_I2DS: asked for
# by rule all)
SINGLE_GROUPS = {ms[0].name: [m.name for m in ms] for ms in ASN.groups.values()}
SINGLE_I2DS = [intermediate_path(first, "single_i2d") for first in SINGLE_GROUPS] \
    if step_runs("resample") and config["resample"]["single"] else []
if SINGLE_I2DS and TILED:
    fail("resample.single: a whole-grid image per exposure group is not made with sky tiles "
         "(set resample.single: false, or tiles.above_pixels: null)")


rule resample_single:
    input:
        unpack(lambda wildcards: resample_inputs(SINGLE_GROUPS[wildcards.member])),
        grid=f"{WORK}/grid.pkl",
        grid_shape=f"{WORK}/grid_shape.json",
    output:
        intermediate_path("{member}", "single_i2d"),
    wildcard_constraints:
        member="|".join(re.escape(first) for first in SINGLE_GROUPS),
    params:
        members=lambda wildcards: member_table(final_exposure_files,
                                               SINGLE_GROUPS[wildcards.member]),
        drizzle=FinalDrizzle.select(config["resample"]),
    log:
        f"{LOGS}/resample_single/{{member}}.log",
    benchmark:
        f"{BENCH}/resample_single/{{member}}.tsv"
    conda:
        ENV
    resources:
        mem_mb=lambda wildcards, input: resample_mem_mb(grid_pixels(input.grid_shape)),
        runtime=lambda wildcards, input: resample_runtime_min(
            grid_pixels(input.grid_shape), len(SINGLE_GROUPS[wildcards.member]),
            not step_runs("outlier_detection")),
    script:
        "../scripts/resample.py"
