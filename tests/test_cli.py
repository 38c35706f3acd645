"""The `image3` command: parameter overrides become Snakemake config, and a dry run goes through
it. A whole run through it, checked against Snakemake's products, is in test_resume.py."""

import subprocess
import sys

import pytest

from image3 import cli, synth


def test_set_overrides_group_by_step():
    items = cli._overrides(["resample.pixfrac=0.8", "resample.kernel=gaussian",
                            "tweakreg.skip=true", "output_dir=out"])
    assert items == ["output_dir=out", "resample={pixfrac: 0.8, kernel: gaussian}",
                     "tweakreg={skip: true}"]


def test_run_becomes_snakemake(monkeypatch, tmp_path):
    """The command replaces itself by Snakemake (exec): a SIGTERM sent to `image3 run` reaches
    Snakemake, and no Snakemake is left running once `image3` is gone (with a child process it
    was: the issue's orphan)."""
    called = []

    def execv(path, argv):
        called.append((path, argv))
        raise SystemExit(0)

    monkeypatch.setattr(cli.os, "execv", execv)
    with pytest.raises(SystemExit):
        cli.main(["run", str(tmp_path / "x_asn.json"), "--cores", "1", "--", "-n"])
    (path, argv), = called
    assert path == sys.executable and argv[:3] == [sys.executable, "-m", "snakemake"]
    assert "-n" in argv and f"asn={tmp_path / 'x_asn.json'}" in argv


@pytest.mark.workflow
def test_dry_run_through_the_command(tmp_path):
    asn = synth.make_association(tmp_path / "data", n=2, size=256, seed=2)
    proc = subprocess.run([sys.executable, "-m", "image3.cli", "run", str(asn), "--cores", "1",
                           "--set", "resample.pixfrac=0.9", "--", "-n"], cwd=tmp_path,
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "resample" in proc.stdout + proc.stderr


@pytest.mark.parametrize("argv", [["--help"], ["run", "--help"]])
def test_help_is_plain_text(argv, capsys):
    """The help a terminal shows holds no reST markup (issue 29)."""
    with pytest.raises(SystemExit) as stop:
        cli.main(argv)
    assert stop.value.code == 0
    shown = capsys.readouterr().out
    assert "image3" in shown and "``" not in shown and ":func:" not in shown
