"""Failure safety and odd notebooks: located errors or correct output, and earlier outputs always survive."""

from __future__ import annotations

import errno
import os
import shutil
from pathlib import Path
from typing import Any

import nbformat
import pytest

from kale_yaml import api
from kale_yaml.errors import KaleYamlError
from kale_yaml.run.local import RunOptions, run_local
from kale_yaml.runtime import marshal
from tests.conftest import CASES, CopyCase


def _built(copy_case: CopyCase) -> tuple[Path, dict[Path, bytes]]:
    folder = copy_case(CASES / "valid" / "inplace_mutation")
    first = api.build(folder)
    # Make the next build differ, so it really has to write.
    notebook = folder / "nb.ipynb"
    notebook.write_text(notebook.read_text(encoding="utf-8").replace("xs.append(3)", "xs.append(5)"), "utf-8")
    return folder, {p: p.read_bytes() for p in (first.python_path, first.yaml_path)}


def _unchanged(saved: dict[Path, bytes]) -> None:
    assert {p: p.read_bytes() for p in saved} == saved
    folder = next(iter(saved)).parent
    left = sorted(p.name for p in folder.iterdir() if p.name != "cache")  # cache/: build's stamps, a memo
    assert left == sorted(p.name for p in saved), "temporary files left"


def test_disk_full_midway_leaves_earlier_outputs_and_says_what_happened(
    copy_case: CopyCase, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder, saved = _built(copy_case)
    real_fsync = os.fsync
    calls = {"n": 0}

    def fsync(fd: int) -> None:
        calls["n"] += 1
        if calls["n"] == 2:  # the second file: the first is already staged
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    with pytest.raises(KaleYamlError) as caught:
        api.build(folder)
    assert "cannot write the pipeline: No space left on device" in str(caught.value)
    _unchanged(saved)


def test_unwritable_output_folder_is_a_located_error(
    copy_case: CopyCase, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder, saved = _built(copy_case)

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(next(iter(saved)).parent))

    monkeypatch.setattr("tempfile.mkstemp", refuse)
    with pytest.raises(KaleYamlError) as caught:
        api.build(folder)
    assert "cannot write the pipeline: Permission denied" in str(caught.value)
    _unchanged(saved)


def test_output_path_that_is_a_file_is_an_error(copy_case: CopyCase, tmp_path: Path) -> None:
    folder = copy_case(CASES / "valid" / "after_edge")
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("x", encoding="utf-8")
    with pytest.raises(KaleYamlError) as caught:
        api.build(folder, blocker)
    assert "cannot write the pipeline" in str(caught.value)
    assert blocker.read_text(encoding="utf-8") == "x"


def _odd_notebook(folder: Path, name: str) -> Path:
    """nbformat 4.0 (no cell ids): empty, comment-only and magic-only cells, a __main__ guard, await."""
    notebook = nbformat.v4.new_notebook()
    notebook.nbformat_minor = 0
    sources = [
        ("markdown", "# Odd"),
        ("code", "import asyncio"),
        ("code", ""),
        ("code", "# only a comment"),
        ("code", "%matplotlib inline"),
        ("code", 'if __name__ == "__main__":\n    guarded = 42\nelse:\n    guarded = 0'),
        ("code", "value = await asyncio.sleep(0, guarded + 1)"),
        ("code", "result = [guarded, value]"),
    ]
    for kind, source in sources:
        cell = (
            nbformat.v4.new_markdown_cell(source) if kind == "markdown" else nbformat.v4.new_code_cell(source)
        )
        cell.pop("id", None)
        notebook.cells.append(cell)
    path = folder / name
    path.write_text(nbformat.writes(notebook, version=4), encoding="utf-8")
    return path


def test_odd_notebook_in_a_folder_with_spaces_and_unicode_runs(tmp_path: Path) -> None:
    folder = tmp_path / "my notebooks" / "ünïcödé"
    folder.mkdir(parents=True)
    notebook = _odd_notebook(folder, "odd nb ü.ipynb")
    assert '"id"' not in notebook.read_text(encoding="utf-8")
    (folder / "pipeline.kale.yaml").write_text(
        "version: 1\n"
        "notebook: odd nb ü.ipynb\n"
        "pipeline: {name: odd}\n"
        "prelude: 2\n"
        "steps:\n"
        "  - {name: first, cells: '3-7'}\n"
        "  - {name: second, cells: 8}\n",
        encoding="utf-8",
    )
    project = api.validate(folder)
    assert [w.message for w in project.warnings] == []  # `%matplotlib inline` is what a step does: no warning
    before = notebook.read_bytes()
    result = run_local(project, RunOptions(use_cache=False))
    assert result.failure is None, str(result.failure)
    task = next((result.run_dir / "artifacts").glob("*/first-step"))
    assert marshal.load_value(str(task / "out_guarded")) == 42
    assert marshal.load_value(str(task / "out_value")) == 43
    assert notebook.read_bytes() == before


def test_non_python_notebook_is_a_clear_error(tmp_path: Path) -> None:
    shutil.copytree(CASES / "valid" / "after_edge", tmp_path / "case")
    path = tmp_path / "case" / "nb.ipynb"
    notebook = nbformat.read(path, as_version=4)
    notebook.metadata["kernelspec"] = {"name": "julia-1.9", "language": "julia", "display_name": "Julia"}
    notebook.metadata["language_info"] = {"name": "julia"}
    nbformat.write(notebook, path)
    with pytest.raises(KaleYamlError) as caught:
        api.validate(tmp_path / "case")
    assert "nb.ipynb is written in julia" in str(caught.value)


def test_a_notebook_of_two_thousand_code_cells_builds(tmp_path: Path) -> None:
    notebook = nbformat.v4.new_notebook()
    steps = []
    for section in range(100):
        notebook.cells.append(nbformat.v4.new_markdown_cell(f"## Part {section}"))
        for index in range(20):
            previous = f"v{section - 1}_19" if section else "0"
            source = f"v{section}_{index} = {previous if index == 0 else f'v{section}_{index - 1}'} + 1"
            notebook.cells.append(nbformat.v4.new_code_cell(source))
        steps.append(f"  - {{name: part_{section}, cells: {{heading: 'Part {section}'}}}}")
    (tmp_path / "big.ipynb").write_text(nbformat.writes(notebook), encoding="utf-8")
    (tmp_path / "pipeline.kale.yaml").write_text(
        "version: 1\nnotebook: big.ipynb\npipeline: {name: big}\nsteps:\n" + "\n".join(steps) + "\n",
        encoding="utf-8",
    )
    project = api.validate(tmp_path)
    assert len(project.config.steps) == 100
    assert project.pipeline.step("part_99").inputs[0].producer == "part_98"
    assert api.build(tmp_path).yaml_path.is_file()
