"""Source catalogue of the mosaic: detection, deblending, photometry → _cat.ecsv, _segm.fits."""


rule source_catalog:
    input:
        i2d=PRODUCTS["i2d"],
    output:
        catalog=PRODUCTS["cat"],
        segm=PRODUCTS["segm"],
    params:
        catalog=catalog_params(),
    log:
        f"{LOGS}/source_catalog.log",
    benchmark:
        f"{BENCH}/source_catalog.tsv"
    conda:
        ENV
    threads: 2  # windowed centroids in two processes: 3.7 -> 1.9 s for 2000 sources here
    resources:
        mem_mb=lambda wildcards, input: catalog_mem_mb(image_pixels(input.i2d)),
        runtime=lambda wildcards, input: catalog_runtime_min(image_pixels(input.i2d)),
    script:
        "../scripts/source_catalog.py"
