"""The `image3` command: parameter overrides become Snakemake config, and a run gives the
products of the same run through Snakemake."""

import pytest

from image3 import cli, synth
from workflow import assert_same_products


def test_set_overrides_group_by_step():
    items = cli._overrides(["resample.pixfrac=0.8", "resample.kernel=gaussian",
                            "tweakreg.skip=true", "output_dir=out"])
    assert items == ["output_dir=out", "resample={pixfrac: 0.8, kernel: gaussian}",
                     "tweakreg={skip: true}"]


def test_dry_run_through_the_command(tmp_path, monkeypatch, capfd):
    from image3 import synth

    asn = synth.make_association(tmp_path / "data", n=2, size=256, seed=2)
    monkeypatch.chdir(tmp_path)
    assert cli.main(["run", str(asn), "--cores", "1", "--set", "resample.pixfrac=0.9",
                     "--", "-n"]) == 0
    out = capfd.readouterr()
    assert "resample" in out.out + out.err


@pytest.mark.workflow
def test_run_gives_the_products_of_snakemake(small_association, small_run, tmp_path,
                                             monkeypatch):
    """`image3 run` (here with --cores 1, so its jobs also run in another order than with 2)
    gives products equal, array by array and value by value, to `snakemake --cores all`'s
    (conftest's small_run): the same workflow, defaults and parameter table."""
    monkeypatch.chdir(tmp_path)
    assert cli.main(["run", str(small_association), "--cores", "1", "--output-dir", "out"]) == 0
    assert_same_products(tmp_path / "out", small_run / "out", synth.PRODUCT_NAME)
    assert sorted(p.name for p in (tmp_path / "out" / "qa").iterdir()) == sorted(
        p.name for p in (small_run / "out" / "qa").iterdir())
