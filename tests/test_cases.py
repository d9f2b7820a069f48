"""Every case folder: valid ones validate and generate the snapshot code; invalid ones fail with the
snapshot error text. Error wording is reviewed like code."""

from __future__ import annotations

import ast
import os
from pathlib import Path

import pytest
from syrupy.assertion import SnapshotAssertion

from kale_yaml import api
from kale_yaml.errors import KaleYamlError
from kale_yaml.resources import runtime_source
from tests.conftest import REPO, case_dirs

VALID = case_dirs("valid")
INVALID = case_dirs("invalid")
EXAMPLES = sorted(p.parent for p in (REPO / "examples").glob("*/pipeline.kale.yaml"))
RUNTIME_PLACEHOLDER = (
    "'<the kale-yaml runtime: kale_yaml/runtime/marshal.py, checked by test_runtime_is_embedded_verbatim>'"
)


def _ids(paths: list[Path]) -> list[str]:
    return [p.name for p in paths]


def reviewable(source: str) -> str:
    """Generated code with the (identical, separately tested) runtime literal folded away."""
    from kale_yaml.render.pyliteral import block

    return source.replace(block(runtime_source()), RUNTIME_PLACEHOLDER)


@pytest.mark.parametrize("folder", VALID + EXAMPLES, ids=_ids(VALID + EXAMPLES))
def test_valid_case_generates_snapshot_code(folder: Path, code_snapshot: SnapshotAssertion) -> None:
    project = api.validate(folder)
    source = api.generate(project)
    ast.parse(source)
    assert reviewable(source) == code_snapshot


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


def test_runtime_is_embedded_verbatim() -> None:
    project = api.validate(REPO / "examples" / "wine")
    tree = ast.parse(api.generate(project))
    embedded = [
        node.value.value
        for node in ast.walk(tree)
        if isinstance(node, ast.Assign)
        and any(isinstance(t, ast.Name) and t.id == "_runtime_source" for t in node.targets)
        and isinstance(node.value, ast.Constant)
    ]
    assert embedded and all(text == runtime_source() for text in embedded)
    assert len(embedded) == len(project.config.steps)


def test_every_error_case_folder_has_a_sidecar() -> None:
    folders = [p for p in (REPO / "tests" / "cases" / "invalid").iterdir() if p.is_dir()]
    assert folders and all((p / "pipeline.kale.yaml").is_file() for p in folders)


def test_validate_leaves_cwd_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    before = os.getcwd()
    api.validate(REPO / "examples" / "wine")
    assert os.getcwd() == before
