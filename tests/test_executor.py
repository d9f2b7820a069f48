"""kale-yaml's own local executor: parallel warm steps, its cache, `--from` and `--only`, and agreement with
kfp's own local runner on every valid case."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import types
from pathlib import Path
from typing import Any

import pytest
from syrupy.assertion import SnapshotAssertion

from kale_yaml import api
from kale_yaml.cli.main import main
from kale_yaml.errors import RunError
from kale_yaml.run.local import RunOptions, RunResult, run_local
from kale_yaml.run.preload import imported_names, modules_to_preload
from kale_yaml.runtime import marshal
from tests.conftest import CASES, REPO, CopyCase, case_dirs
from tests.test_run import comparable, step_outputs

PARALLEL = CASES / "run" / "parallel_sleep"
EXAMPLES = sorted(p.parent for p in (REPO / "examples").glob("*/pipeline.kale.yaml"))


def events(result: RunResult) -> dict[str, dict[str, float]]:
    """step -> event -> time, from the run's event file."""
    found: dict[str, dict[str, float]] = {}
    for line in (result.run_dir / "events.jsonl").read_text(encoding="utf-8").splitlines():
        event = json.loads(line)
        if "step" in event:
            found.setdefault(event["step"], {})[event["event"]] = event["time"]
    return found


def states(result: RunResult) -> dict[str, str]:
    return {name: status.state for name, status in result.steps.items()}


def result_value(result: RunResult) -> Any:
    return marshal.load_value(str(step_outputs(result)["join"]["result"]))


def test_independent_steps_run_at_the_same_time(copy_case: CopyCase) -> None:
    folder = copy_case(PARALLEL)
    result = run_local(api.validate(folder), RunOptions(jobs=2))
    assert result.succeeded, result.failure
    times = events(result)
    left, right = times["left"], times["right"]
    # Each sleeps 1.5 s: they overlap when each started before the other finished.
    assert left["started"] < right["finished"] and right["started"] < left["finished"]
    assert result_value(result) == 63


def test_one_job_runs_one_step_at_a_time(copy_case: CopyCase) -> None:
    folder = copy_case(PARALLEL)
    result = run_local(api.validate(folder), RunOptions(jobs=1))
    assert result.succeeded, result.failure
    times = events(result)
    first, second = sorted((times["left"], times["right"]), key=lambda t: t["started"])
    assert first["finished"] <= second["started"]


def test_a_failing_step_keeps_its_siblings_outputs_and_no_cache_entry(copy_case: CopyCase) -> None:
    folder = copy_case(PARALLEL)
    notebook = folder / "nb.ipynb"
    original = notebook.read_text(encoding="utf-8")
    notebook.write_text(original.replace("left = sum(data)", "left = sum(data) / 0"), encoding="utf-8")
    failed = run_local(api.validate(folder), RunOptions(jobs=2))
    assert not failed.succeeded
    assert states(failed) == {"load": "done", "left": "failed", "right": "done", "join": "not run"}
    assert failed.failure is not None and failed.failure.cell == 4
    assert "ZeroDivisionError" in failed.failure.message
    assert step_outputs(failed)["right"]["right"].exists()
    entries = sorted(p.name for p in (folder / ".kale" / "cache" / "entries").iterdir())
    assert len(entries) == 2  # load and right: the failed step left none
    notebook.write_text(original, encoding="utf-8")
    fixed = run_local(api.validate(folder), RunOptions(jobs=2))
    assert states(fixed) == {"load": "cached", "left": "done", "right": "cached", "join": "done"}
    assert result_value(fixed) == 63


def test_from_runs_the_step_and_what_follows_with_upstream_values_from_the_last_run(
    copy_case: CopyCase,
) -> None:
    folder = copy_case(PARALLEL)
    run_local(api.validate(folder), RunOptions())
    notebook = folder / "nb.ipynb"
    notebook.write_text(
        notebook.read_text(encoding="utf-8").replace("max(data)", "min(data)"), encoding="utf-8"
    )
    again = run_local(api.validate(folder), RunOptions(from_step="right"))
    assert states(again) == {"load": "cached", "left": "cached", "right": "done", "join": "done"}
    assert result_value(again) == 61
    only = run_local(api.validate(folder), RunOptions(only_step="join"))
    assert states(only) == {"load": "cached", "left": "cached", "right": "cached", "join": "done"}
    assert result_value(only) == 61


def test_only_leaves_the_steps_after_it_alone(copy_case: CopyCase) -> None:
    folder = copy_case(PARALLEL)
    run_local(api.validate(folder), RunOptions())
    only = run_local(api.validate(folder), RunOptions(only_step="left"))
    assert states(only) == {"load": "cached", "left": "done", "right": "skipped", "join": "skipped"}
    assert only.succeeded


def test_from_before_any_run_names_the_steps_without_values(
    copy_case: CopyCase, snapshot: SnapshotAssertion
) -> None:
    folder = copy_case(PARALLEL)
    with pytest.raises(RunError) as caught:
        run_local(api.validate(folder), RunOptions(from_step="join"))
    [problem] = caught.value.diagnostics
    assert problem.code == "KY815"
    assert not (folder / ".kale" / "runs").exists()  # refused before anything ran: no run folder is left
    assert problem.message == snapshot


def test_a_refused_from_keeps_what_the_build_wrote(
    copy_case: CopyCase, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = copy_case(PARALLEL)
    assert main(["run", str(folder), "--from", "join"]) == 1
    assert "needs values from" in capsys.readouterr().err
    assert not (folder / ".kale" / "runs").exists()
    assert (folder / ".kale" / "parallel-sleep.pipeline.yaml").is_file()


def test_from_an_unknown_step_suggests_the_steps(copy_case: CopyCase, snapshot: SnapshotAssertion) -> None:
    folder = copy_case(PARALLEL)
    with pytest.raises(RunError) as caught:
        run_local(api.validate(folder), RunOptions(only_step="rigth"))
    [problem] = caught.value.diagnostics
    assert problem.code == "KY809"
    assert problem.message == snapshot


def test_cli_run_from_and_jobs(copy_case: CopyCase, capsys: pytest.CaptureFixture[str]) -> None:
    folder = copy_case(PARALLEL)
    assert main(["run", str(folder), "--jobs", "2"]) == 0
    assert main(["run", str(folder), "--from", "left"]) == 0
    out = capsys.readouterr().out
    assert "cached" in out and "outputs:" in out
    assert main(["run", str(folder), "--from", "left", "--only", "join"]) == 2
    with pytest.raises(SystemExit) as usage:
        main(["run", str(folder), "--jobs", "0"])
    assert usage.value.code == 2


def test_a_cell_setting_the_environment_turns_preloading_off() -> None:
    sources = ["import os\nos.environ['OMP_NUM_THREADS'] = '1'", "import json"]
    modules, note = modules_to_preload(sources, [{}], [], wanted=True)
    assert modules == [] and note is not None and "sets environment variables" in note
    modules, note = modules_to_preload(["import json\nfrom email import message"], [{}], [], wanted=True)
    assert modules == ["email", "json"] and note is None
    assert modules_to_preload(["import json"], [{}], [], wanted=False)[0] == []
    assert modules_to_preload(["import json"], [{"A": "1"}, {}], [], wanted=True)[0] == []


def test_imported_names_include_packages_of_dotted_imports() -> None:
    code = "import a.b.c\nfrom d.e import f\nfrom . import g\ndef h():\n    import i\n"
    assert imported_names(code) == {"a", "a.b", "a.b.c", "d", "d.e", "i"}


def test_modules_beside_the_notebook_are_not_preloaded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "helpers_for_preload.py").write_text("X = 1\n", encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))
    modules, _ = modules_to_preload(["import helpers_for_preload, json"], [{}], [tmp_path], wanted=True)
    assert modules == ["json"]


def test_a_damaged_cache_entry_is_not_used(copy_case: CopyCase) -> None:
    folder = copy_case(PARALLEL)
    run_local(api.validate(folder), RunOptions())
    entries = folder / ".kale" / "cache" / "entries"
    for entry in entries.iterdir():
        for output in entry.iterdir():
            if output.name != "outputs.json":  # its outputs gone, as a partial delete leaves it
                shutil.rmtree(output) if output.is_dir() else output.unlink()
    again = run_local(api.validate(folder), RunOptions())
    assert again.succeeded, again.failure
    assert {s.state for s in again.steps.values()} == {"done"}
    assert result_value(again) == 63


def test_a_warm_parent_that_cannot_start_is_named_without_a_traceback(
    copy_case: CopyCase, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = copy_case(PARALLEL)
    assert main(["build", str(folder)]) == 0  # kfp compiles here, before the environment changes
    capsys.readouterr()
    # 7.7 MB: more than Linux lets arguments and environment together be, whatever the stack limit
    for i in range(64):
        monkeypatch.setenv(f"KALE_YAML_TEST_BIG_{i}", "x" * 120_000)
    code = main(["run", str(folder)])
    captured = capsys.readouterr()
    assert code == 1
    assert "the run's warm parent process (which starts every step) could not start" in captured.err
    assert "Argument list too long" in captured.err
    assert "Traceback" not in captured.out + captured.err
    assert not (folder / ".kale" / "runs").exists()  # nothing ran: no run folder is left


CONFORMANCE = [*case_dirs("valid"), *EXAMPLES]


@pytest.mark.parametrize("folder", CONFORMANCE, ids=[f.name for f in CONFORMANCE])
def test_both_runners_hand_on_equal_values(
    folder: Path, copy_case: CopyCase, monkeypatch: pytest.MonkeyPatch
) -> None:
    work = copy_case(folder)
    monkeypatch.syspath_prepend(str(work))  # values of a class from the case's own modules load from there
    ours = run_local(api.validate(work), RunOptions(use_cache=False))
    theirs = run_local(api.validate(work), RunOptions(use_cache=False, runner="kfp"))
    assert ours.succeeded and theirs.succeeded, (ours.failure, theirs.failure)
    assert ours.metrics == pytest.approx(theirs.metrics)
    mine, kfp = step_outputs(ours), step_outputs(theirs)
    assert set(mine) == set(kfp)
    for step, ports in kfp.items():
        assert set(mine[step]) == set(ports)
        for name, path in ports.items():
            if name.startswith("rng_"):  # a global random generator's state: its bytes
                assert folder_bytes(mine[step][name]) == folder_bytes(path), f"{step}.{name}"
                continue
            assert same_value(marshal.load_value(str(mine[step][name])), marshal.load_value(str(path))), (
                f"{step}.{name}"
            )


def folder_bytes(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def same_value(ours: Any, theirs: Any) -> bool:
    """Equal data; functions (which compare by identity) by their kind and name."""
    if isinstance(ours, types.FunctionType):
        return isinstance(theirs, types.FunctionType) and ours.__qualname__ == theirs.__qualname__
    return bool(comparable(ours) == comparable(theirs))


def debug(step: str, folder: Path, *argv: str, stdin: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "kale_yaml", "debug", step, str(folder), *argv],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_debug_loads_a_steps_inputs_from_the_last_run_and_runs_its_cells(copy_case: CopyCase) -> None:
    folder = copy_case(PARALLEL)
    run_local(api.validate(folder), RunOptions())
    done = debug("join", folder, stdin="print(left, right)\nshow(6)\nrun(6)\nprint(result)\nrun(2)\n")
    assert done.returncode == 0, done.stderr
    assert "kale-yaml debug: step 'join' of nb.ipynb; the prelude has run." in done.stderr
    assert re.search(r"loaded left from \S*\.kale/cache/entries/", done.stderr)
    printed = [re.sub(r"^(>>> )+", "", line) for line in done.stdout.splitlines()]  # the console's prompts
    assert [line for line in printed if line] == [
        "6 3",
        "result = left * 10 + right",
        "63",
        "cell 2 is not one of step 'join''s cells (6)",
    ]


def test_debug_opens_a_step_that_failed_with_the_inputs_of_that_run(copy_case: CopyCase) -> None:
    folder = copy_case(PARALLEL)
    notebook = folder / "nb.ipynb"
    notebook.write_text(
        notebook.read_text(encoding="utf-8").replace("left = sum(data)", "left = sum(data) / 0"), "utf-8"
    )
    failed = run_local(api.validate(folder), RunOptions())
    assert not failed.succeeded
    done = debug("left", folder, "--run", failed.run_dir.name, stdin="print(data)\nrun(4)\n")
    assert done.returncode == 0, done.stderr
    assert "[3, 1, 2]" in done.stdout
    assert "ZeroDivisionError: division by zero" in done.stderr
    assert re.search(rf"loaded data from \S*\.kale/runs/{failed.run_dir.name}/artifacts/", done.stderr)


def test_debug_before_any_run_names_the_value_missing(copy_case: CopyCase) -> None:
    folder = copy_case(PARALLEL)
    done = debug("join", folder, stdin="")
    assert done.returncode == 1
    assert "step 'join' needs left from step 'left', which any earlier run did not produce" in done.stderr
    assert "Traceback" not in done.stderr


def edit(folder: Path, old: str, new: str) -> None:
    notebook = folder / "nb.ipynb"
    text = notebook.read_text(encoding="utf-8")
    assert old in text
    notebook.write_text(text.replace(old, new), encoding="utf-8")


def test_a_run_from_the_cache_is_the_last_run_only_takes_values_from(copy_case: CopyCase) -> None:
    folder = copy_case(PARALLEL)
    run_local(api.validate(folder), RunOptions())  # right = max(data) = 3
    edit(folder, "max(data)", "min(data)")
    run_local(api.validate(folder), RunOptions())  # right = 1
    edit(folder, "min(data)", "max(data)")
    back = run_local(api.validate(folder), RunOptions())  # every step from the cache: right = 3 again
    assert {s.state for s in back.steps.values()} == {"cached"}
    only = run_local(api.validate(folder), RunOptions(only_step="join"))
    assert result_value(only) == 63


def test_a_step_that_is_never_cached_still_hands_its_values_to_from(copy_case: CopyCase) -> None:
    folder = copy_case(PARALLEL)
    sidecar = folder / "pipeline.kale.yaml"
    sidecar.write_text(
        sidecar.read_text(encoding="utf-8").replace("cells: 3\n", "cells: 3\n    cache: false\n"), "utf-8"
    )
    run_local(api.validate(folder), RunOptions())
    again = run_local(api.validate(folder), RunOptions(from_step="right"))
    assert again.succeeded, again.failure
    assert result_value(again) == 63


def test_from_after_an_earlier_step_changed_its_outputs_says_where_to_start(
    copy_case: CopyCase, snapshot: SnapshotAssertion
) -> None:
    folder = copy_case(PARALLEL)
    run_local(api.validate(folder), RunOptions())
    edit(folder, "left = sum(data)", "left = sum(data)\\nextra = 1")
    edit(folder, "result = left * 10 + right", "result = left * 10 + right + extra")
    with pytest.raises(RunError) as caught:
        run_local(api.validate(folder), RunOptions(only_step="join"))
    [problem] = caught.value.diagnostics
    assert problem.code == "KY815"
    assert problem.message == snapshot


def test_a_cell_that_reads_input_gets_end_of_file(copy_case: CopyCase) -> None:
    folder = copy_case(PARALLEL)
    edit(folder, "left = sum(data)", "answer = input()\\nleft = sum(data)")
    result = run_local(api.validate(folder), RunOptions())
    assert not result.succeeded and result.failure is not None
    assert "EOFError" in result.failure.message, result.failure.message


def test_debug_runs_again_what_earlier_steps_left_in_the_process(copy_case: CopyCase) -> None:
    folder = copy_case(CASES / "valid" / "imports_replayed")
    run_local(api.validate(folder), RunOptions())
    # `np` and `mean` were bound by step load's import: the step imports them again, and so does debug.
    done = debug("stats", folder, stdin="run(4)\nprint(avg, scaled.tolist())\n")
    assert done.returncode == 0, done.stderr
    assert "2.5 [0, 2, 4, 6, 8, 10]" in done.stdout


def test_debug_loads_values_of_a_class_from_a_module_beside_the_notebook(copy_case: CopyCase) -> None:
    folder = copy_case(CASES / "valid" / "packages_auto")
    assert run_local(api.validate(folder), RunOptions()).succeeded
    done = debug("summarize", folder, stdin="print(type(box).__module__)\n")
    assert done.returncode == 0, done.stderr
    assert "helpers" in done.stdout
    assert "Traceback" not in done.stderr
