"""QA (under <output_dir>/qa/, shown by `snakemake --report`): plots of the mosaic with the
exposure footprints, tweakreg's residuals and fits, sky levels, outliers and the catalogue, and
the table of the run's parameters. qa_outputs() (common.smk) asks for those of the stages that
run when qa.plots is true. Each job is one image3.qa.write_* call; it takes a few seconds (images
are block-averaged to <= 1024 pixels a side, read a band of rows at a time)."""


rule qa_parameters:
    output:
        report(f"{QA}/parameters.html", caption="../report/parameters.rst",
               category="parameters", labels={"step": "all", "figure": "parameters"}),
    params:
        rows=i3config.parameter_sources(config, TABLE_VALUES, USER_SETTINGS),
    log:
        f"{LOGS}/qa/parameters.log",
    benchmark:
        f"{BENCH}/qa/parameters.tsv"
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=500,
        runtime=5,
    script:
        "../scripts/qa_parameters.py"


rule qa_mosaic:
    input:
        i2d=PRODUCTS["i2d"],
        footprints=f"{WORK}/footprints.json",
    output:
        qa_plot("mosaic", "resample"),
    log:
        f"{LOGS}/qa/mosaic.log",
    benchmark:
        f"{BENCH}/qa/mosaic.tsv"
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=1000,  # a band of 64 mosaic rows and the 1024² display image
        runtime=10,
    script:
        "../scripts/qa_mosaic.py"


rule qa_mosaic_tiles:
    input:
        i2ds=lambda wildcards: [tile_product("i2d", t.name) for t in tile_list()],
        tiles=f"{WORK}/tiles.json",
        footprints=f"{WORK}/footprints.json",
    output:
        qa_plot("mosaic", "resample"),
    log:
        f"{LOGS}/qa/mosaic_tiles.log",
    benchmark:
        f"{BENCH}/qa/mosaic_tiles.tsv"
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=1000,  # a band of 64 mosaic rows and the 1024² display image
        runtime=10,
    script:
        "../scripts/qa_mosaic_tiles.py"


rule qa_tweakreg:
    input:
        report=f"{WORK}/tweakreg_report.ecsv",
        residuals=f"{WORK}/tweakreg_residuals.ecsv",
    output:
        qa_plot("tweakreg", "tweakreg"),
    log:
        f"{LOGS}/qa/tweakreg.log",
    benchmark:
        f"{BENCH}/qa/tweakreg.tsv"
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=500,
        runtime=5,
    script:
        "../scripts/qa_tweakreg.py"


rule qa_skymatch:
    input:
        stats=expand(skystats_path("{member}"), member=MEMBERS),
        sky=expand(f"{WORK}/{{member}}/sky.json", member=MEMBERS),
    output:
        qa_plot("skymatch", "skymatch"),
    params:
        members=MEMBERS,
    log:
        f"{LOGS}/qa/skymatch.log",
    benchmark:
        f"{BENCH}/qa/skymatch.tsv"
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=500,
        runtime=5,
    script:
        "../scripts/qa_skymatch.py"


rule qa_outliers:
    input:
        cals=[cal_path(m) for m in MEMBERS],
        crfs=[crf_path(m) for m in MEMBERS],
        median=lambda wildcards: median_pieces(),
        grid=outlier_grid(),
        footprints=f"{WORK}/footprints.json",
    output:
        qa_plot("outliers", "outlier_detection"),
    params:
        members=[{"member": m, "cal": cal_path(m), "crf": crf_path(m)} for m in MEMBERS],
    log:
        f"{LOGS}/qa/outliers.log",
    benchmark:
        f"{BENCH}/qa/outliers.tsv"
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=1000,  # the DQ arrays of one 2048² exposure and its _crf, a band of the median
        runtime=lambda wildcards: 5 + len(MEMBERS) // 10,
    script:
        "../scripts/qa_outliers.py"


rule qa_catalog:
    input:
        i2d=PRODUCTS["i2d"],
        catalog=PRODUCTS["cat"],
    output:
        qa_plot("catalog", "source_catalog"),
    params:
        aperture_ee=[config["source_catalog"][f"aperture_ee{k}"] for k in (1, 2, 3)],
    log:
        f"{LOGS}/qa/catalog.log",
    benchmark:
        f"{BENCH}/qa/catalog.tsv"
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    script:
        "../scripts/qa_catalog.py"
