"""`kale-yaml cells`: the table of cells and owners, also for notebooks without a sidecar and for sidecars
with errors (when a reviewer needs it most)."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
from syrupy.assertion import SnapshotAssertion

from kale_yaml.authoring.cell_table import CellRow, cells_view
from kale_yaml.cli.main import main
from tests.conftest import CASES, REPO, CopyCase

WINE = REPO / "examples" / "wine"
INVALID = CASES / "invalid"


@pytest.fixture(autouse=True)
def _wide_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "120")


def owners(rows: tuple[CellRow, ...]) -> dict[int, str]:
    return {row.number: row.owner for row in rows}


def test_wine_table(
    capsys: pytest.CaptureFixture[str], snapshot: SnapshotAssertion, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(REPO)
    assert main(["cells", "examples/wine"]) == 0
    captured = capsys.readouterr()
    assert captured.err == ""
    assert captured.out == snapshot


def test_owners_follow_the_resolved_sidecar() -> None:
    view = cells_view(WINE)
    assert view.with_owners and not view.diagnostics
    assert owners(view.rows) == {
        1: "-", 2: "prelude", 3: "parameters", 4: "-", 5: "load_data", 6: "load_data", 7: "skip", 8: "-",
        9: "split", 10: "split", 11: "-", 12: "train_logreg", 13: "-", 14: "train_forest", 15: "-",
        16: "evaluate", 17: "evaluate", 18: "evaluate",
    }  # fmt: skip
    assert view.rows[6].first_line == "# scratch"  # skip wins over the section it sits in


def test_a_notebook_path_uses_the_sidecar_beside_it() -> None:
    view = cells_view(WINE / "wine.ipynb")
    assert view.sidecar == WINE / "pipeline.kale.yaml"
    assert owners(view.rows)[2] == "prelude"


def test_a_notebook_path_reads_the_sidecar_beside_it_once(monkeypatch: pytest.MonkeyPatch) -> None:
    from kale_yaml.load.document import load_document

    read: list[Path] = []

    def counting(path: Path, display_name: str | None = None) -> Any:
        read.append(path)
        return load_document(path, display_name)

    monkeypatch.setattr("kale_yaml.load.inputs.load_document", counting)
    assert cells_view(WINE / "wine.ipynb").with_owners
    assert read == [WINE / "pipeline.kale.yaml"]


def test_a_notebook_without_a_sidecar_has_no_owner_column(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    shutil.copy(WINE / "wine.ipynb", tmp_path / "wine.ipynb")
    assert main(["cells", str(tmp_path / "wine.ipynb")]) == 0
    out = capsys.readouterr().out
    assert "owner" not in out and "import matplotlib.pyplot as plt" in out and "markdown" in out
    view = cells_view(tmp_path)  # a folder with one notebook and no sidecar
    assert not view.with_owners and {row.state for row in view.rows} == {"none"}


def test_a_sidecar_naming_another_notebook_is_not_used(copy_case: CopyCase) -> None:
    folder = copy_case(WINE)
    shutil.copy(folder / "wine.ipynb", folder / "other.ipynb")
    assert not cells_view(folder / "other.ipynb").with_owners


def test_unowned_cell_is_red_and_fails(capsys: pytest.CaptureFixture[str]) -> None:
    view = cells_view(INVALID / "ownership_unowned_cell")
    assert [row.number for row in view.rows if row.state == "unowned"] == [4]
    assert main(["cells", str(INVALID / "ownership_unowned_cell")]) == 1
    captured = capsys.readouterr()
    assert "unowned" in captured.out and "belongs to no step" in captured.err


def test_overlapping_steps_show_both_owners() -> None:
    view = cells_view(INVALID / "ownership_overlapping_steps")
    conflict = [row for row in view.rows if row.state == "conflict"]
    assert [(row.number, row.owner) for row in conflict] == [(6, "load + train")]
    assert any("belongs to both" in d.message for d in view.diagnostics)


def test_a_broken_selector_still_shows_the_other_owners() -> None:
    view = cells_view(INVALID / "selector_unknown_heading")
    assert owners(view.rows)[4] == "load" and owners(view.rows)[6] == "unowned"
    assert [d.key for d in view.diagnostics] == ["steps[1].cells.heading"]


def test_schema_errors_still_show_owners() -> None:
    view = cells_view(INVALID / "schema_unknown_key_typo")
    assert view.with_owners and any("pacakges" in d.message for d in view.diagnostics)
    assert {row.state for row in view.rows if row.cell_type == "code"} == {"owned"}


@pytest.mark.parametrize("case", ["yaml_syntax_error", "notebook_not_found", "yaml_empty_file"])
def test_unreadable_input_is_reported_without_a_traceback(
    case: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["cells", str(INVALID / case)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "Traceback" not in err


def test_a_broken_sidecar_beside_a_notebook_shows_the_table_and_the_error(
    copy_case: CopyCase, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = copy_case(WINE)
    (folder / "pipeline.kale.yaml").write_text("version: 1\nsteps: [\n")
    assert main(["cells", str(folder / "wine.ipynb")]) == 1
    captured = capsys.readouterr()
    assert "import matplotlib.pyplot as plt" in captured.out and "invalid YAML" in captured.err
