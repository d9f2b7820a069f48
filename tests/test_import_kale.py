"""`kale-yaml import-kale NOTEBOOK`: Kale's tags and metadata as a sidecar, with the steps and dependencies
Kale would build, and the notebook left byte for byte as it was."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import nbformat
import pytest
import yaml
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook
from syrupy.assertion import SnapshotAssertion

from kale_yaml import api
from kale_yaml.authoring.kale_dag import kale_ancestors
from kale_yaml.authoring.kale_import import KaleImport, import_kale, import_to_sidecar
from kale_yaml.authoring.kale_settings import Settings, apply_setting
from kale_yaml.cli.main import main
from kale_yaml.errors import KaleYamlError
from kale_yaml.load.notebook import load_notebook
from kale_yaml.plan.dag import Pipeline
from tests.conftest import CASES

KALE = CASES / "kale"
NOTEBOOKS = ["fares", "branches", "implicit"]
# The DAG Kale builds from each notebook's prev: tags.
KALE_EDGES = {
    "fares": {("loaddata", "features"), ("features", "train"), ("train", "evaluate")},
    "branches": {
        ("read_text", "count"),
        ("read_text", "longest"),
        ("count", "report"),
        ("longest", "report"),
    },
    "implicit": {("radii", "areas")},
}


def copy_kale(name: str, tmp_path: Path) -> Path:
    shutil.copytree(KALE / name, tmp_path / name)
    return tmp_path / name / f"{name}.ipynb"


def ancestors(edges: set[tuple[str, str]], steps: list[str]) -> dict[str, set[str]]:
    parents = {s: {a for a, b in edges if b == s} for s in steps}
    found: dict[str, set[str]] = {}
    for step in steps:  # steps come in an order where parents come first
        found[step] = set().union(*({p, *found[p]} for p in parents[step]))
    return found


def planned_edges(pipeline: Pipeline) -> set[tuple[str, str]]:
    return {(e.source, e.target) for e in pipeline.edges}


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_import(
    name: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    snapshot: SnapshotAssertion,
) -> None:
    notebook = copy_kale(name, tmp_path)
    before, mtime = notebook.read_bytes(), notebook.stat().st_mtime_ns
    monkeypatch.chdir(tmp_path)
    assert main(["import-kale", str(notebook.relative_to(tmp_path))]) == 0
    captured = capsys.readouterr()
    text = (notebook.parent / "pipeline.kale.yaml").read_text()
    assert {"sidecar": text, "warnings": captured.err} == snapshot
    assert notebook.read_bytes() == before and notebook.stat().st_mtime_ns == mtime


@pytest.mark.parametrize("name", ["fares", "branches"])
def test_same_steps_and_dependencies_as_kale(name: str, tmp_path: Path) -> None:
    notebook = copy_kale(name, tmp_path)
    assert main(["import-kale", str(notebook)]) == 0
    pipeline = api.validate(notebook.parent).pipeline
    steps = [s.name for s in pipeline.steps]
    assert set(steps) == {s for edge in KALE_EDGES[name] for s in edge}
    assert planned_edges(pipeline) == KALE_EDGES[name]
    assert ancestors(planned_edges(pipeline), steps) == ancestors(KALE_EDGES[name], steps)


def test_data_flow_kale_misses_is_an_extra_edge_and_a_warning(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    notebook = copy_kale("implicit", tmp_path)
    assert main(["import-kale", str(notebook)]) == 0
    assert (
        "step 'total' reads areas from step 'areas', which no prev: tag puts before it"
        in capsys.readouterr().err
    )
    pipeline = api.validate(notebook.parent).pipeline
    assert planned_edges(pipeline) == KALE_EDGES["implicit"] | {("areas", "total")}
    assert pipeline.config.metrics is not None and pipeline.config.metrics.names == ("total", "mean_area")


def test_import_refuses_to_overwrite(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    notebook = copy_kale("fares", tmp_path)
    sidecar = notebook.parent / "pipeline.kale.yaml"
    sidecar.write_text("mine\n")
    assert main(["import-kale", str(notebook)]) == 1
    assert "already exists" in capsys.readouterr().err
    assert sidecar.read_text() == "mine\n"


# -- single rules, on small notebooks ------------------------------------------------------------------
def kale_notebook(
    tmp_path: Path, cells: list[tuple[str, str, list[Any]]], kale: dict[str, Any] | None = None
) -> Path:
    made: list[Any] = []
    for number, (kind, source, tags) in enumerate(cells, start=1):
        cell = new_markdown_cell(source) if kind == "md" else new_code_cell(source)
        cell.id = f"c{number:02d}"
        if tags:
            cell.metadata["tags"] = tags
        made.append(cell)
    nb = new_notebook(cells=made)
    nb.metadata = {"kernelspec": {"name": "python3", "language": "python", "display_name": "Python 3"}}
    if kale is not None:
        nb.metadata["kubeflow_notebook"] = kale
    path = tmp_path / "nb.ipynb"
    nbformat.write(nb, str(path))
    return path


def run_import(path: Path) -> tuple[KaleImport, dict[str, Any]]:
    notebook = load_notebook(path, path.name)
    result = import_kale(notebook, notebook.metadata)
    return result, yaml.safe_load(result.text)


def messages(result: KaleImport) -> list[str]:
    return [str(d) for d in result.warnings]


def test_tags_kale_does_not_map_are_warnings(tmp_path: Path) -> None:
    path = kale_notebook(
        tmp_path,
        [
            ("code", "a = 1", ["step:first", "hide-input"]),
            ("code", "b = a", ["step:second", "step:other", "limit:ephemeral-storage:1Gi"]),
            ("code", "c = b", ["imports", "step:ignored"]),
            ("code", "d = 1", ["prev:first"]),
        ],
    )
    result, data = run_import(path)
    assert messages(result) == [
        "nb.ipynb: cell 1: tag 'hide-input' is not a Kale tag kale-yaml knows; left out",
        "nb.ipynb: cell 2: tag 'limit:ephemeral-storage:1Gi' sets a limit other than cpu, memory or a whole"
        " number of GPUs; left out",
        "nb.ipynb: cell 2: several step names (second, other); Kale allows one, kale-yaml uses 'second'",
        "nb.ipynb: cell 3: step:ignored left out: Kale reads only 'imports' on this cell",
        "nb.ipynb: cell 4: prev:first left out: the cell names no step",
    ]
    assert [s["name"] for s in data["steps"]] == ["first", "second"]
    assert data["prelude"] == "3-4" and data["steps"][1]["cells"] == 2  # cell 4 joins the imports


def test_step_names_are_made_valid(tmp_path: Path) -> None:
    path = kale_notebook(
        tmp_path,
        [("code", "a = 1", ["step:_load"]), ("code", "b = a", ["step:prelude", "prev:_load"])],
    )
    result, data = run_import(path)
    assert [s["name"] for s in data["steps"]] == ["load", "prelude_step"]
    assert data["steps"][1]["after"] == ["load"]
    assert result.prev_edges == (("load", "prelude_step"),)
    assert len(result.warnings) == 2 and "is called 'load' here" in messages(result)[0]


def test_skip_and_untagged_cells_join_as_kale_joins_them(tmp_path: Path) -> None:
    path = kale_notebook(
        tmp_path,
        [
            ("code", "", []),  # blank and untagged before any tag: nothing to say
            ("code", "a = 1", ["step:one"]),
            ("md", "notes", []),
            ("code", "print(a)", ["skip"]),
            ("code", "a += 1", []),  # joins `one`: a skip cell is not "the last tagged cell"
            ("code", "b = a", ["step:two"]),
            ("code", "a = 5", ["step:one"]),  # `one` again, after `two`
        ],
    )
    result, data = run_import(path)
    assert data["skip"] == 4
    assert data["steps"][0] == {"name": "one", "cells": ["2-5", 7]}
    assert messages(result) == [
        "nb.ipynb: cell 7: step 'one' continues here after other steps' cells; as in Kale, all its cells run"
        " together, in its first cell's place",
    ]


def test_a_metric_may_name_a_pipeline_parameter_and_reports_its_value(tmp_path: Path) -> None:
    path = kale_notebook(
        tmp_path,
        [
            ("code", "d1 = 4\nrate = 0.5", ["pipeline-parameters"]),
            ("code", "accuracy = 0.9 * rate", ["step:train"]),
            ("code", "print(accuracy)\nprint(d1)", ["pipeline-metrics"]),
        ],
    )
    result, data = run_import(path)
    assert data["metrics"] == {"step": "train", "names": ["accuracy", "d1"]}
    (tmp_path / "pipeline.kale.yaml").write_text(result.text)
    pipeline = api.validate(tmp_path).pipeline
    assert pipeline.step("train").parameters == ("d1", "rate")
    generated = api.generate(api.validate(tmp_path), local=True)
    assert "parameters={'d1': d1, 'rate': rate}" in generated


def test_a_metric_another_step_computes_becomes_an_input(tmp_path: Path) -> None:
    path = kale_notebook(
        tmp_path,
        [
            ("code", "loss = 0.5", ["step:train"]),
            ("code", "accuracy = 0.9", ["step:evaluate", "prev:train"]),
            ("code", "print(accuracy)\nloss\n# a comment\nnot a name", ["pipeline-metrics"]),
        ],
    )
    result, data = run_import(path)
    assert data["metrics"] == {"step": "evaluate", "names": ["accuracy", "loss"]}
    assert data["steps"][1]["inputs"] == ["loss"]
    assert messages(result) == [
        "nb.ipynb: cell 3: line 4 of the pipeline-metrics cell is not a variable name; left out",
        "nb.ipynb: metric 'loss' is computed by step 'train'; step 'evaluate' reports the metrics, so it"
        " takes it as an input (`inputs:`)",
    ]
    (tmp_path / "pipeline.kale.yaml").write_text(result.text)
    api.validate(tmp_path)


def test_metadata_that_cannot_be_mapped_is_a_warning(tmp_path: Path) -> None:
    kale = {
        "pipeline_name": "My Pipeline",
        "katib_run": True,
        "kfp_host": "http://kfp",
        "timeout": 600,
        "something_new": 1,
        "steps_defaults": ["image:python:3.12", "nonsense"],
        "volumes": [
            {"name": "c", "mount_point": "/c", "type": "clone"},
            {"name": "n", "mount_point": "/n", "type": "new_pvc"},
            {"mount_point": "/x", "type": "pvc"},
            {"name": "w", "mount_point": "/w", "type": "new_pvc", "size": 2, "size_type": "Gi"},
        ],
        "autosnapshot": True,
        "volume_access_mode": "rwo",
    }
    path = kale_notebook(tmp_path, [("code", "a = 1", ["step:only"])], kale)
    result, data = run_import(path)
    assert data["pipeline"] == {"name": "my-pipeline", "image": "python:3.12", "packages": "auto"}
    assert data["volumes"] == [
        {"name": "w", "mount": "/w", "create": {"size": "2Gi", "access_modes": ["ReadWriteOnce"]}}
    ]
    assert data["snapshots"] == [
        {"volume": "w", "when": "before_each_step"},
        {"volume": "w", "when": "after_run"},
    ]
    found = "\n".join(messages(result))
    for expected in [
        "pipeline name 'My Pipeline' is 'my-pipeline' here",
        "steps_defaults entry 'nonsense'",
        "katib_run",
        "kfp_host",
        "timeout (600s for the whole run)",
        "kubeflow_notebook.something_new has no kale-yaml equivalent",
        "volumes[0] is of type 'clone'",
        "volumes[1] (new_pvc) has no size",
        "volumes[2] needs a name and a mount_point",
    ]:
        assert expected in found
    (tmp_path / "pipeline.kale.yaml").write_text(result.text)
    api.validate(tmp_path)


def test_no_steps_writes_a_sidecar_that_says_so(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = kale_notebook(tmp_path, [("code", "import os", ["imports"])])
    assert main(["import-kale", str(path)]) == 1
    captured = capsys.readouterr()
    assert "no cell is tagged step:NAME" in captured.err and "does not validate yet" in captured.out


@pytest.mark.parametrize(
    ("tag", "values"),
    [
        ("limit:cpu:500m", {"resources": {"cpu_limit": "500m"}}),
        ("limit:amd.com/gpu:2", {"resources": {"gpu": 2, "gpu_type": "amd.com/gpu"}}),
        ("image:repo/img:1.0", {"image": "repo/img:1.0"}),
        ("label:example.com/team:a", {"labels": {"example.com/team": "a"}}),
        ("annotation:note:a:b", {"annotations": {"note": "a:b"}}),
        ("secret:creds:aws-key", {"secrets": [{"secret": "creds", "key": "aws-key", "env": "AWS_KEY"}]}),
        ("cache:disabled", {"cache": False}),
    ],
)
def test_setting_tags(tag: str, values: dict[str, Any]) -> None:
    settings = Settings()
    assert apply_setting(tag, settings, lambda kind, message: pytest.fail(f"{kind}: {message}"))
    assert settings.values == values and settings.sources == [tag]


def test_kale_ancestors_are_transitive() -> None:
    result = KaleImport("", (), ("a", "b", "c"), (("a", "b"), ("b", "c")))
    assert kale_ancestors(result) == {"a": set(), "b": {"a"}, "c": {"a", "b"}}


def test_a_broken_notebook_is_an_input_error(tmp_path: Path) -> None:
    path = tmp_path / "nb.ipynb"
    path.write_text("{ not json")
    with pytest.raises(KaleYamlError):
        import_to_sidecar(path)
    assert not (tmp_path / "pipeline.kale.yaml").exists()
