"""Deeply nested code (B3): what Python runs, kale-yaml analyses, builds and runs; what Python's own parser
cannot take is a located error at its cell; nothing ends in a RecursionError."""

from __future__ import annotations

import inspect
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import nbformat
import pytest
from syrupy.assertion import SnapshotAssertion

from kale_yaml import api
from kale_yaml.analysis.steps import analyse, cell_facts
from kale_yaml.errors import KaleYamlError
from kale_yaml.load.cells import Cell
from kale_yaml.run.local import RunOptions, run_local
from kale_yaml.runtime import marshal

LONG_SUM = "x = " + "+".join(["1"] * 1500)  # plain Python compiles and runs it
NESTED_LAMBDAS = "f = " + "lambda: " * 1500 + "1"


def write_base3(folder: Path, probe: str, last: str = "print(b)") -> None:
    """The issue's *base3*: markdown, `a = 1`, PROBE + `b = a + 1`, `print(b)`; steps s1..s3 = cells 2..4."""
    notebook = nbformat.v4.new_notebook()
    notebook.cells = [
        nbformat.v4.new_markdown_cell("# T"),
        nbformat.v4.new_code_cell("a = 1"),
        nbformat.v4.new_code_cell(f"{probe}\nb = a + 1"),
        nbformat.v4.new_code_cell(last),
    ]
    (folder / "nb.ipynb").write_text(nbformat.writes(notebook), encoding="utf-8")
    (folder / "pipeline.kale.yaml").write_text(
        "version: 1\nnotebook: nb.ipynb\npipeline: {name: t}\n"
        "steps:\n  - {name: s1, cells: 2}\n  - {name: s2, cells: 3}\n  - {name: s3, cells: 4}\n",
        encoding="utf-8",
    )


def test_a_sum_of_1500_terms_validates_builds_and_runs(tmp_path: Path) -> None:
    write_base3(tmp_path, LONG_SUM, last="total = x + b")
    project = api.validate(tmp_path)
    inputs = {(t.variable, t.producer) for t in project.pipeline.step("s3").inputs}
    assert inputs == {("b", "s2"), ("x", "s2")}
    built = api.build(tmp_path)
    compile(built.python_path.read_text(encoding="utf-8"), str(built.python_path), "exec")
    result = run_local(project, RunOptions(use_cache=False))
    assert result.failure is None, str(result.failure)
    task = next((result.run_dir / "artifacts").glob("*/s2-step"))
    assert marshal.load_value(str(task / "out_x")) == 1500


def test_1500_nested_lambdas_validate(tmp_path: Path) -> None:
    write_base3(tmp_path, NESTED_LAMBDAS + "\ng = f")
    assert [t.variable for t in api.validate(tmp_path).pipeline.step("s2").inputs] == ["a"]


@pytest.mark.parametrize(
    "probe",
    ["x = " + "+".join(["1"] * 50_000), "x = " + "-" * 20_000 + "1"],
    ids=["50000-terms", "20000-unary-minuses"],
)
def test_code_too_deep_for_python_is_an_error_at_its_cell(
    tmp_path: Path, probe: str, snapshot: SnapshotAssertion
) -> None:
    write_base3(tmp_path, probe)
    with pytest.raises(KaleYamlError) as caught:
        api.validate(tmp_path)
    assert [(d.file, d.cell) for d in caught.value.diagnostics] == [(str(tmp_path / "nb.ipynb"), 3)]
    assert caught.value.diagnostics[0].message == snapshot


def test_too_deep_code_on_the_command_line_exits_1_without_a_traceback(tmp_path: Path) -> None:
    write_base3(tmp_path, "x = " + "+".join(["1"] * 50_000))

    def kale_yaml(*argv: str) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            [sys.executable, "-m", "kale_yaml", *argv], cwd=tmp_path, capture_output=True, text=True
        )
        assert "Traceback" not in done.stderr, done.stderr
        return done

    for command in ("validate", "build"):
        done = kale_yaml(command)
        assert done.returncode == 1, command
        assert "nb.ipynb: cell 3: the code is nested too deeply for Python" in done.stderr
    for argv in (["cells"], ["cells", "nb.ipynb"]):  # owners come from selectors: no code analysed
        assert kale_yaml(*argv).returncode == 0
    (tmp_path / "pipeline.kale.yaml").unlink()
    done = kale_yaml("init", "nb.ipynb")  # skips the cell that cannot run: the cell reading from it fails
    assert done.returncode == 1
    draft = (tmp_path / "pipeline.kale.yaml").read_text(encoding="utf-8")
    assert "# cell 3 cannot run in a pipeline step: nested too deeply for Python to compile" in draft
    assert "cell 4, line 1: 'b' is read here but no earlier cell defines it" in done.stderr


@contextmanager
def shallow_stack() -> Iterator[None]:
    """A recursion limit just above the current depth: what a deeply nested statement meets in a deep stack.
    Python's parser keeps depth to spare at this limit (it scales the limit); the walker does not."""
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(len(inspect.stack()) + 100)
    try:
        yield
    finally:
        sys.setrecursionlimit(limit)


def test_a_statement_too_deep_for_the_analysis_is_an_error_at_its_line() -> None:
    nested = "\n".join(" " * i + "if a:" for i in range(60)) + "\n" + " " * 60 + "b = 1"
    cells = [Cell(3, None, "code", "a = 1\n" + nested), Cell(4, None, "code", "print(undefined)")]
    with pytest.raises(KaleYamlError) as first, shallow_stack():
        cell_facts(cells[0])
    with pytest.raises(KaleYamlError) as second, shallow_stack():
        analyse("nb.ipynb", [], [], [("s", cells[:1], None, None), ("t", cells[1:], None, None)])
    expected = (
        "cell 3, line 2: this statement is nested too deeply for kale-yaml's analysis of the data flow: split"
        " it into several statements"
    )
    assert [str(d) for d in first.value.diagnostics] == [f"<notebook>: {expected}"]
    # Reported once, at the statement; what the cell binds is unknown now, so later reads are no errors.
    assert [str(d) for d in second.value.diagnostics] == [f"nb.ipynb: {expected}"]
