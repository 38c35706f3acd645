"""Rule qa_parameters: every step parameter of the run and where its value came from (HTML
table, shown in the report)."""

from image3.runtime.jobserver import delegate

delegate(snakemake)  # on a local run, the job server runs the rest (image3/runtime/jobserver.py)

from astropy.table import Table

from image3.datamodel import atomic_path
from image3.runtime.runjob import job

CSS = ("table {border-collapse: collapse; font-family: sans-serif; font-size: 90%} "
       "td, th {border: 1px solid #ccc; padding: 2px 8px; text-align: left}")

with job(snakemake) as log:
    rows = snakemake.params.rows
    table = Table(rows=rows, names=("step", "parameter", "value", "source"))
    with atomic_path(snakemake.output[0]) as tmp:
        table.write(tmp, format="ascii.html", overwrite=True, htmldict={"css": CSS})
    changed = [f"{step}.{key}={value} ({source})" for step, key, value, source in rows
               if source != "default"]
    log.info("wrote %s: %d parameters, %d not the default: %s", snakemake.output[0],
             len(rows), len(changed), ", ".join(changed) or "none")
