"""image3 as a Snakemake module of a user's own workflow (README, "In your own workflow"): a
parent Snakefile in a temporary folder imports every rule, passes its association and settings
as the module's ``config:``, and runs a rule of its own that reads the ``_i2d``."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
from astropy.io import fits

from image3 import synth

ROOT = Path(__file__).resolve().parents[1]

PARENT = """
rule all:
    input: "shape.json"

module image3:
    snakefile: {snakefile!r}
    config: {config!r}

use rule * from image3 as image3_*

rule mosaic_shape:
    input: "out/{product}_i2d.fits"
    output: "shape.json"
    run:
        import json
        from astropy.io import fits
        shape = fits.getheader(input[0], "SCI")
        with open(output[0], "w") as out:
            json.dump([shape["NAXIS2"], shape["NAXIS1"]], out)
"""


@pytest.mark.workflow
def test_a_parent_workflow_uses_image3_as_a_module(tmp_path):
    """Truth: the parent's first rule is the default target (image3's ``all`` does not take it
    over), its DAG
    holds image3's rules under the prefix, and a run to that rule makes the i2d it reads. The
    module's ``config:`` sets ``source_catalog.kernel_fwhm`` and ``tweakreg.kernel_fwhm``,
    which the parameter table also sets for NIRCam F200W: the module's values are the user's,
    so the table changes neither (the table line names neither)."""
    asn = synth.make_association(tmp_path / "data", n=2, size=256, seed=4)
    config = {"asn": str(asn), "output_dir": "out", "qa": {"plots": False},
              "tweakreg": {"kernel_fwhm": 2.5}, "source_catalog": {"kernel_fwhm": 3.0, "skip": True}}
    (tmp_path / "Snakefile").write_text(PARENT.format(
        snakefile=str(ROOT / "Snakefile"), config=config, product=synth.PRODUCT_NAME))
    base = [sys.executable, "-m", "snakemake", "--directory", str(tmp_path), "--cores", "2"]
    plan = subprocess.run([*base, "-n"], capture_output=True, text=True, cwd=tmp_path)
    assert plan.returncode == 0, plan.stderr[-3000:]
    assert "rule mosaic_shape:" in plan.stdout and "rule image3_resample:" in plan.stdout
    assert "image3_all" not in plan.stdout  # the parent's own target, not image3's
    table = [line for line in plan.stderr.splitlines() if "(from parameters.yaml)" in line]
    assert not any("kernel_fwhm" in line for line in table), table
    run = subprocess.run(base, capture_output=True, text=True, cwd=tmp_path)
    assert run.returncode == 0, run.stderr[-3000:]
    ny, nx = json.loads((tmp_path / "shape.json").read_text())
    assert fits.getdata(tmp_path / "out" / f"{synth.PRODUCT_NAME}_i2d.fits", "SCI").shape == (ny, nx)
    print(f"\nFIGURE module run: i2d {nx} x {ny}")
