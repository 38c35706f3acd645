"""Many associations in one run (rules/program.smk): a folder of ASN files, one product each,
one DAG; an association that cannot be read among them."""

import pytest

from image3 import synth
from workflow import assert_same_products, jobs_run, snakemake

pytestmark = pytest.mark.workflow

PRODUCTS = {band: f"jw99999-o001_t001_nircam_clear-{band.lower()}" for band in ("F200W", "F150W")}


def test_a_folder_of_associations_makes_every_product_as_separate_runs_do(tmp_path):
    """Truth: each association run alone. Required: the run over the folder (two good ASNs of
    two bands, 2 dithers of 256², and one ASN that is not JSON) names the bad file in one line
    before any job, makes both products identical to the separate runs' (every array and
    catalogue value), each with its own work and QA folder and its own parameter-table entry,
    and ends non-zero with the bad file in the final summary."""
    data = tmp_path / "data"
    asns = synth.make_program(data, n=2, size=256, seed=3, bands=("F200W", "F150W"))
    (data / "jw99999-o001_image3_00003_asn.json").write_text('{"products": [')
    qa = "{plots: false}"
    for asn, band in zip(asns, PRODUCTS):
        snakemake(tmp_path, "--cores", "2", config={"asn": asn, "output_dir": f"alone_{band}",
                                                    "qa": qa})
    proc = snakemake(tmp_path, "--cores", "2", config={"asn": data, "output_dir": "out",
                                                       "qa": "{plots: true}"}, check=False)
    assert proc.returncode != 0
    errors = [line for line in proc.stderr.splitlines() if line.startswith("image3: ERROR")]
    assert len(errors) == 1 and "jw99999-o001_image3_00003_asn.json: not valid JSON" in errors[0]
    assert proc.stderr.index(errors[0]) < proc.stderr.index("Building DAG")
    assert "jw99999-o001_image3_00003_asn.json" in proc.stderr.split("image3 stopped because of:")[1]
    table = [line for line in proc.stderr.splitlines() if "(from parameters.yaml)" in line]
    assert len(table) == 2 and any("F200W" in t for t in table) and any("F150W" in t for t in table)
    for band, product in PRODUCTS.items():
        assert_same_products(tmp_path / "out", tmp_path / f"alone_{band}", product)
        assert (tmp_path / "out" / "qa" / product / "mosaic.png").is_file()
        assert (tmp_path / "out" / "work" / product / "grid.pkl").is_file()
    ran = jobs_run(proc)
    assert ran.get("all") is None  # the run failed at its end: rule refused_associations
    assert [ran[f"{p.replace('-', '_')}_tweakreg"] for p in PRODUCTS.values()] == [1, 1]

    # the same two as a list on the command line: nothing left to do
    (data / "jw99999-o001_image3_00003_asn.json").unlink()
    again = snakemake(tmp_path, "-n", config={"asn": f"[{asns[0]}, {asns[1]}]",
                                              "output_dir": "out", "qa": "{plots: true}"})
    assert "Nothing to be done" in again.stdout + again.stderr
    lint = snakemake(tmp_path, "--lint", config={"asn": data, "output_dir": "out"})
    assert "Congratulations" in lint.stdout + lint.stderr
