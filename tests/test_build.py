"""`kale-yaml build`: real kfp compilation, the DAG in the compiled YAML, determinism, atomic writes."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from kale_yaml import api
from kale_yaml.errors import KaleYamlError
from tests.conftest import CASES, REPO, CopyCase

WINE = REPO / "examples" / "wine"
TEXTSTATS = REPO / "examples" / "textstats"

# What each example's data flow must become: step -> the steps it waits for.
EXPECTED_DAGS: dict[Path, dict[str, set[str]]] = {
    WINE: {
        "load_data": set(),
        "split": {"load_data"},
        "train_logreg": {"split"},
        "train_forest": {"split"},
        "evaluate": {"split", "train_logreg", "train_forest"},
    },
    TEXTSTATS: {
        "load_text": set(),
        "tokenize": {"load_text"},
        "top_words": {"tokenize"},
        "sentence_lengths": {"tokenize"},
        "report": {"top_words", "sentence_lengths"},
    },
    CASES / "valid" / "after_edge": {"first": set(), "second": {"first"}},
    CASES / "valid" / "inplace_mutation": {"create": set(), "append": {"create"}, "total": {"append"}},
}


def compiled_dag(yaml_path: Path) -> dict[str, set[str]]:
    """Display name of each task -> display names of the tasks it depends on, read from the compiled spec."""
    documents = list(yaml.safe_load_all(yaml_path.read_text(encoding="utf-8")))
    tasks: dict[str, Any] = documents[0]["root"]["dag"]["tasks"]
    names = {key: task["taskInfo"]["name"] for key, task in tasks.items()}
    return {names[key]: {names[d] for d in task.get("dependentTasks", [])} for key, task in tasks.items()}


@pytest.mark.parametrize("folder", list(EXPECTED_DAGS), ids=lambda p: p.name)
def test_compiled_dag_matches_the_data_flow(folder: Path, copy_case: CopyCase) -> None:
    result = api.build(copy_case(folder))
    assert compiled_dag(result.yaml_path) == EXPECTED_DAGS[folder]


def test_compiled_yaml_loads_back_in_kfp(copy_case: CopyCase) -> None:
    from kfp import components

    result = api.build(copy_case(WINE))
    loaded = components.load_component_from_file(str(result.yaml_path))
    assert loaded.name == "wine-quality"
    inputs = loaded.component_spec.inputs or {}
    assert {"test_size", "seed", "n_estimators", "C"} <= set(inputs)
    assert inputs["seed"].default == 7


def test_parameters_and_metrics_reach_the_compiled_spec(copy_case: CopyCase) -> None:
    result = api.build(copy_case(WINE))
    spec = yaml.safe_load(result.yaml_path.read_text(encoding="utf-8"))
    parameters = spec["root"]["inputDefinitions"]["parameters"]
    assert parameters["test_size"] == {
        "defaultValue": 0.25,
        "isOptional": True,
        "parameterType": "NUMBER_DOUBLE",
    }
    assert parameters["n_estimators"]["parameterType"] == "NUMBER_INTEGER"
    evaluate = spec["components"]["comp-evaluate-step"]["outputDefinitions"]["artifacts"]
    assert evaluate["metrics"]["artifactType"]["schemaTitle"] == "system.Metrics"


def test_build_never_writes_the_notebook(copy_case: CopyCase) -> None:
    folder = copy_case(WINE)
    notebook = folder / "wine.ipynb"
    before = (hashlib.sha256(notebook.read_bytes()).hexdigest(), notebook.stat().st_mtime_ns)
    api.validate(folder)
    api.build(folder)
    after = (hashlib.sha256(notebook.read_bytes()).hexdigest(), notebook.stat().st_mtime_ns)
    assert before == after


def test_same_input_gives_same_bytes_across_folders_and_hash_seeds(
    tmp_path: Path, copy_case: CopyCase
) -> None:
    folder = copy_case(WINE)
    outputs = []
    for seed, cwd in (("1", tmp_path), ("2", folder), ("random", REPO)):
        out = tmp_path / f"out-{seed}"
        subprocess.run(
            [sys.executable, "-m", "kale_yaml", "build", str(folder), "-o", str(out)],
            cwd=cwd,
            env={**os.environ, "PYTHONHASHSEED": seed},
            check=True,
            capture_output=True,
        )
        outputs.append({p.name: p.read_bytes() for p in sorted(out.iterdir())})
    assert outputs[0] == outputs[1] == outputs[2]
    assert set(outputs[0]) == {"wine-quality.pipeline.py", "wine-quality.pipeline.yaml"}


def test_failed_build_leaves_earlier_outputs_as_they_were(copy_case: CopyCase) -> None:
    folder = copy_case(CASES / "valid" / "inplace_mutation")
    first = api.build(folder)
    saved = {p: p.read_bytes() for p in (first.python_path, first.yaml_path)}
    listing = sorted(p.relative_to(folder) for p in (folder / ".kale").rglob("*"))
    sidecar = folder / "pipeline.kale.yaml"
    sidecar.write_text(
        sidecar.read_text(encoding="utf-8").replace("name: total", "name: Total"), encoding="utf-8"
    )
    with pytest.raises(KaleYamlError):
        api.build(folder)
    assert {p: p.read_bytes() for p in saved} == saved
    assert sorted(p.relative_to(folder) for p in (folder / ".kale").rglob("*")) == listing  # no leftovers


def test_check_reports_stale_outputs(copy_case: CopyCase) -> None:
    folder = copy_case(CASES / "valid" / "inplace_mutation")
    assert api.build(folder, check=True).changed  # nothing built yet
    assert not (folder / ".kale").exists()
    api.build(folder)
    assert not api.build(folder, check=True).changed
    sidecar = folder / "pipeline.kale.yaml"
    sidecar.write_text(
        sidecar.read_text(encoding="utf-8") + "\n# a comment changes nothing\n", encoding="utf-8"
    )
    assert not api.build(folder, check=True).changed
    notebook = folder / "nb.ipynb"
    notebook.write_text(
        notebook.read_text(encoding="utf-8").replace("xs.append(3)", "xs.append(4)"), encoding="utf-8"
    )
    assert api.build(folder, check=True).changed


def test_validate_does_not_import_kfp() -> None:
    code = (
        "import sys; from kale_yaml import api; api.validate(sys.argv[1]); "
        "print(sorted(m for m in sys.modules if m == 'kfp' or m.startswith('kfp.')))"
    )
    done = subprocess.run([sys.executable, "-c", code, str(WINE)], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


def test_validate_imports_nothing_of_rendering() -> None:
    code = (
        "import sys; from kale_yaml.cli.main import main; code = main(['validate', sys.argv[1]]); "
        "print(code, sorted(m for m in sys.modules if m.split('.')[0] in ('jinja2', 'kfp')"
        " or m == 'kale_yaml.render' or m.startswith('kale_yaml.render.')))"
    )
    done = subprocess.run([sys.executable, "-c", code, str(WINE)], capture_output=True, text=True, check=True)
    assert done.stdout.strip().splitlines()[-1] == "0 []"


def test_outputs_follow_the_umask_like_ordinary_files(copy_case: CopyCase) -> None:
    folder = copy_case(CASES / "valid" / "after_edge")
    previous = os.umask(0o022)
    try:
        result = api.build(folder)
    finally:
        os.umask(previous)
    for path in (result.python_path, result.yaml_path):
        assert path.stat().st_mode & 0o777 == 0o644


def _leaves(node: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(node, dict):
        found: dict[str, Any] = {}
        for key, value in node.items():
            found.update(_leaves(value, f"{prefix}/{key}"))
        return found
    if isinstance(node, list):
        return {k: v for i, item in enumerate(node) for k, v in _leaves(item, f"{prefix}[{i}]").items()}
    return {prefix: node}


def test_compiled_yaml_differs_only_where_the_input_differs(copy_case: CopyCase) -> None:
    folder = copy_case(WINE)
    before = _leaves(yaml.safe_load(api.build(folder).yaml_path.read_text(encoding="utf-8")))
    notebook = folder / "wine.ipynb"
    text = notebook.read_text(encoding="utf-8")
    assert "n_estimators=n_estimators" in text
    notebook.write_text(
        text.replace("n_estimators=n_estimators", "n_estimators=n_estimators, max_depth=4"), "utf-8"
    )
    after = _leaves(yaml.safe_load(api.build(folder).yaml_path.read_text(encoding="utf-8")))
    changed = {key for key in before.keys() | after.keys() if before.get(key) != after.get(key)}
    assert changed and all(
        key.startswith("/deploymentSpec/executors/exec-train-forest-step/") for key in changed
    )
