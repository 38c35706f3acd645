"""The job edge (image3.runtime.runjob): process settings every rule's script runs under."""

import errno
import types

import asdf
import pytest
import yaml

from image3.runtime import runjob


@pytest.mark.skipif(not getattr(yaml, "__with_libyaml__", False), reason="PyYAML without libyaml")
def test_c_yaml_reads_every_asdf_resource_as_the_python_parser(monkeypatch):
    """The faster safe_load a job installs builds the same objects from every YAML resource
    asdf knows (extension manifests and schemas of all installed packages: 914 here)."""
    python_parser = yaml.safe_load
    monkeypatch.setattr(yaml, "safe_load", python_parser)
    runjob._parse_yaml_in_c()
    assert yaml.safe_load is not python_parser
    resources = asdf.get_config().resource_manager
    checked = 0
    for uri in resources:
        text = resources[uri]
        assert yaml.safe_load(text) == python_parser(text), uri
        checked += 1
    assert checked > 100


def _run_job(tmp_path, failure):
    """A job body raising ``failure``, as a rule's script runs it: (exit code, log text)."""
    fake = types.SimpleNamespace(log=[str(tmp_path / "logs" / "rule.log")], rule="resample")
    with pytest.raises(SystemExit) as stopped:
        with runjob.job(fake):
            raise failure
    return stopped.value.code, (tmp_path / "logs" / "rule.log").read_text()


@pytest.mark.parametrize("failure, line", [
    (OSError(errno.ENOSPC, "No space left on device", "/out/x_i2d.fits"),
     "/out/x_i2d.fits: No space left on device (rule resample; details in "),
    (OSError("Not enough space on disk: requested 4155627, available 0"),
     "Not enough space on disk: requested 4155627, available 0 (OSError) (rule resample; "),
    (PermissionError(errno.EACCES, "Permission denied", "/out/work/grid.pkl"),
     "/out/work/grid.pkl: Permission denied (rule resample; "),
])
def test_an_os_error_is_one_line_naming_the_file_and_the_traceback_goes_to_the_log(
        tmp_path, capfd, failure, line):
    code, log = _run_job(tmp_path, failure)
    err = capfd.readouterr().err.strip().splitlines()
    assert code == 1 and len(err) == 1 and err[0].startswith(f"image3: ERROR: {line}"), err
    assert "Traceback" in log
    assert (tmp_path / "logs" / runjob.ERRORS_FILE).read_text().startswith(line)


def test_a_bug_is_one_line_on_the_terminal_and_its_traceback_in_the_log(tmp_path, capfd):
    code, log = _run_job(tmp_path, ZeroDivisionError("division by zero"))
    err = capfd.readouterr().err.strip().splitlines()
    assert code == 1 and err == [f"image3: ERROR: unexpected failure in rule resample; see "
                                 f"{tmp_path / 'logs' / 'rule.log'}"], err
    assert "Traceback" in log and "ZeroDivisionError" in log
