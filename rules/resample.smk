"""Output grid and final resample: all exposures drizzled into the _i2d mosaic."""

STEPS_AVAILABLE.add("resample")

GRID_KEYS = ("pixel_scale_ratio", "pixel_scale", "rotation", "crpix", "crval", "output_shape",
             "output_wcs", "max_output_pixels")
DEFAULT_GRID = {"pixel_scale_ratio": 1.0, "pixel_scale": None, "rotation": None, "crpix": None,
                "crval": None, "output_shape": None, "output_wcs": ""}
DRIZZLE_KEYS = ("pixfrac", "kernel", "fillval", "weight_type", "good_bits", "pixmap_stepsize",
                "enable_ctx", "enable_err", "report_var")


def grid_params(name):
    """Grid parameters: the resample section's for ``grid``; the reference's defaults for
    ``grid_outlier`` (outlier detection always drizzles onto the default grid)."""
    final = {k: config["resample"][k] for k in GRID_KEYS}
    return final if name == "grid" else {**final, **DEFAULT_GRID}


def outlier_grid():
    """The grid outlier detection uses: the final grid itself when the two coincide."""
    same = grid_params("grid_outlier") == grid_params("grid")
    return f"{WORK}/grid.asdf" if same else f"{WORK}/grid_outlier.asdf"


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
