"""No command writes the notebook or the sidecar (B8), and a failed build leaves every earlier output as it
was (B9): the writer checks every target before it replaces any, and undoes a replacement that a later one
makes fail."""

from __future__ import annotations

import errno
import os
from pathlib import Path
from typing import Any

import nbformat
import pytest
from syrupy.assertion import SnapshotAssertion

from kale_yaml import api
from kale_yaml.cli.main import main
from kale_yaml.errors import KaleYamlError

Fingerprint = tuple[bytes, int, int]


def fingerprint(path: Path) -> Fingerprint:
    """What must not change: the bytes, the modification time, and the file itself (its inode)."""
    status = path.stat()
    return path.read_bytes(), status.st_mtime_ns, status.st_ino


def folder_fingerprint(folder: Path) -> dict[str, Fingerprint]:
    return {p.name: fingerprint(p) for p in sorted(folder.iterdir()) if p.is_file()}


def write_base(
    folder: Path, notebook_name: str = "nb.ipynb", sidecar_name: str = "pipeline.kale.yaml"
) -> Path:
    """The issue's *base*: `# T`, `a = 1`, `b = a + 1` + `print(b)`; steps s1 = cell 2, s2 = cell 3."""
    notebook = nbformat.v4.new_notebook()
    notebook.cells = [
        nbformat.v4.new_markdown_cell("# T"),
        nbformat.v4.new_code_cell("a = 1"),
        nbformat.v4.new_code_cell("b = a + 1\nprint(b)"),
    ]
    path = folder / notebook_name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(nbformat.writes(notebook), encoding="utf-8")
    (folder / sidecar_name).write_text(
        f"version: 1\nnotebook: {notebook_name}\npipeline: {{name: t}}\n"
        "steps:\n  - {name: s1, cells: 2}\n  - {name: s2, cells: 3}\n",
        encoding="utf-8",
    )
    return path


def messages(caught: pytest.ExceptionInfo[KaleYamlError]) -> str:
    return "\n".join(str(d) for d in caught.value.diagnostics)


@pytest.fixture
def base(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A folder for the base fixture, made the working folder so that messages show short paths."""
    folder = tmp_path / "project"
    folder.mkdir()
    monkeypatch.chdir(folder)
    return folder


# -- B8: the notebook and the sidecar are never written ------------------------------------------------------
def test_a_notebook_where_build_writes_is_refused_at_the_notebook_key(
    base: Path, snapshot: SnapshotAssertion
) -> None:
    notebook = write_base(base, ".kale/t.pipeline.py")
    inputs = {p: fingerprint(p) for p in (notebook, base / "pipeline.kale.yaml")}
    for check in (False, True):
        with pytest.raises(KaleYamlError) as caught:
            api.build(base, check=check)
        assert messages(caught) == snapshot
    assert {p: fingerprint(p) for p in inputs} == inputs
    assert sorted(p.name for p in (base / ".kale").iterdir()) == ["t.pipeline.py"]


def test_an_output_folder_holding_the_notebook_is_refused_naming_o(
    base: Path, snapshot: SnapshotAssertion
) -> None:
    write_base(base, "t.pipeline.yaml")
    before = folder_fingerprint(base)
    with pytest.raises(KaleYamlError) as caught:
        api.build(base, ".")
    assert messages(caught) == snapshot
    assert folder_fingerprint(base) == before


def _output_dir_spelt_differently(folder: Path) -> str:
    write_base(folder, "t.pipeline.yaml")
    return "./"


def _notebook_symlinked_into_outputs(folder: Path) -> str:
    write_base(folder, ".kale/t.pipeline.py")
    (folder / "nb.ipynb").symlink_to(".kale/t.pipeline.py")
    sidecar = folder / "pipeline.kale.yaml"
    sidecar.write_text(
        sidecar.read_text(encoding="utf-8").replace(".kale/t.pipeline.py", "nb.ipynb"), "utf-8"
    )
    return ""


def _output_dir_a_symlink_to_the_notebooks_folder(folder: Path) -> str:
    write_base(folder, "t.pipeline.yaml")
    (folder / "out").symlink_to(".")
    return "out"


def _output_a_hard_link_of_the_notebook(folder: Path) -> str:
    notebook = write_base(folder)
    (folder / "out").mkdir()
    os.link(notebook, folder / "out" / "t.pipeline.py")
    return "out"


@pytest.mark.parametrize(
    "arrange",
    [
        _output_dir_spelt_differently,
        _notebook_symlinked_into_outputs,
        _output_dir_a_symlink_to_the_notebooks_folder,
        _output_a_hard_link_of_the_notebook,
    ],
)
def test_the_notebook_is_recognised_however_its_path_is_spelt(base: Path, arrange: Any) -> None:
    out_dir = arrange(base) or None
    notebook = (base / "pipeline.kale.yaml").read_text(encoding="utf-8").split("notebook: ")[1].split("\n")[0]
    before = {p: fingerprint(p) for p in (base / notebook, base / "pipeline.kale.yaml")}
    with pytest.raises(KaleYamlError) as caught:
        api.build(base, out_dir)
    assert "which is the notebook" in messages(caught) or "would replace the notebook" in messages(caught)
    assert {p: fingerprint(p) for p in before} == before


def test_an_output_that_is_the_sidecar_is_refused(base: Path, snapshot: SnapshotAssertion) -> None:
    write_base(base, sidecar_name="t.pipeline.yaml")
    before = folder_fingerprint(base)
    with pytest.raises(KaleYamlError) as caught:
        api.build(base / "t.pipeline.yaml", ".")
    assert messages(caught) == snapshot
    assert folder_fingerprint(base) == before


def test_build_and_run_refuse_on_the_command_line_with_exit_1(
    base: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    notebook = write_base(base, ".kale/t.pipeline.py")
    before = fingerprint(notebook)
    for argv in (["build"], ["build", "--check"], ["run"]):
        assert main(argv) == 1
        err = capsys.readouterr().err
        assert err.startswith("error: pipeline.kale.yaml:2:1: notebook: build writes its output") and (
            "Traceback" not in err
        )
    assert main(["build", "-o", "."]) == 0  # another folder: the notebook is an input only
    assert fingerprint(notebook) == before


def test_init_and_import_kale_never_write_a_notebook_named_like_its_sidecar(
    base: Path, capsys: pytest.CaptureFixture[str], snapshot: SnapshotAssertion
) -> None:
    notebook = write_base(base, "pipeline.kale.yaml", sidecar_name="unused.kale.yaml")
    before = fingerprint(notebook)
    for command in ("init", "import-kale"):
        assert main([command, "pipeline.kale.yaml"]) == 1
        assert capsys.readouterr().err == snapshot
    assert fingerprint(notebook) == before


# -- B9: a failed build changes no earlier output ------------------------------------------------------------
def _built_then_edited(folder: Path) -> tuple[Path, Path]:
    """Build the base once, then change a cell so that the next build has to write both files."""
    notebook = write_base(folder)
    result = api.build(folder)
    notebook.write_text(notebook.read_text(encoding="utf-8").replace("a = 1", "a = 2"), encoding="utf-8")
    return result.python_path, result.yaml_path


def test_a_folder_at_the_second_output_leaves_the_first_as_it_was(
    base: Path, snapshot: SnapshotAssertion, capsys: pytest.CaptureFixture[str]
) -> None:
    python_path, yaml_path = _built_then_edited(base)
    yaml_path.unlink()
    yaml_path.mkdir()
    before = folder_fingerprint(python_path.parent)
    with pytest.raises(KaleYamlError) as caught:
        api.build(base)
    assert messages(caught) == snapshot
    assert main(["build"]) == 1
    err = capsys.readouterr().err
    assert err == f"error: {messages(caught)}\n"
    assert folder_fingerprint(python_path.parent) == before
    left = sorted(p.name for p in python_path.parent.iterdir() if p.name != "cache")  # cache/: build stamps
    assert left == [python_path.name, yaml_path.name]


def test_a_special_file_at_an_output_is_refused_before_anything_is_written(
    base: Path, snapshot: SnapshotAssertion
) -> None:
    python_path, yaml_path = _built_then_edited(base)
    yaml_path.unlink()
    os.mkfifo(yaml_path)
    before = folder_fingerprint(python_path.parent)
    with pytest.raises(KaleYamlError) as caught:
        api.build(base)
    assert messages(caught) == snapshot
    assert folder_fingerprint(python_path.parent) == before


def _failing_second_rename(monkeypatch: pytest.MonkeyPatch) -> None:
    """The rename of the staged YAML onto its target fails, after the .py has been replaced."""
    real_replace = os.replace

    def replace(source: Any, target: Any, **kwargs: Any) -> None:
        if str(source).endswith(".tmp") and str(target).endswith(".pipeline.yaml"):
            raise OSError(errno.EIO, os.strerror(errno.EIO), str(source), None, str(target))
        real_replace(source, target, **kwargs)

    monkeypatch.setattr(os, "replace", replace)


def test_a_second_rename_that_fails_puts_the_first_file_back(
    base: Path, monkeypatch: pytest.MonkeyPatch, snapshot: SnapshotAssertion
) -> None:
    python_path, _ = _built_then_edited(base)
    before = folder_fingerprint(python_path.parent)
    _failing_second_rename(monkeypatch)
    with pytest.raises(KaleYamlError) as caught:
        api.build(base)
    assert messages(caught) == snapshot
    assert folder_fingerprint(python_path.parent) == before  # same bytes, times and inodes: no leftovers


def test_a_first_build_that_fails_leaves_no_files_or_folders(
    base: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_base(base)
    before = sorted(p.name for p in base.iterdir())
    _failing_second_rename(monkeypatch)
    with pytest.raises(KaleYamlError):
        api.build(base, "new/deeper")
    assert sorted(p.name for p in base.iterdir()) == before
