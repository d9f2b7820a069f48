"""What a step shows is kept: each cell's prints, last value, displays, figures and error, in its report.

The runtime captures them per cell in nbformat's output model and writes one HTML page per step (its
`dsl.Output[dsl.HTML]` artifact) holding a JSON record that `read_record` reads back.
"""

from __future__ import annotations

import io
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from kale_yaml import api
from kale_yaml.errors import KaleYamlError
from kale_yaml.render.view import REPORT_PORT, pipeline_view
from kale_yaml.run.local import RunOptions, run_local
from kale_yaml.runtime import CellError, run_step
from kale_yaml.runtime.outputs import STREAM_HEAD, STREAM_TAIL, CellOutputs
from kale_yaml.runtime.record import RECORD_ID, make_record, read_record, record_element
from kale_yaml.runtime.report_html import report_page
from tests.conftest import CASES, CopyCase

SHOWN = CASES / "valid" / "shown_outputs"


def _record(path: Path) -> dict[str, Any]:
    record = read_record(path.read_text(encoding="utf-8"))
    assert record is not None, path
    return record


def _outputs(record: dict[str, Any]) -> dict[int, list[dict[str, Any]]]:
    return {entry["cell"]: entry["outputs"] for entry in record["cells"]}


def _step(tmp_path: Path, cells: list[tuple[int, str]], **extra: Any) -> dict[str, Any]:
    """Run cells as a step in this process; the record of its report."""
    report = tmp_path / "report.html"
    try:
        run_step(
            step="s",
            notebook="nb.ipynb",
            cells=cells,
            parameters={},
            inputs={},
            outputs={},
            report=str(report),
        )
    except CellError:
        if not extra.get("fails"):
            raise
    return _record(report)


def test_a_run_keeps_prints_tables_and_figures_in_each_steps_report(copy_case: CopyCase) -> None:
    folder = copy_case(SHOWN)
    built = api.build(folder)
    result = run_local(built.project, RunOptions(use_cache=False))
    assert result.succeeded, result.failure
    assert set(result.reports) == {"table", "plots"}

    table = _record(result.reports["table"])
    assert (table["step"], table["notebook"], table["status"]) == ("table", "nb.ipynb", "finished")
    shown = _outputs(table)
    assert shown[2] == []  # `%matplotlib inline` and imports show nothing
    assert shown[3][0] == {"output_type": "stream", "name": "stdout", "text": "making 4 rows\n"}
    result_output = shown[3][1]
    assert result_output["output_type"] == "execute_result"
    assert result_output["execution_count"] == 2
    assert "<table" in result_output["data"]["text/html"]

    plots = _outputs(_record(result.reports["plots"]))
    # plt.show() keeps the figure where it was shown; the figure left open is kept when its cell ends
    assert [o["output_type"] for o in plots[4]] == ["display_data", "stream"]
    assert [o["output_type"] for o in plots[5]] == ["stream", "display_data"]
    for figure in (plots[4][0], plots[5][1]):
        assert figure["data"]["image/png"].startswith("iVBORw0KGgo")  # base64 of the PNG signature
    page = result.reports["plots"].read_text(encoding="utf-8")
    assert page.count("src='data:image/png;base64,") == 2
    assert "http://" not in page and "https://" not in page

    compiled = yaml.safe_load(built.yaml_path.read_text(encoding="utf-8"))
    components = compiled["components"]
    steps = [c for name, c in components.items() if name.startswith("comp-") and name.endswith("-step")]
    assert len(steps) == 2
    for component in steps:
        artifact = component["outputDefinitions"]["artifacts"][REPORT_PORT]
        assert artifact["artifactType"]["schemaTitle"] == "system.HTML"


def test_a_failing_cells_error_is_in_the_failed_steps_report(copy_case: CopyCase) -> None:
    folder = copy_case(SHOWN)
    notebook = folder / "nb.ipynb"
    text = notebook.read_text(encoding="utf-8")
    notebook.write_text(text.replace('print(\\"total\\", total)', 'print(\\"total\\", total)\\n1 / 0'))
    result = run_local(api.validate(folder), RunOptions(use_cache=False))
    assert not result.succeeded
    record = _record(result.reports["plots"])
    assert record["status"] == "failed"
    last = _outputs(record)[5]
    assert last[0]["text"] == "total 14\n"
    error = last[-1]
    assert (error["output_type"], error["ename"], error["evalue"]) == (
        "error",
        "ZeroDivisionError",
        "division by zero",
    )
    assert error["traceback"][-1] == "ZeroDivisionError: division by zero"
    assert any("<nb.ipynb cell 5>" in line for line in error["traceback"])
    assert _record(result.reports["table"])["status"] == "finished"


def test_report_false_leaves_the_port_out(copy_case: CopyCase) -> None:
    folder = copy_case(SHOWN)
    sidecar = folder / "pipeline.kale.yaml"
    data = yaml.safe_load(sidecar.read_text(encoding="utf-8"))
    data["pipeline"]["report"] = False
    data["steps"][1]["report"] = True
    sidecar.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    view = pipeline_view(api.validate(folder))
    assert {s.step.name: s.report_port for s in view.steps} == {"table": None, "plots": REPORT_PORT}


def test_report_must_be_a_boolean(copy_case: CopyCase) -> None:
    folder = copy_case(SHOWN)
    sidecar = folder / "pipeline.kale.yaml"
    sidecar.write_text(
        sidecar.read_text(encoding="utf-8").replace("- name: plots", "- name: plots\n    report: 1")
    )
    with pytest.raises(KaleYamlError):
        api.validate(folder)


def test_the_report_port_name_avoids_a_parameter_of_that_name(copy_case: CopyCase) -> None:
    folder = copy_case(CASES / "valid" / "parameter_override")
    project = api.validate(folder)
    view = pipeline_view(project)
    ports = [{p.name for p in step.ports} for step in view.steps]
    assert all(step.report_port in names for step, names in zip(view.steps, ports, strict=True))


def test_last_expression_display_and_trailing_semicolon(tmp_path: Path) -> None:
    cells = [
        (
            1,
            "class Shown:\n    def _repr_html_(self):\n        return '<b>bold</b>'\n"
            "    def __repr__(self):\n        return 'Shown()'",
        ),
        (2, "Shown()"),
        (3, "None"),
        (4, "41 + 1;"),
        (5, "display(Shown(), 'two')\nx = 3"),
        (6, "x  # the value, not the comment"),
    ]
    shown = _outputs(_step(tmp_path, cells))
    assert shown[2] == [
        {
            "output_type": "execute_result",
            "execution_count": 2,
            "data": {"text/plain": "Shown()", "text/html": "<b>bold</b>"},
            "metadata": {},
        }
    ]
    assert shown[3] == [] and shown[4] == []
    assert [o["data"] for o in shown[5]] == [
        {"text/plain": "Shown()", "text/html": "<b>bold</b>"},
        {"text/plain": "'two'"},
    ]
    assert shown[6][0]["data"] == {"text/plain": "3"}


def test_a_cell_that_replaces_stdout_keeps_its_prints_and_the_next_cell_runs(tmp_path: Path) -> None:
    cells = [
        (1, "import sys, io\nprint('kept')\nsys.stdout = io.StringIO()\nprint('hidden')"),
        (2, "print = None\nn = sys.stderr.write('warned\\n')"),
        (3, "del print\nprint('also hidden')\ny = sys.stdout.getvalue()"),
    ]
    saved = sys.stdout
    try:
        shown = _outputs(_step(tmp_path, cells))
    finally:
        sys.stdout = saved
    assert shown[1] == [{"output_type": "stream", "name": "stdout", "text": "kept\n"}]
    assert shown[2] == [{"output_type": "stream", "name": "stderr", "text": "warned\n"}]
    assert shown[3] == []


def test_display_without_a_report_prints_instead_of_failing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run_step(
        step="s", notebook="nb.ipynb", cells=[(1, "display('hi', 2)")], parameters={}, inputs={}, outputs={}
    )
    assert capsys.readouterr().out == "hi 2\n"
    assert not (tmp_path / "report.html").exists()
    import builtins

    assert not hasattr(builtins, "display")  # the builtin is the step's only


def test_a_step_that_fails_outside_a_cell_still_writes_its_report(tmp_path: Path) -> None:
    report = tmp_path / "deep" / "report.html"
    with pytest.raises(Exception, match="not defined after the step's cells ran"):
        run_step(
            step="s",
            notebook="nb.ipynb",
            cells=[(1, "print('ran')")],
            parameters={},
            inputs={},
            outputs={"missing": str(tmp_path / "out")},
            report=str(report),
        )
    record = _record(report)
    assert record["status"] == "failed"
    assert _outputs(record)[1] == [{"output_type": "stream", "name": "stdout", "text": "ran\n"}]


@settings(max_examples=60, deadline=None)
@given(st.lists(st.text(max_size=40_000) | st.just("x" * 70_000), max_size=8))
def test_a_stream_keeps_its_head_and_tail_and_says_what_it_cut(chunks: list[str]) -> None:
    cell = CellOutputs(1, 1)
    for chunk in chunks:
        cell.write("stdout", chunk)
    cell.close()
    full = "".join(chunks)
    kept = "".join(o["text"] for o in cell.outputs)
    if len(full) <= STREAM_HEAD + STREAM_TAIL:
        assert kept == full
        assert len(cell.outputs) <= 1
    else:
        cut = len(full) - STREAM_HEAD - STREAM_TAIL
        note = f"\n[kale-yaml: {cut:,} characters of stdout cut here]\n"
        assert kept == full[:STREAM_HEAD] + note + full[-STREAM_TAIL:]


def test_a_cell_printing_a_hundred_megabytes_keeps_a_bounded_output() -> None:
    cell = CellOutputs(1, 1)
    line = "0123456789" * 10 + "\n"
    for _ in range(1_000_000):  # 101 MB in 1,000,000 writes
        cell.write("stdout", line)
    cell.close()
    text = cell.outputs[0]["text"]
    assert len(text) < STREAM_HEAD + STREAM_TAIL + 100
    assert "characters of stdout cut here" in text


@settings(max_examples=200, deadline=None)
@given(st.text(), st.text())
def test_any_text_survives_the_records_round_trip(text: str, name: str) -> None:
    outputs = [
        {"output_type": "stream", "name": "stdout", "text": text + "</script><!--"},
        {"output_type": "display_data", "data": {"text/html": f"<script>{text}</script>"}, "metadata": {}},
    ]
    record = make_record(
        name, "nb.ipynb", "finished", [{"cell": 1, "execution_count": 1, "outputs": outputs}]
    )
    element = record_element(record)
    assert element.count("</script>") == 1 and element.count("<") == 2
    page = report_page(record, [(1, text)])
    assert read_record(page) == record
    assert read_record(page.replace(f'id="{RECORD_ID}"', 'id="other"')) is None


@pytest.mark.parametrize(
    "page",
    [
        "",
        "<html></html>",
        f'<script type="application/json" id="{RECORD_ID}">not json</script>',
        f'<script type="application/json" id="{RECORD_ID}">[1, 2]</script>',
        f'<script type="application/json" id="{RECORD_ID}">{{"format": 2, "cells": []}}</script>',
        f'<script type="application/json" id="{RECORD_ID}">' + "[" * 100_000 + "</script>",
    ],
)
def test_read_record_gives_none_for_a_page_without_a_record(page: str) -> None:
    assert read_record(page) is None


def test_the_step_streams_are_its_own_again_after_the_step(tmp_path: Path) -> None:
    before_out, before_err = sys.stdout, sys.stderr
    _step(tmp_path, [(1, "print('x')")])
    assert (sys.stdout, sys.stderr) == (before_out, before_err)
    assert not isinstance(sys.stdout, io.StringIO) or sys.stdout is before_out


def test_cells_that_await_or_nest_deeply_run_as_without_a_report(tmp_path: Path) -> None:
    # Their last value is not shown: an awaiting cell runs in one event loop, and Python compiles a syntax
    # tree with less depth than the text of a long sum.
    cells = [
        (1, "import asyncio\nawait asyncio.sleep(0)\nlater = 5\nlater"),
        (2, "total = " + "1" + " + 1" * 2500),
        (3, "1" + " + 1" * 2500),
    ]
    shown = _outputs(_step(tmp_path, cells))
    assert shown == {1: [], 2: [], 3: []}
