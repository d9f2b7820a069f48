"""Whatever a sidecar or notebook holds, validate succeeds or gives located diagnostics: never a crash."""

from __future__ import annotations

import ast
import copy
import json
import shutil
from pathlib import Path
from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kale_yaml import api
from kale_yaml.errors import KaleYamlError
from tests.conftest import REPO

WINE = REPO / "examples" / "wine"
BASE: dict[str, Any] = yaml.safe_load((WINE / "pipeline.kale.yaml").read_text(encoding="utf-8"))
NOTEBOOK: dict[str, Any] = json.loads((WINE / "wine.ipynb").read_text(encoding="utf-8"))
KEYS = [
    "version",
    "notebook",
    "pipeline",
    "name",
    "steps",
    "cells",
    "after",
    "heading",
    "from",
    "to",
    "id",
    "match",
    "parameters",
    "values",
    "prelude",
    "skip",
    "metrics",
    "names",
    "step",
    "volumes",
    "mount",
    "claim",
    "create",
    "snapshots",
    "when",
    "image",
    "packages",
    "resources",
    "cpu",
    "memory",
    "inputs",
    "outputs",
    "timeout",
]
scalars = (
    st.none()
    | st.booleans()
    | st.integers(-3, 40)
    | st.floats(allow_nan=True)
    | st.text(max_size=12)
    | st.sampled_from(KEYS)
    | st.sampled_from(["3-6", "Split", "^# scratch", "load_data", "evaluate", "train_forest", "imports"])
)
values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(st.sampled_from(KEYS) | st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=8,
)


def _paths(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [prefix]
    if isinstance(node, dict):
        for key, value in node.items():
            found += _paths(value, (*prefix, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            found += _paths(value, (*prefix, index))
    return found


@st.composite
def mutated_sidecars(draw: st.DrawFn) -> Any:
    data: Any = copy.deepcopy(BASE)
    for _ in range(draw(st.integers(1, 4))):
        paths = _paths(data)
        path = draw(st.sampled_from(paths))
        action = draw(st.sampled_from(["replace", "delete", "add"]))
        if not path:
            if action == "replace":
                data = draw(values)
            continue
        parent = data
        for part in path[:-1]:
            parent = parent[part]
        last = path[-1]
        if action == "replace":
            parent[last] = draw(values)
        elif action == "delete":
            del parent[last]
        elif isinstance(parent[last], dict):
            parent[last][draw(st.sampled_from(KEYS) | st.text(max_size=6))] = draw(values)
        elif isinstance(parent[last], list):
            parent[last].insert(draw(st.integers(0, len(parent[last]))), draw(values))
    return data


def _check(folder: Path) -> None:
    try:
        project = api.validate(folder)
    except KaleYamlError as exc:
        for d in exc.diagnostics:
            assert d.line is not None or d.cell is not None, f"unlocated: {d}"
            assert d.message, "empty message"
        return
    ast.parse(api.generate(project))  # what validates also renders to Python


def _workspace(tmp_path_factory: Any) -> Path:
    folder: Path = tmp_path_factory.mktemp("fuzz")
    shutil.copy(WINE / "wine.ipynb", folder / "wine.ipynb")
    return folder


FUZZ = settings(max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@FUZZ
@given(data=mutated_sidecars())
def test_mutated_sidecars_give_located_errors_or_validate(data: Any, tmp_path_factory: Any) -> None:
    folder = _workspace(tmp_path_factory)
    (folder / "pipeline.kale.yaml").write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    _check(folder)


@FUZZ
@given(text=st.text(max_size=300) | st.binary(max_size=200).map(lambda b: b.decode("latin-1")))
def test_arbitrary_text_gives_located_errors(text: str, tmp_path_factory: Any) -> None:
    folder = _workspace(tmp_path_factory)
    (folder / "pipeline.kale.yaml").write_text(text, encoding="utf-8")
    _check(folder)


@st.composite
def edited_notebooks(draw: st.DrawFn) -> dict[str, Any]:
    notebook = copy.deepcopy(NOTEBOOK)
    cells: list[dict[str, Any]] = notebook["cells"]
    for _ in range(draw(st.integers(1, 4))):
        action = draw(st.sampled_from(["insert", "delete", "swap", "edit"]))
        if action == "insert" or not cells:
            kind = draw(st.sampled_from(["code", "markdown", "raw"]))
            source = draw(
                st.sampled_from(["x = 1", "print(df)", "## Split", "%%bash\nls", "import os", "", "y ="])
            )
            cell: dict[str, Any] = {
                "cell_type": kind,
                "id": f"new{len(cells)}",
                "metadata": {},
                "source": source,
            }
            if kind == "code":
                cell.update(outputs=[], execution_count=None)
            cells.insert(draw(st.integers(0, len(cells))), cell)
        elif action == "delete":
            del cells[draw(st.integers(0, len(cells) - 1))]
        elif action == "swap":
            i, j = draw(st.integers(0, len(cells) - 1)), draw(st.integers(0, len(cells) - 1))
            cells[i], cells[j] = cells[j], cells[i]
        else:
            target = cells[draw(st.integers(0, len(cells) - 1))]
            target["source"] = draw(st.text(max_size=40))
    return notebook


@FUZZ
@given(notebook=edited_notebooks())
def test_edited_notebooks_give_located_errors_or_validate(
    notebook: dict[str, Any], tmp_path_factory: Any
) -> None:
    folder = _workspace(tmp_path_factory)
    shutil.copy(WINE / "pipeline.kale.yaml", folder / "pipeline.kale.yaml")
    (folder / "wine.ipynb").write_text(json.dumps(notebook), encoding="utf-8")
    _check(folder)


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=mutated_sidecars())
def test_mutated_sidecars_that_validate_also_compile(data: Any, tmp_path_factory: Any) -> None:
    folder = _workspace(tmp_path_factory)
    (folder / "pipeline.kale.yaml").write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    try:
        result = api.build(folder)
    except KaleYamlError as exc:
        assert all(d.line is not None or d.cell is not None for d in exc.diagnostics)
        return
    assert yaml.safe_load(result.yaml_path.read_text(encoding="utf-8"))["pipelineInfo"]
