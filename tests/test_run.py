"""`kale-yaml run` really runs the pipeline with kfp's local runner, and computes what the notebook computes.

The equivalence test: the reference is the notebook's code cells run top to bottom in one fresh interpreter
(parameters first, then the prelude, skipped cells left out). The test asks every step to hand on every data
variable it defines (`outputs:`), runs the pipeline for real, and compares each artifact and each metric with
the reference's value after the same step.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
import yaml

from kale_yaml import api
from kale_yaml.cli.main import main
from kale_yaml.errors import KaleYamlError
from kale_yaml.render.runtime_code import runtime_function
from kale_yaml.run.local import RunOptions, RunResult, run_local
from kale_yaml.runtime import marshal
from tests.conftest import CASES, REPO, CopyCase, case_dirs

EXAMPLES = sorted(p.parent for p in (REPO / "examples").glob("*/pipeline.kale.yaml"))
OVERRIDES: dict[str, dict[str, str]] = {
    "wine": {"seed": "3", "C": "0.05", "n_estimators": "5"},
    "parameter_override": {"n": "5", "label": "yy", "extra": "1"},
    "seeded_generators": {"seed": "7"},
    "imports_replayed": {"scale": "3"},
    "process_settings": {"width": "5"},
    "textstats": {"top_n": "3", "min_word_length": "5"},
    "json_parameters": {
        "sizes": "[4, 1]",
        "cfg": '{"depth": 2, "rates": [1, 2.5], "name": "y", "on": false, "none": null}',
        "scale": "2",
    },
}
RUNS: list[tuple[Path, dict[str, str]]] = [(folder, {}) for folder in [*case_dirs("valid"), *EXAMPLES]] + [
    (folder, OVERRIDES[folder.name])
    for folder in [*case_dirs("valid"), *EXAMPLES]
    if folder.name in OVERRIDES
]

REFERENCE_SCRIPT = textwrap.dedent(
    """
    import json, sys, types
    plan = json.load(open(sys.argv[1]))
    namespace = {}
    exec(compile(open(sys.argv[2]).read(), "<runtime>", "exec"), namespace)
    runtime = namespace[sys.argv[3]]()  # the runtime as generated code carries it
    module = types.ModuleType("__main__")
    sys.modules["__main__"] = module
    ns = module.__dict__
    ns.update(plan["parameters"])
    for number, source in plan["prelude"]:
        exec(compile(source, f"<cell {number}>", "exec"), ns)
    kept = {}
    for step in plan["steps"]:
        for number, source in step["cells"]:
            exec(compile(source, f"<cell {number}>", "exec"), ns)
        names = []
        for name in step["defines"]:
            value = ns.get(name, None)
            if name not in ns or isinstance(value, (types.ModuleType, types.FunctionType, type)):
                continue
            try:
                runtime.save_value(name, value, f"{plan['out']}/{step['name']}/{name}")
            except Exception:
                continue
            names.append(name)
        kept[step["name"]] = names
    metrics = {m: float(ns[m]) for m in plan["metrics"]}
    json.dump({"kept": kept, "metrics": metrics}, open(plan["result"], "w"))
    """
)


def reference(
    project: api.Project, params: dict[str, Any], out: Path
) -> tuple[dict[str, list[str]], dict[str, float]]:
    """Run the code cells top to bottom in one fresh interpreter; save each step's data variables."""
    pipeline = project.pipeline
    defaults = {p.name: p.default for p in project.config.parameters}
    plan = {
        "parameters": {**defaults, **params},
        "prelude": list(pipeline.prelude_sources),
        "steps": [
            {"name": s.name, "cells": list(s.sources), "defines": list(project_flow_defines(project, s.name))}
            for s in sorted(pipeline.steps, key=lambda s: s.config.index)
        ],
        "metrics": list(project.config.metrics.names) if project.config.metrics else [],
        "out": str(out),
        "result": str(out / "result.json"),
    }
    out.mkdir(parents=True)
    (out / "plan.json").write_text(json.dumps(plan), encoding="utf-8")
    function = runtime_function()
    runtime = out / "runtime.py"
    runtime.write_text(function.source, encoding="utf-8")
    done = subprocess.run(
        [sys.executable, "-c", REFERENCE_SCRIPT, str(out / "plan.json"), str(runtime), function.name],
        capture_output=True,
        text=True,
        cwd=project.sidecar.parent,
    )
    assert done.returncode == 0, done.stderr
    result = json.loads((out / "result.json").read_text(encoding="utf-8"))
    return result["kept"], result["metrics"]


def project_flow_defines(project: api.Project, step: str) -> tuple[str, ...]:
    from kale_yaml.analysis.steps import analyse

    config = project.config
    nb = config.notebook
    analysis = analyse(
        nb.display_name,
        prelude=[nb.cell(n) for n in config.prelude],
        parameters=[p.name for p in config.parameters],
        steps=[(s.name, [nb.cell(n) for n in s.cells], s.inputs, s.outputs) for s in config.steps],
    )
    return analysis.step(step).defines


def comparable(value: Any) -> Any:
    """A plain structure equal for equal values, also across processes and for notebook-defined classes."""
    if value is None or isinstance(value, bool | int | str | bytes):
        return value
    if isinstance(value, float):
        return "nan" if math.isnan(value) else round(value, 12)
    if isinstance(value, list | tuple):
        return [type(value).__name__, [comparable(v) for v in value]]
    if isinstance(value, set | frozenset):
        return ["set", sorted(repr(v) for v in value)]
    if isinstance(value, dict):
        return ["dict", [[comparable(k), comparable(v)] for k, v in value.items()]]
    module = type(value).__module__.split(".")[0]
    if module == "numpy":
        return ["numpy", comparable(value.tolist())]
    if module == "pandas":
        return ["pandas", value.to_json()]
    if callable(value) and not hasattr(value, "__dict__"):
        return ["callable", getattr(value, "__qualname__", repr(value))]
    try:
        state = value.__getstate__()  # what pickling keeps: for extension types too (sklearn's trees)
    except (AttributeError, TypeError):
        state = None
    if state is not None and state is not value:
        return [type(value).__qualname__, comparable(state)]
    return [type(value).__qualname__, repr(value)]


def with_all_outputs(folder: Path, kept: dict[str, list[str]]) -> None:
    sidecar = folder / "pipeline.kale.yaml"
    data = yaml.safe_load(sidecar.read_text(encoding="utf-8"))
    for step in data["steps"]:
        if kept.get(step["name"]):
            step["outputs"] = sorted(set(step.get("outputs", [])) | set(kept[step["name"]]))
    sidecar.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")


def step_outputs(result: RunResult) -> dict[str, dict[str, Path]]:
    """step name -> variable -> artifact folder, read from the run's folder (kfp names tasks NAME-step)."""
    found: dict[str, dict[str, Path]] = {}
    for task_dir in (result.run_dir / "artifacts").glob("*/*"):
        if task_dir.is_dir() and task_dir.name.endswith("-step"):
            step = task_dir.name[: -len("-step")].replace("-", "_")
            found[step] = {p.name[len("out_") :]: p for p in task_dir.iterdir() if p.name.startswith("out_")}
    return found


@pytest.mark.parametrize(
    ("folder", "params"),
    RUNS,
    ids=[f"{f.name}{'-override' if p else ''}" for f, p in RUNS],
)
def test_run_computes_what_the_notebook_computes(
    folder: Path, params: dict[str, str], copy_case: CopyCase, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    work = copy_case(folder)
    monkeypatch.chdir(work)  # the steps run where the reference runs: files a cell writes stay in the copy
    project = api.validate(work)
    carried = {m for e in project.environments.steps.values() for m in e.local_modules}
    if carried:  # values of the notebook's own modules' classes: this process reads them back too
        monkeypatch.syspath_prepend(str(work))
        for name in [m for m in sys.modules if m.split(".")[0] in carried]:
            monkeypatch.delitem(sys.modules, name)
    from kale_yaml.resolve.parameters import parse_params

    typed = parse_params(project.config.parameters, params)
    kept, expected_metrics = reference(project, typed, tmp_path / "reference")
    with_all_outputs(work, kept)

    result = run_local(api.validate(work), RunOptions(params=params, use_cache=False))

    assert result.failure is None, str(result.failure)
    assert result.succeeded
    assert {s.state for s in result.steps.values()} == {"done"}
    assert result.metrics == pytest.approx(expected_metrics)
    produced = step_outputs(result)
    compared = 0
    for step, names in kept.items():
        for name in names:
            ours = marshal.load_value(str(produced[step][name]))
            theirs = marshal.load_value(str(tmp_path / "reference" / step / name))
            assert comparable(ours) == comparable(theirs), f"{step}.{name}"
            compared += 1
    assert compared > 0


def test_override_changes_the_result(copy_case: CopyCase) -> None:
    folder = copy_case(CASES / "valid" / "parameter_override")
    plain = run_local(api.validate(folder), RunOptions(use_cache=False))
    changed = run_local(api.validate(folder), RunOptions(params={"n": "1"}, use_cache=False))
    result = "result"

    def value(run: RunResult) -> Any:
        return marshal.load_value(str(step_outputs(run)["repeat"][result]))

    assert value(plain) == ["x", "x", "x"]
    assert value(changed) == ["x"]


def test_second_run_reuses_unchanged_steps_and_reruns_an_edited_one(copy_case: CopyCase) -> None:
    folder = copy_case(CASES / "valid" / "independent_branches")
    first = run_local(api.validate(folder), RunOptions())
    assert {s.state for s in first.steps.values()} == {"done"}
    again = run_local(api.validate(folder), RunOptions())
    assert {s.state for s in again.steps.values()} == {"cached"}
    notebook = folder / "nb.ipynb"
    text = notebook.read_text(encoding="utf-8")
    assert "max(data)" in text
    notebook.write_text(text.replace("max(data)", "max(data) + 1"), encoding="utf-8")
    edited = run_local(api.validate(folder), RunOptions())
    states = {name: s.state for name, s in edited.steps.items()}
    assert states == {"load": "cached", "total": "cached", "largest": "done", "join": "done"}


def test_an_edit_that_hands_on_the_same_values_stops_the_wave(copy_case: CopyCase) -> None:
    folder = copy_case(CASES / "valid" / "independent_branches")
    run_local(api.validate(folder), RunOptions())
    notebook = folder / "nb.ipynb"
    notebook.write_text(notebook.read_text(encoding="utf-8").replace("max(data)", "max(data) + 0"), "utf-8")
    edited = run_local(api.validate(folder), RunOptions())
    states = {name: s.state for name, s in edited.steps.items()}
    # `largest` runs again (its code changed) and hands on the same value: `join`'s inputs are unchanged.
    assert states == {"load": "cached", "total": "cached", "largest": "done", "join": "cached"}


def test_no_cache_runs_every_step_and_refreshes_the_cache(copy_case: CopyCase) -> None:
    folder = copy_case(CASES / "valid" / "independent_branches")
    forced = run_local(api.validate(folder), RunOptions(use_cache=False))
    assert {s.state for s in forced.steps.values()} == {"done"}
    again = run_local(api.validate(folder), RunOptions())
    assert {s.state for s in again.steps.values()} == {"cached"}


def test_failing_cell_names_step_cell_and_line_and_keeps_finished_outputs(copy_case: CopyCase) -> None:
    folder = copy_case(CASES / "valid" / "inplace_mutation")
    notebook = folder / "nb.ipynb"
    notebook.write_text(
        notebook.read_text(encoding="utf-8").replace("xs.append(3)", "xs.append(3)\\n1 / 0"), encoding="utf-8"
    )
    result = run_local(api.validate(folder), RunOptions(use_cache=False))
    assert not result.succeeded
    assert result.failure is not None
    assert (result.failure.cell, result.failure.line) == (3, 2)
    assert "step 'append' failed: ZeroDivisionError: division by zero" in result.failure.message
    assert "Traceback" in result.failure.message
    assert result.steps["create"].state == "done"
    assert result.steps["total"].state == "not run"
    assert step_outputs(result)["create"]["xs"].exists()


def test_failing_cell_exits_one_from_the_cli(copy_case: CopyCase, capsys: pytest.CaptureFixture[str]) -> None:
    folder = copy_case(CASES / "valid" / "after_edge")
    notebook = folder / "nb.ipynb"
    text = notebook.read_text(encoding="utf-8")
    broken = text.replace('second_value = \\"two\\"', 'second_value = int(\\"two\\")')
    assert broken != text
    notebook.write_text(broken, encoding="utf-8")
    assert main(["run", str(folder)]) == 1
    err = capsys.readouterr().err
    assert "nb.ipynb: cell 3, line 1: step 'second' failed: ValueError: invalid literal for int()" in err


def test_missing_packages_are_named_before_any_step_runs(copy_case: CopyCase) -> None:
    folder = copy_case(CASES / "valid" / "after_edge")
    sidecar = folder / "pipeline.kale.yaml"
    data = yaml.safe_load(sidecar.read_text(encoding="utf-8"))
    data["pipeline"]["packages"] = ["surely-not-installed-kale-pkg>=1"]
    sidecar.write_text(yaml.safe_dump(data), encoding="utf-8")
    with pytest.raises(KaleYamlError) as caught:
        run_local(api.validate(folder), RunOptions())
    needed = "surely-not-installed-kale-pkg (listed in packages of steps 'first', 'second')"
    assert needed in str(caught.value)
    assert not (folder / ".kale" / "runs").exists()


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"nn": "3"}, "--param: unknown parameter 'nn'; did you mean 'n'? (parameters: n, label, extra)"),
        ({"n": "three"}, "--param: n: 'three' is not an integer"),
    ],
)
def test_bad_params_are_errors_before_anything_runs(
    params: dict[str, str], message: str, copy_case: CopyCase
) -> None:
    folder = copy_case(CASES / "valid" / "parameter_override")
    with pytest.raises(KaleYamlError) as caught:
        run_local(api.validate(folder), RunOptions(params=params))
    assert str(caught.value) == message
    assert not (folder / ".kale" / "runs").exists()
