"""Volumes and snapshots on a local run, for real: each volume is its mount path on this machine; snapshots
are copies under .kale/snapshots/RUN/STEP/VOLUME made in the pipeline's own order."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import nbformat
import pytest
import yaml
from nbformat.v4 import new_code_cell, new_notebook

from kale_yaml import api
from kale_yaml.cli.main import main
from kale_yaml.errors import RunError
from kale_yaml.run.local import RunOptions, RunResult, run_local
from kale_yaml.runtime import marshal
from tests.test_run import step_outputs


def make_project(root: Path, cells: list[str], sidecar: dict[str, Any]) -> Path:
    folder = root / "project"
    folder.mkdir()
    notebook = new_notebook(
        cells=[new_code_cell(textwrap.dedent(c).strip(), id=f"c{i}") for i, c in enumerate(cells)]
    )
    nbformat.write(notebook, folder / "nb.ipynb")
    (folder / "pipeline.kale.yaml").write_text(yaml.safe_dump(sidecar, sort_keys=False), encoding="utf-8")
    return folder


@pytest.fixture
def paths(tmp_path: Path) -> dict[str, Path]:
    data = tmp_path / "data"
    data.mkdir()
    (data / "input.txt").write_text("21", encoding="utf-8")
    return {"data": data, "scratch": tmp_path / "made" / "scratch", "kept": tmp_path / "kept"}


def volume_project(tmp_path: Path, paths: dict[str, Path], *, then: str = "") -> Path:
    """write reads the claim and writes the scratch volume (then runs `then`); read reads what write wrote."""
    folders = ", ".join(f"Path({str(paths[name])!r})" for name in ("data", "scratch", "kept"))
    cells = [
        f"from pathlib import Path\nDATA, SCRATCH, KEPT = {folders}",
        textwrap.dedent(
            """
            import os
            number = int((DATA / "input.txt").read_text()) * 2
            (SCRATCH / "out.txt").write_text(str(number))
            (KEPT / "note.txt").write_text("kept")
            greeting = os.environ.get("GREETING", "")
            """
        )
        + then,
        'result = int((SCRATCH / "out.txt").read_text())',
    ]
    sidecar: dict[str, Any] = {
        "version": 1,
        "notebook": "nb.ipynb",
        "pipeline": {"name": "volumes", "env": {"GREETING": "hello"}},
        "prelude": 1,
        "steps": [
            {"name": "write", "cells": 2, "outputs": ["number", "greeting"]},
            {"name": "read", "cells": 3, "after": ["write"], "volumes": ["scratch"], "outputs": ["result"]},
        ],
        "volumes": [
            {"name": "data", "mount": str(paths["data"]), "claim": "team-data"},
            {"name": "scratch", "mount": str(paths["scratch"]), "create": {"size": "1Gi"}},
            {"name": "kept", "mount": str(paths["kept"]), "create": {"size": "1Gi", "keep": True}},
        ],
        "snapshots": [
            {"volume": "scratch", "when": "before_each_step"},
            {"volume": "scratch", "when": "after_run"},
            {"volume": "data", "when": "before_each_step"},
        ],
    }
    return make_project(tmp_path, cells, sidecar)


def value(result: RunResult, step: str, name: str) -> Any:
    return marshal.load_value(str(step_outputs(result)[step][name]))


def test_volumes_are_the_paths_on_this_machine_and_snapshots_copy_them_in_order(
    tmp_path: Path, paths: dict[str, Path]
) -> None:
    folder = volume_project(tmp_path, paths)
    result = run_local(api.validate(folder), RunOptions(use_cache=False))

    assert result.failure is None, str(result.failure)
    assert value(result, "read", "result") == 42
    assert value(result, "write", "greeting") == "hello"  # env applies locally too
    root = folder / ".kale" / "snapshots" / result.run_dir.name
    assert result.snapshots == [
        root / "after_run" / "scratch",
        root / "read" / "scratch",
        root / "write" / "data",
        root / "write" / "scratch",
    ]
    assert (root / "write" / "data" / "input.txt").read_text(encoding="utf-8") == "21"
    assert list((root / "write" / "scratch").iterdir()) == []  # taken before `write` wrote anything
    assert (root / "read" / "scratch" / "out.txt").read_text(
        encoding="utf-8"
    ) == "42"  # after write, before read
    assert (root / "after_run" / "scratch" / "out.txt").read_text(encoding="utf-8") == "42"
    assert not (root / "read" / "data").exists()  # read does not mount data
    # The folder made for the run is gone with the parent made for it; the kept one stays; the claim too.
    assert not paths["scratch"].exists() and not paths["scratch"].parent.exists()
    assert (paths["kept"] / "note.txt").read_text(encoding="utf-8") == "kept"
    assert sorted(p.name for p in paths["data"].iterdir()) == ["input.txt"]
    assert result.volumes == [
        f"volume 'data': {paths['data']} as it is here (claim 'team-data')",
        f"volume 'scratch': {paths['scratch']}, made for this run and removed after it",
        f"volume 'kept': {paths['kept']}, made for this run and kept (keep: true)",
    ]
    assert "step 'read': volumes (locally every step sees every volume's path)" in result.ignored


def test_a_run_after_a_build_renders_from_its_view_and_checks_the_volumes_once(
    tmp_path: Path, paths: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    from kale_yaml.run import local, local_volumes

    folder = volume_project(tmp_path, paths)
    built = api.build(folder)
    checked: list[str] = []
    check = local_volumes.check

    def counting_check(config: Any) -> None:
        checked.append(config.name)
        check(config)

    def no_second_view(project: Any) -> Any:
        raise AssertionError("the run planned the pipeline again")

    monkeypatch.setattr(local_volumes, "check", counting_check)
    monkeypatch.setattr(local, "pipeline_view", no_second_view)
    result = run_local(built.project, RunOptions(use_cache=False), built.view)
    assert result.failure is None, str(result.failure)
    assert checked == ["volumes"]


def test_steps_that_mount_a_volume_made_for_the_run_are_never_cached(
    tmp_path: Path, paths: dict[str, Path]
) -> None:
    folder = volume_project(tmp_path, paths)
    run_local(api.validate(folder), RunOptions())
    again = run_local(api.validate(folder), RunOptions())
    assert again.failure is None, str(again.failure)
    assert {name: s.state for name, s in again.steps.items()} == {"write": "done", "read": "done"}
    assert len({p.parent.parent for p in again.snapshots}) == 1  # the second run's own snapshot folder


def test_an_existing_folder_for_a_created_volume_is_used_as_it_is(
    tmp_path: Path, paths: dict[str, Path]
) -> None:
    paths["scratch"].mkdir(parents=True)
    (paths["scratch"] / "old.txt").write_text("old", encoding="utf-8")
    folder = volume_project(tmp_path, paths)
    result = run_local(api.validate(folder), RunOptions(use_cache=False))
    assert result.failure is None, str(result.failure)
    assert sorted(p.name for p in paths["scratch"].iterdir()) == ["old.txt", "out.txt"]
    assert f"volume 'scratch': {paths['scratch']}, an existing folder, used as it is" in result.volumes


def test_a_missing_claim_folder_stops_the_run_before_anything(tmp_path: Path, paths: dict[str, Path]) -> None:
    paths["data"] = tmp_path / "no-such-data"
    folder = volume_project(tmp_path, paths)
    with pytest.raises(RunError) as caught:
        run_local(api.validate(folder), RunOptions())
    (diagnostic,) = caught.value.diagnostics
    assert diagnostic.key == "volumes[0].mount" and diagnostic.line is not None
    assert diagnostic.message == (
        f"{paths['data']} does not exist on this machine; a local run uses the mount path as it is: make it a"
        " folder holding the data of claim 'team-data' (or a copy of it)"
    )
    assert not (folder / ".kale" / "runs").exists()
    assert not paths["scratch"].exists() and not paths["kept"].exists()


def test_a_folder_that_cannot_be_made_stops_the_run_and_undoes_what_was_made(
    tmp_path: Path, paths: dict[str, Path]
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("", encoding="utf-8")
    paths["kept"] = blocker / "kept"  # below a file: mkdir fails
    folder = volume_project(tmp_path, paths)
    with pytest.raises(RunError, match=r"volumes\[2\]\.mount: cannot make .*/a-file/kept for this run: "):
        run_local(api.validate(folder), RunOptions())
    assert not paths["scratch"].parent.exists()  # scratch was made first, then taken back
    assert not (folder / ".kale" / "runs").exists()


def test_a_failed_snapshot_names_the_volume_and_the_step(tmp_path: Path, paths: dict[str, Path]) -> None:
    # `write` removes the scratch folder, so the copy before `read` has nothing to copy.
    folder = volume_project(tmp_path, paths, then="\nimport shutil\nshutil.rmtree(SCRATCH)")
    result = run_local(api.validate(folder), RunOptions(use_cache=False))
    assert not result.succeeded and result.failure is not None
    assert result.failure.message.startswith(
        "the snapshot of volume 'scratch' before step 'read' failed: FileNotFoundError"
    )
    assert result.failure.file == str(paths["scratch"])
    assert result.steps["write"].state == "done" and result.steps["read"].state == "not run"


def test_the_cli_says_how_each_volume_was_mapped_and_where_the_snapshots_are(
    tmp_path: Path,
    paths: dict[str, Path],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("KFP_HOST", raising=False)
    monkeypatch.setenv("COLUMNS", "1000")  # rich wraps at the terminal's width
    folder = volume_project(tmp_path, paths)
    assert main(["run", str(folder), "--no-cache"]) == 0
    out = capsys.readouterr().out
    assert f"on this machine: volume 'data': {paths['data']} as it is here (claim 'team-data')" in out
    assert "snapshot: " in out and "/snapshots/volumes-" in out and "/read/scratch" in out
