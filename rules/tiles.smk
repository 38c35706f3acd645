"""Sky tiles (image3/tiles.py): the final resample and the catalogue once per tile of the output
grid (outlier detection's median too: rules/outlier_detection.smk), and one merged catalogue.
Which tiles there are, and the members each meets, is known once the grid is (checkpoint); a
tile's jobs read only its members' files."""


checkpoint tiles:
    input:
        grid=f"{WORK}/grid.pkl",
        footprints=f"{WORK}/footprints.json",
        # not read: the tile jobs are planned once the sky levels are settled (Snakemake judges
        # anew only the jobs that read a finished checkpoint's files: a median planned while
        # skymatch ran would be redone for a single that turns out unchanged)
        settled=[sky_sidecar(m) for m in MEMBERS if sky_sidecar(m)],
    output:
        f"{WORK}/tiles.json",
    params:
        size=TILES["size"],
        margin=TILES["margin"],
    log:
        f"{LOGS}/tiles.log",
    benchmark:
        f"{BENCH}/tiles.tsv"
    conda:
        ENV
    # on a cluster, made by the submitting Snakemake (a table from the grid and the footprints),
    # without a queue wait; so is the merged catalogue
    localrule: True
    threads: 1
    resources:
        mem_mb=500,
        runtime=5,
    script:
        "../scripts/tiles.py"


rule resample_tile:
    input:
        unpack(lambda wildcards: resample_inputs(tile_of(wildcards.tile).members)),
        grid=f"{WORK}/grid.pkl",
    output:
        tile_product("i2d"),
    wildcard_constraints:
        tile=TILE_NAME,
    params:
        members=lambda wildcards: member_table(final_exposure_files,
                                               tile_of(wildcards.tile).members),
        drizzle=FinalDrizzle.select(config["resample"]),
        window=lambda wildcards: tile_of(wildcards.tile).window,
    log:
        f"{LOGS}/resample_tile/{{tile}}.log",
    benchmark:
        f"{BENCH}/resample_tile/{{tile}}.tsv"
    conda:
        ENV
    group:
        "tiles"
    resources:
        mem_mb=lambda wildcards: resample_mem_mb(tile_pixels(wildcards.tile)),
        runtime=lambda wildcards: resample_runtime_min(
            tile_pixels(wildcards.tile), len(tile_of(wildcards.tile).members),
            not step_runs("outlier_detection")),
    script:
        "../scripts/resample.py"


rule background_boxes:
    input:
        i2d=lambda wildcards: [tile_product("i2d", t.name) for t in box_sources(wildcards.tile)],
        grid_shape=f"{WORK}/grid_shape.json",
    output:
        f"{WORK}/tiles/{{tile}}/background_boxes.npz",
    wildcard_constraints:
        tile=TILE_NAME,
    params:
        tile=lambda wildcards: tile_of(wildcards.tile),
        sources=lambda wildcards: box_sources(wildcards.tile),
        catalog=catalog_params(),
    log:
        f"{LOGS}/background_boxes/{{tile}}.log",
    benchmark:
        f"{BENCH}/background_boxes/{{tile}}.tsv"
    conda:
        ENV
    group:
        "tiles"
    resources:
        mem_mb=lambda wildcards: background_boxes_mem_mb(region_pixels(box_region(wildcards.tile))),
        runtime=lambda wildcards: background_boxes_runtime_min(
            region_pixels(box_region(wildcards.tile))),
    script:
        "../scripts/background_boxes.py"


# a join over small tables: the mosaic's background mesh, which every tile's catalogue zooms
# over its window (image3/tile_background.py); one file per tile, so that when members are
# added a tile whose background did not move keeps its file's bytes and Snakemake, judging
# anew after the checkpoint, does not redo its catalogue
checkpoint background_mesh:
    input:
        boxes=lambda wildcards: [f"{WORK}/tiles/{t.name}/background_boxes.npz"
                                 for t in tile_list()],
        grid_shape=f"{WORK}/grid_shape.json",
    output:
        directory(f"{WORK}/background_mesh"),
    params:
        catalog=catalog_params(),
        tiles=lambda wildcards: tile_list(),
        keep_in=KEEP_IN,
        refit=REFIT,
    log:
        f"{LOGS}/background_mesh.log",
    benchmark:
        f"{BENCH}/background_mesh.tsv"
    conda:
        ENV
    localrule: True
    threads: 1
    resources:
        mem_mb=500,
        runtime=5,
    script:
        "../scripts/background_mesh.py"


rule source_catalog_tile:
    input:
        i2d=tile_product("i2d"),
        background=lambda wildcards: f"{checkpoints.background_mesh.get().output[0]}/"
                                     f"{wildcards.tile}.npz",
    output:
        catalog=tile_product("cat"),
        segm=tile_product("segm"),
    wildcard_constraints:
        tile=TILE_NAME,
    params:
        catalog=catalog_params(),
        origin=lambda wildcards: tile_of(wildcards.tile).window[::2],
    log:
        f"{LOGS}/source_catalog_tile/{{tile}}.log",
    benchmark:
        f"{BENCH}/source_catalog_tile/{{tile}}.tsv"
    conda:
        ENV
    group:
        "tiles"
    threads: 2
    resources:
        mem_mb=lambda wildcards, input: catalog_mem_mb(image_pixels(input.i2d)),
        runtime=lambda wildcards, input: catalog_runtime_min(image_pixels(input.i2d)),
    script:
        "../scripts/source_catalog.py"


rule merge_catalog:
    input:
        catalogs=lambda wildcards: [tile_product("cat", t.name) for t in tile_list()],
        tiles=f"{WORK}/tiles.json",
    output:
        PRODUCTS["cat"],
    log:
        f"{LOGS}/merge_catalog.log",
    benchmark:
        f"{BENCH}/merge_catalog.tsv"
    conda:
        ENV
    localrule: True
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    script:
        "../scripts/merge_catalog.py"
