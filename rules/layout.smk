"""The association's layout on the sky (image3/grid.py): every member's footprint, for the sky
tiles and the QA plots, and the output grids, from each member's gwcs as tweakreg left it."""


rule footprints:
    input:
        unpack(lambda wildcards: layout_inputs()),
    output:
        f"{WORK}/footprints.json",
    params:
        members=member_table(layout_files),
        stepsize=config["skymatch"]["stepsize"],
    log:
        f"{LOGS}/footprints.log",
    benchmark:
        f"{BENCH}/footprints.tsv"
    conda:
        ENV
    group:
        "layout"
    threads: 1
    resources:
        # measured for 6 x 2048²: 130 MB peak from the sidecars, 356 MB from the _cals
        mem_mb=1000,
        runtime=10,
    script:
        "../scripts/footprints.py"


# one job per grid: "grid" (the final resample's) and, when it differs, "grid_outlier"
# (outlier detection's, always the reference's default grid; see outlier_grid())
# a checkpoint, as tweakreg: with sky tiles the grid of the previous run is kept (image3/grid.py)
# and the jobs on it are not redone
checkpoint grid:
    input:
        unpack(lambda wildcards: layout_inputs()),
    output:
        grid=f"{WORK}/{{grid}}.pkl",
        shape=f"{WORK}/{{grid}}_shape.json",
    wildcard_constraints:
        grid="grid|grid_outlier",
    params:
        members=member_table(layout_files),
        grid=lambda wildcards: grid_params(wildcards.grid),
        keep_in=lambda wildcards: KEEP_IN if wildcards.grid == "grid" else None,
        refit=REFIT,
        reserve=TILES["reserve"] * TILES["size"] if TILED else 0,
    log:
        f"{LOGS}/grid/{{grid}}.log",
    benchmark:
        f"{BENCH}/grid/{{grid}}.tsv"
    conda:
        ENV
    group:
        "layout"
    threads: 1
    resources:
        mem_mb=1000,  # as footprints
        runtime=10,
    script:
        "../scripts/grid.py"
