"""Many associations in one run (rules/program.smk): a folder of ASN files, one product each,
one DAG; an association that cannot be read among them."""

import json

import pytest
from astropy.io import fits
from astropy.wcs import WCS

from image3 import synth
from image3.asn import read_association
from image3.program_grid import band_grids, read_band_footprint
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
    # the two bands overlap: one target, one projection (image3.program_grid), which the
    # separate runs are given
    bands = {read_association(a).product: read_band_footprint(
        [m.path for m in read_association(a).members]) for a in asns}
    grids = band_grids(bands)
    for asn, band in zip(asns, PRODUCTS):
        grid = grids[PRODUCTS[band]]
        resample = ", ".join(f"{k}: {v}" for k, v in grid.items())
        snakemake(tmp_path, "--cores", "2", config={"asn": asn, "output_dir": f"alone_{band}",
                                                    "qa": qa, "resample": f"{{{resample}}}"})
    # one fit for the two bands' exposures (program.joint_alignment): one job in place of two
    dry = jobs_run(snakemake(tmp_path, "-n", config={"asn": data, "output_dir": "joint"}))
    assert dry["tweakreg_target1"] == 1 and not any(k.endswith("_tweakreg") for k in dry)
    # separate runs align each band alone: so does this run, to compare every value
    proc = snakemake(tmp_path, "--cores", "2", config={
        "asn": data, "output_dir": "out", "qa": "{plots: true}",
        "program": "{joint_alignment: false}"}, check=False)
    assert proc.returncode != 0
    errors = [line for line in proc.stderr.splitlines() if line.startswith("image3: ERROR")]
    assert len(errors) == 1 and "jw99999-o001_image3_00003_asn.json: not valid JSON" in errors[0]
    assert proc.stderr.index(errors[0]) < proc.stderr.index("Building DAG")
    assert "jw99999-o001_image3_00003_asn.json" in proc.stderr.split("image3 stopped because of:")[1]
    table = [line for line in proc.stderr.splitlines() if "(from parameters.yaml)" in line]
    assert len(table) == 2 and any("F200W" in t for t in table) and any("F150W" in t for t in table)
    headers = [fits.getheader(tmp_path / "out" / f"{p}_i2d.fits", "SCI") for p in PRODUCTS.values()]
    for key in ("CRVAL1", "CRVAL2", "CDELT1", "CDELT2", "PC1_1", "PC1_2", "PC2_1", "PC2_2"):
        assert headers[0][key] == headers[1][key], key  # one projection and pixel scale
    for axis in ("CRPIX1", "CRPIX2"):  # pixels of the two bands: whole pixels apart
        assert (headers[0][axis] - headers[1][axis]) % 1 == 0
    x, y = headers[0]["CRPIX1"] - 1, headers[0]["CRPIX2"] - 1  # north up at the tangent point
    up = WCS(headers[0]).pixel_to_world([x, x], [y, y + 10])
    assert abs((up[0].position_angle(up[1]).deg + 180) % 360 - 180) < 1e-6
    # the QA page of the target's bands: a colour image and each band's offsets
    assert (tmp_path / "out" / "qa" / "jw99999-o001_t001_nircam_clear_bands.png").is_file()
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
                                              "output_dir": "out", "qa": "{plots: true}",
                                              "program": "{joint_alignment: false}"})
    assert "Nothing to be done" in again.stdout + again.stderr
    # a member listed by two associations: its sources are found once
    spec = json.loads(asns[0].read_text())
    spec["asn_id"], spec["products"][0]["name"] = "o099", "jw99999-o099_t001_nircam_clear-f200w"
    for member in spec["products"][0]["members"]:
        member["expname"] = str(data / member["expname"])
    (tmp_path / "more").mkdir()
    (tmp_path / "more" / "o099_asn.json").write_text(json.dumps(spec))
    both = jobs_run(snakemake(tmp_path, "-n", config={
        "asn": f"[{asns[0]}, {tmp_path / 'more' / 'o099_asn.json'}]", "output_dir": "shared"}))
    assert sum(n for rule, n in both.items() if rule.endswith("find_sources")) == 2
    # a sample sheet of the two (one target by its column), one with a setting of its own: a
    # bad value there is named
    (data / "program.csv").write_text(f"asn,resample.pixfrac,target\n{asns[0].name},0.8,a\n"
                                      f"{asns[1].name},,a\n")
    sheet = jobs_run(snakemake(tmp_path, "-n", config={"asn": data / "program.csv",
                                                       "output_dir": "sheet"}))
    assert sum(n for rule, n in sheet.items() if rule.endswith("_resample")) == 2
    (data / "program.csv").write_text(f"asn,resample.pixfrac\n{asns[0].name},2\n")
    refused = snakemake(tmp_path, "-n", check=False, config={"asn": data / "program.csv",
                                                             "output_dir": "sheet"})
    assert refused.returncode != 0 and "resample.pixfrac = 2 is invalid" in refused.stderr
    lint = snakemake(tmp_path, "--lint", config={"asn": data, "output_dir": "out"})
    assert "Congratulations" in lint.stdout + lint.stderr
