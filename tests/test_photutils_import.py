"""image3.runtime.photutils_import: photutils imported without the distribution scan, unchanged."""

import json
import subprocess
import sys
import textwrap


def test_photutils_import_keeps_photutils_optional_dependencies_and_restores_the_scan():
    """In a fresh interpreter: the optional-dependency table photutils builds when imported
    through image3 equals the one its own scan gives, and importlib's function is back."""
    code = textwrap.dedent("""
        import importlib.metadata, json
        scan = importlib.metadata.packages_distributions
        import image3.detection
        from photutils.utils import _optional_deps as deps
        assert importlib.metadata.packages_distributions is scan
        real_name = scan()["photutils"][0]
        print(json.dumps([deps._pkg_dist_name, real_name, deps._deps_by_key,
                          {d: deps._dist_to_has_key(d)
                           for d in deps._get_optional_deps(real_name)}]))
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    used, real, table, expected_keys = json.loads(out.strip().splitlines()[-1])
    assert used == real == "photutils"
    assert table == {key: dist for dist, key in expected_keys.items()}
    assert table  # photutils 3 lists optional dependencies (matplotlib, scikit-image, ...)
