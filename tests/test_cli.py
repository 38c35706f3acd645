"""The `image3` command: parameter overrides become Snakemake config, and a dry run goes through
it. A whole run through it, checked against Snakemake's products, is in test_resume.py."""

import pytest

from image3 import cli, synth


def test_set_overrides_group_by_step():
    items = cli._overrides(["resample.pixfrac=0.8", "resample.kernel=gaussian",
                            "tweakreg.skip=true", "output_dir=out"])
    assert items == ["output_dir=out", "resample={pixfrac: 0.8, kernel: gaussian}",
                     "tweakreg={skip: true}"]


@pytest.mark.workflow
def test_dry_run_through_the_command(tmp_path, monkeypatch, capfd):
    asn = synth.make_association(tmp_path / "data", n=2, size=256, seed=2)
    monkeypatch.chdir(tmp_path)
    assert cli.main(["run", str(asn), "--cores", "1", "--set", "resample.pixfrac=0.9",
                     "--", "-n"]) == 0
    out = capfd.readouterr()
    assert "resample" in out.out + out.err
