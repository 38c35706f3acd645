"""The job edge (image3.runtime.runjob): process settings every rule's script runs under."""

import builtins
import errno
import io
import os
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
    (OSError(errno.EROFS, "Read-only file system", "/out/work/sky.json"),
     "/out/work/sky.json: Read-only file system (rule resample; "),
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


class _FullDisk(io.FileIO):
    """A file on a disk with 64 kB free: a write beyond it fails as the kernel's does (ENOSPC,
    naming no file)."""

    FREE = 64 * 1024

    def write(self, data):
        if self.tell() + len(memoryview(data).cast("B")) > self.FREE:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return super().write(data)


def test_a_full_disk_while_writing_a_product_is_one_line_and_leaves_no_file(
        tmp_path, capfd, monkeypatch):
    """A real product write (an _i2d-sized datamodel through save_model) on a full disk: one
    line naming the product, the traceback in the log, nothing under the product's name and no
    temporary file left (issue 29)."""
    import numpy as np
    from stdatamodels.jwst import datamodels

    from image3.datamodel import save_model

    out = tmp_path / "out"
    product = out / "x_i2d.fits"
    real_open = builtins.open

    def open_on_a_full_disk(file, mode="r", *args, **kwargs):
        if str(file).startswith(str(out)) and any(c in mode for c in "wax+"):
            return _FullDisk(file, mode.replace("t", ""))
        return real_open(file, mode, *args, **kwargs)

    fake = types.SimpleNamespace(log=[str(tmp_path / "logs" / "rule.log")], rule="resample",
                                 output=[str(product)])
    model = datamodels.ImageModel(np.ones((200, 200), np.float32))
    monkeypatch.setattr(builtins, "open", open_on_a_full_disk)
    with pytest.raises(SystemExit) as stopped:
        with runjob.job(fake):
            save_model(model, product)
    monkeypatch.undo()
    err = capfd.readouterr().err.strip().splitlines()
    assert stopped.value.code == 1 and len(err) == 1, err
    assert err[0].startswith(f"image3: ERROR: No space left on device (OSError) while making "
                             f"{product} (rule resample; details in "), err
    assert "Traceback" in (tmp_path / "logs" / "rule.log").read_text()
    assert list(out.iterdir()) == []
