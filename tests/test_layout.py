"""The package shows the stages of the data flow, and imports only point down them.

Read from the sources with `ast` (no import side effects): every `import kale_yaml.X...` and
`from kale_yaml.X... import ...`, inside functions too, counts.
"""

from __future__ import annotations

import ast
from dataclasses import fields
from pathlib import Path

import pytest

from kale_yaml.resolve.model import Config

PACKAGE = Path(__file__).resolve().parent.parent / "kale_yaml"

# Lowest first. A unit may import only units on a lower floor (or itself). The runtime imports nothing of
# kale_yaml but its own modules: generated code carries it into images that have no kale-yaml.
FLOORS: tuple[tuple[str, ...], ...] = (
    ("errors",),
    ("diagnostics", "suggest", "resources", "names", "runtime"),
    ("load",),
    ("resolve",),
    ("analysis",),
    ("plan",),
    ("render",),
    ("run", "authoring", "report"),
    ("api",),
    ("cli",),
    ("__main__",),
)
FLOOR = {unit: level for level, units in enumerate(FLOORS) for unit in units}
MAX_MODULE_LINES = 400
# Modules still over the limit while the renovation splits them; the list only shrinks.
OVERSIZED: set[str] = set()


def _unit(module: str) -> str:
    """`kale_yaml.load.document` -> `load`; the package root's `__init__` is its own unit."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def _module_name(path: Path) -> str:
    relative = path.relative_to(PACKAGE.parent).with_suffix("")
    parts = list(relative.parts)
    if parts[-1] == "__init__" and len(parts) > 1:
        parts.pop()
    return ".".join(parts)


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("kale_yaml."))
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if node.module == "kale_yaml":
                found.update(f"kale_yaml.{a.name}" for a in node.names)
            elif node.module.startswith("kale_yaml."):
                found.add(node.module)
    return found


def _graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        unit = _unit(_module_name(path)) if path.parent != PACKAGE or path.stem != "__init__" else "__init__"
        graph.setdefault(unit, set()).update(_unit(m) for m in _imports(path))
    for unit, targets in graph.items():
        targets.discard(unit)
    return graph


def test_every_unit_has_a_floor() -> None:
    units = set(_graph()) - {"__init__"}
    assert units <= set(FLOOR), f"units with no floor in the layout: {sorted(units - set(FLOOR))}"


def test_imports_point_down_the_stages() -> None:
    upward = [
        f"{unit} -> {target}"
        for unit, targets in _graph().items()
        if unit != "__init__"
        for target in sorted(targets)
        if FLOOR.get(target, -1) >= FLOOR[unit]
    ]
    assert upward == []


def test_the_runtime_imports_only_the_runtime() -> None:
    runtime = [p for p in (PACKAGE / "runtime").rglob("*.py")]
    assert len(runtime) > 1
    imported = {m for p in runtime for m in _imports(p)}
    assert imported and all(m.startswith("kale_yaml.runtime.") for m in imported), sorted(imported)


def test_only_load_and_resolve_see_the_yaml_document() -> None:
    """Resolve turns the document into a typed `Config`; no later stage reads YAML from it."""
    readers = sorted(
        str(path.relative_to(PACKAGE))
        for path in PACKAGE.rglob("*.py")
        if path.parent.name not in ("load", "resolve") and "kale_yaml.load.document" in _imports(path)
    )
    assert readers == []
    assert "document" not in {f.name for f in fields(Config)}


def test_only_the_command_line_imports_api() -> None:
    importers = sorted(unit for unit, targets in _graph().items() if "api" in targets)
    assert importers in ([], ["cli"])


@pytest.mark.parametrize("path", sorted(PACKAGE.rglob("*.py")), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_modules_stay_small(path: Path) -> None:
    lines = len(path.read_text(encoding="utf-8").splitlines())
    if str(path.relative_to(PACKAGE)) in OVERSIZED:
        pytest.skip(f"{path.name} ({lines} lines) is being split")
    assert lines <= MAX_MODULE_LINES, f"{path.name} has {lines} lines"
