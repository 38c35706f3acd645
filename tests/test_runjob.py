"""The job edge (image3.runtime.runjob): process settings every rule's script runs under."""

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
