"""The workflow of one association (one product): every stage's rules and the default target.
The Snakefile includes it once, or, with several associations, once per association as a
module (rules/program.smk)."""


include: "common.smk"
include: "demo.smk"
include: "tweakreg.smk"
include: "layout.smk"
include: "skymatch.smk"
include: "resample.smk"
include: "outlier_detection.smk"
include: "source_catalog.smk"
include: "tiles.smk"

# the _cat.ecsv and the mosaic plot: of the one mosaic, or of the sky tiles (rules/tiles.smk)
if not TILED:
    ruleorder: source_catalog > merge_catalog
    ruleorder: qa_mosaic > qa_mosaic_tiles
else:
    ruleorder: merge_catalog > source_catalog
    ruleorder: qa_mosaic_tiles > qa_mosaic
include: "qa.smk"



# the products of the steps that run and their QA (the Snakefile's rule all), and the optional
# per-group _i2d files (resample.single: rules/resample.smk)
ALL_TARGETS = [final_outputs(), qa_outputs(), tiled_outputs, SINGLE_I2DS]

# the lock on output_dir, the members' record and identities, once every check above passed
CLAIM_REFUSED = claim_output() if workflow.is_main_process else None
