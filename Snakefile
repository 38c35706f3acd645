# image3: JWST calwebb_image3 (tweakreg, skymatch, outlier detection, resample, source
# catalog) as a Snakemake workflow. Usage: README.md; configuration: config/README.md.

from pathlib import Path

from snakemake.utils import min_version

min_version("9.0")


# The user's settings beside the Snakefile, so the workflow runs from any --directory; every
# default is in config/schema.yaml (rules/common.smk validates and fills them in).
configfile: Path(workflow.basedir) / "config" / "config.yaml"

from image3.asn import association_paths, sheet_settings
from image3.errors import Image3Error
from image3.errors import stop_before_any_job as fail

# asn: one association (or _cal), or several (a list, a glob, a folder, a sample sheet): one
# product each
try:
    ASSOCIATIONS = association_paths(config.get("asn"))
    SEVERAL = len(ASSOCIATIONS) > 1 or bool(sheet_settings(config.get("asn")))
except Image3Error as exc:
    fail(exc)


report: "report/workflow.rst"


if SEVERAL:
    include: "rules/program.smk"
else:
    include: "rules/product.smk"


rule all:
    input:
        ALL_TARGETS,
    default_target: not AS_MODULE
