"""image3's imports point down the pipeline, never back up (style.md; issue 23).

Every module of image3/ is parsed with ``ast``, nothing imported or run, and each import of an
image3 module is read, at module level or inside a function: ``import image3.x``,
``from image3.x import ...``, ``from .x import ...``, ``from . import x``. The rules:

- a step module imports shared science and the modules of its own step or of earlier steps
  in :data:`PIPELINE`, never those of a later step;
- shared science imports no step module;
- no science module (step or shared) imports the synthetic sky (``image3.synth``) or the
  command line (``image3.cli``);
- ``image3.runtime`` (how jobs run) imports no science module but ``errors``.

Every module of image3/ is named below as a step's, shared science or not science, so a new
one is placed on purpose.
"""

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "image3"

#: The steps in the order the pipeline runs them, with their modules.
PIPELINE = (
    ("tweakreg", ("joint_fit", "tweakreg")),
    ("skymatch", ("sky_offsets", "skymatch")),
    ("outlier_detection", ("outlier", "median", "intermediates")),
    ("resample", ("mosaic", "flag", "hdrtab")),
    ("source_catalog", ("catalog", "tile_background")),
    ("qa", ("qa",)),
)
#: What the steps share; ``image3`` is the package itself (its version).
SHARED = {"image3", "asn", "background", "config", "datamodel", "detection", "dqflags", "errors",
          "footprints", "grid", "input_identity", "inspect", "kept", "parameters",
          "photometry_refs", "program_grid", "refcat", "resample", "sidecar", "sip", "statistics",
          "steps", "tiles", "wcs"}
#: Not science: the command line, how jobs run, the synthetic sky (test and demo data).
NOT_SCIENCE = {"cli", "runtime", "synth"}

STEP_OF = {module: rank for rank, (_, modules) in enumerate(PIPELINE) for module in modules}
SCIENCE = set(STEP_OF) | SHARED


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _is_module(name: str) -> bool:
    path = PACKAGE.parent.joinpath(*name.split("."))
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def _imported(path: Path) -> dict[str, int]:
    """image3 modules that ``path`` imports (dotted names), with the line of the first import."""
    name = _module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: dict[str, int] = {}
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[:len(package.split(".")) - node.level + 1]
                source = ".".join(base + ([node.module] if node.module else []))
            else:
                source = node.module or ""
            # ``from package import x``: x is a module of the package, or a name in it
            targets = [f"{source}.{alias.name}" if _is_module(f"{source}.{alias.name}") else source
                       for alias in node.names]
        else:
            continue
        for target in targets:
            if target == "image3" or target.startswith("image3."):
                found.setdefault(target, node.lineno)
    return found


def _top(name: str) -> str:
    """The name a module is placed by: ``image3.runtime.forked`` -> ``runtime``."""
    parts = name.split(".")
    return parts[1] if len(parts) > 1 else parts[0]


def _imports():
    """(importer, imported, line) for every import of an image3 module inside image3/."""
    return [(_module_name(path), imported, line)
            for path in sorted(PACKAGE.rglob("*.py"))
            for imported, line in _imported(path).items()]


def test_every_module_is_placed_as_a_step_shared_science_or_not_science():
    placed = set(STEP_OF) | SHARED | NOT_SCIENCE
    found = {_top(_module_name(path)) for path in PACKAGE.rglob("*.py")}
    assert found - placed == set(), "modules to add to PIPELINE, SHARED or NOT_SCIENCE"
    assert placed - found == set(), "names in PIPELINE, SHARED or NOT_SCIENCE without a module"
    assert SHARED.isdisjoint(STEP_OF) and NOT_SCIENCE.isdisjoint(SCIENCE)


def test_imports_point_down_the_pipeline_never_back_up():
    upward = []
    for importer, imported, line in _imports():
        source, target = _top(importer), _top(imported)
        if source not in SCIENCE or target not in STEP_OF:
            continue
        if source in SHARED or STEP_OF[target] > STEP_OF[source]:
            upward.append(f"{importer} (line {line}) imports {imported}, of the "
                          f"{PIPELINE[STEP_OF[target]][0]} step")
    assert upward == [], "imports that climb back up the pipeline:\n" + "\n".join(upward)


@pytest.mark.parametrize("forbidden", ["synth", "cli"])
def test_science_never_imports_the_synthetic_sky_or_the_command_line(forbidden):
    found = [f"{importer} (line {line}) imports {imported}"
             for importer, imported, line in _imports()
             if _top(importer) in SCIENCE and _top(imported) == forbidden]
    assert found == []


def test_runtime_imports_no_science_but_errors():
    found = [f"{importer} (line {line}) imports {imported}"
             for importer, imported, line in _imports()
             if _top(importer) == "runtime" and _top(imported) not in {"runtime", "errors"}]
    assert found == []
