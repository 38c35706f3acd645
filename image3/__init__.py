"""image3: the JWST calwebb_image3 stage as a Snakemake workflow.

Science lives in this package as functions over arrays and datamodels; the
workflow (Snakefile, rules/, scripts/) only moves files between them.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("image3")
except PackageNotFoundError:  # running from a checkout that was never installed
    __version__ = "0+unknown"
