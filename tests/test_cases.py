"""Every case folder: valid ones validate and generate the snapshot code; invalid ones fail with the
snapshot error text. Error wording is reviewed like code."""

from __future__ import annotations

import ast
import os
from pathlib import Path

import pytest
import yaml
from syrupy.assertion import SnapshotAssertion

from kale_yaml import api
from kale_yaml.errors import KaleYamlError
from kale_yaml.render.runtime_code import runtime_function
from tests.conftest import REPO, CopyCase, case_dirs

VALID = case_dirs("valid")
INVALID = case_dirs("invalid")
EXAMPLES = sorted(p.parent for p in (REPO / "examples").glob("*/pipeline.kale.yaml"))
RUNTIME_PLACEHOLDER = (
    f"def {runtime_function().name}():\n"
    "    '<the kale-yaml runtime: kale_yaml/runtime/ as one function, see tests/test_runtime_code.py>'\n"
)


def _ids(paths: list[Path]) -> list[str]:
    return [p.name for p in paths]


def reviewable(source: str, project: api.Project | None = None) -> str:
    """Generated code with the runtime function (the same in every pipeline, tested apart) folded away, and
    the versions `packages: auto` pins (those installed here, tested in test_packages.py) as `<installed>`."""
    source = source.replace(runtime_function().source, RUNTIME_PLACEHOLDER)
    pins = {
        requirement
        for environment in (project.environments.steps.values() if project else ())
        for requirement in environment.install
        if "==" in requirement
    }
    for requirement in sorted(pins):
        name = requirement.partition("==")[0]
        source = source.replace(repr(requirement), repr(f"{name}==<installed>"))
    return source


@pytest.mark.parametrize("folder", VALID + EXAMPLES, ids=_ids(VALID + EXAMPLES))
def test_valid_case_generates_snapshot_code(folder: Path, code_snapshot: SnapshotAssertion) -> None:
    project = api.validate(folder)
    source = api.generate(project)
    ast.parse(source)
    assert reviewable(source, project) == code_snapshot


@pytest.mark.parametrize("folder", INVALID, ids=_ids(INVALID))
def test_invalid_case_reports_located_errors(
    folder: Path, snapshot: SnapshotAssertion, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(folder)
    with pytest.raises(KaleYamlError) as caught:
        api.validate(".")
    for diagnostic in caught.value.diagnostics:
        located = diagnostic.line is not None or diagnostic.cell is not None
        assert located, f"unlocated diagnostic: {diagnostic}"
    assert "\n".join(str(d) for d in caught.value.diagnostics) == snapshot


def test_runtime_is_defined_once_and_carried_by_every_step(copy_case: CopyCase) -> None:
    runtime = runtime_function()
    folder = copy_case(REPO / "examples" / "wine")
    project = api.validate(folder)
    source = api.generate(project)
    tree = ast.parse(source)
    defined = [
        node for node in ast.walk(tree) if isinstance(node, ast.FunctionDef) and node.name == runtime.name
    ]
    assert len(defined) == 1 and defined[0] in tree.body
    assert source.count(runtime.source) == 1  # as built from kale_yaml/runtime/
    components = [
        node for node in tree.body if isinstance(node, ast.FunctionDef) and node.name.endswith("_step")
    ]
    assert len(components) == len(project.config.steps)
    for component in components:
        (decorator,) = component.decorator_list
        assert isinstance(decorator, ast.Call) and ast.unparse(decorator.func) == "dsl.component"
        carried = {keyword.arg: ast.unparse(keyword.value) for keyword in decorator.keywords}
        assert carried["additional_funcs"] == f"[{runtime.name}]"
        last = component.body[-1]  # after its docstring and cells: one call into the runtime
        assert isinstance(last, ast.Expr) and isinstance(last.value, ast.Call)
        assert ast.unparse(last.value.func) == f"{runtime.name}().run_step"
        uses = [
            n for s in component.body for n in ast.walk(s) if isinstance(n, ast.Name) and n.id == runtime.name
        ]
        assert len(uses) == 1
    # The compiled YAML is self-contained: every step's command carries the function, as built.
    compiled = yaml.safe_load(api.build(folder).yaml_path.read_text(encoding="utf-8"))
    executors = compiled["deploymentSpec"]["executors"].values()
    commands = [executor["container"]["command"][-1] for executor in executors]
    assert len(commands) == len(project.config.steps)
    assert all(command.count(runtime.source.rstrip("\n")) == 1 for command in commands)


def test_every_error_case_folder_has_a_sidecar() -> None:
    folders = [p for p in (REPO / "tests" / "cases" / "invalid").iterdir() if p.is_dir()]
    assert folders and all((p / "pipeline.kale.yaml").is_file() for p in folders)


def test_validate_leaves_cwd_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    before = os.getcwd()
    api.validate(REPO / "examples" / "wine")
    assert os.getcwd() == before
