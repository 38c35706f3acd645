"""`snakemake --report` after a run (issue 12): the zip and the self-contained HTML carry every
QA plot with its caption, in its stage's category, and the run time of every rule.

The run is conftest's ``small_run`` (3 × 256², every stage runs); the report only reads what it
left, so it takes a few seconds.
"""

import base64
import json
import re
import zipfile

import pytest

from workflow import snakemake

PLOTS = {"mosaic.png": "resample", "tweakreg.png": "tweakreg", "skymatch.png": "skymatch",
         "outliers.png": "outlier_detection", "catalog.png": "source_catalog",
         "parameters.html": "parameters"}


def _script_json(html: str, name: str):
    """A JSON object the report assigns to ``var <name> = {...};``."""
    return json.loads(re.search(rf"var {name} = (\{{.*?\}});\s*\n", html, re.S).group(1))


def _check(html: str, out, embedded) -> None:
    """``embedded(data_uri)``: the bytes the report holds for a result (a base64 data URI in
    the HTML, a path inside the zip)."""
    results = _script_json(html, "results")
    by_name = {entry["name"]: (path, entry) for path, entry in results.items()}
    assert set(by_name) == set(PLOTS), sorted(by_name)
    categories = _script_json(html, "categories")
    for name, step in PLOTS.items():
        path, entry = by_name[name]
        assert path == f"out/qa/{name}"
        assert entry["labels"]["step"] in (step, "all") and len(entry["caption"]) > 200, name
        # made by its QA rule (job_properties: a dict, or its repr when params are long)
        assert f"'rule': 'qa_{name.split('.')[0]}'" in str(entry["job_properties"]), name
        assert [path] == [p for subs in categories[step].values() for p in subs]
        assert embedded(entry["data_uri"]) == (out / "qa" / name).read_bytes(), name
    runtimes = _script_json(html, "runtimes_spec")["data"]["values"]
    ran = {row["rule"] for row in runtimes}
    assert {"qa_mosaic", "qa_tweakreg", "qa_skymatch", "qa_outliers", "qa_catalog",
            "resample", "source_catalog"} <= ran


@pytest.mark.workflow
def test_report_zip_and_html_carry_every_qa_plot(small_association, small_run):
    config = {"asn": small_association, "output_dir": "out", "qa": "{plots: true}"}  # small_run's
    out = small_run / "out"
    snakemake(small_run, "--report", "report.zip", config=config)
    with zipfile.ZipFile(small_run / "report.zip") as archive:
        names = archive.namelist()
        assert sorted(n.rsplit("/", 1)[1] for n in names if "/data/raw/" in n) == sorted(PLOTS)
        _check(archive.read("report/report.html").decode(), out,
               lambda uri: archive.read(f"report/{uri}"))
    snakemake(small_run, "--report", "report.html", config=config)
    html = (small_run / "report.html").read_text()
    _check(html, out, lambda uri: base64.b64decode(uri.split("base64,", 1)[1]))
    sizes = {p.name: p.stat().st_size / 1e6 for p in (small_run / "report.zip",
                                                       small_run / "report.html")}
    print(f"\nFIGURE report sizes {sizes} MB")
