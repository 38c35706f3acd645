# image3: JWST calwebb_image3 (tweakreg, skymatch, outlier detection, resample, source
# catalog) as a Snakemake workflow. Usage: README.md; configuration: config/README.md.

from pathlib import Path

from snakemake.utils import min_version

min_version("9.0")


# The user's settings beside the Snakefile, so the workflow runs from any --directory; every
# default is in config/schema.yaml (rules/common.smk validates and fills them in).
configfile: Path(workflow.basedir) / "config" / "config.yaml"


report: "report/workflow.rst"


include: "rules/common.smk"
include: "rules/demo.smk"
include: "rules/tweakreg.smk"
include: "rules/layout.smk"
include: "rules/skymatch.smk"
include: "rules/resample.smk"
include: "rules/outlier_detection.smk"
include: "rules/source_catalog.smk"
include: "rules/tiles.smk"

# the _cat.ecsv and the mosaic plot: of the one mosaic, or of the sky tiles (rules/tiles.smk)
if not TILED:
    ruleorder: source_catalog > merge_catalog
    ruleorder: qa_mosaic > qa_mosaic_tiles
else:
    ruleorder: merge_catalog > source_catalog
    ruleorder: qa_mosaic_tiles > qa_mosaic
include: "rules/qa.smk"


rule all:
    input:
        final_outputs(),
        qa_outputs(),
        tiled_outputs,
    default_target: not AS_MODULE
