"""Rule find_sources: one member's source list for tweakreg (found, or the user's catalogue)
and its geometry sidecar (gwcs, shape, wcsinfo), so later joins need not open the _cal."""

from image3.runtime.jobserver import delegate

delegate(snakemake)  # on a local run, the job server runs the rest (image3/runtime/jobserver.py)

from image3.parameters import SourceFinding
from image3.runtime.runjob import job
from image3.tweakreg import find_exposure_sources

with job(snakemake) as log:
    count, origin = find_exposure_sources(
        snakemake.input.cal, snakemake.output.sources, snakemake.output.geometry,
        SourceFinding.from_config(snakemake.params.finding), snakemake.input.get("catalog"))
    log.info("%s: %d sources (%s)", snakemake.wildcards.member, count, origin)
