"""`kale-yaml init NOTEBOOK`: a draft sidecar that validates, never overwriting one."""

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
from kale_yaml.authoring.draft import pipeline_name, step_name, top_sections
from kale_yaml.authoring.draft_cells import is_import_only
from kale_yaml.cli.main import main
from kale_yaml.load.cells import Cell
from kale_yaml.load.notebook import load_notebook
from kale_yaml.load.schema import load_schema
from tests.conftest import REPO

EXAMPLES = REPO / "examples"


def copy_notebook(source: Path, folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / source.name
    shutil.copy(source, target)
    return target


def write_notebook(path: Path, cells: list[tuple[str, str] | tuple[str, str, list[str]]]) -> Path:
    made: list[Any] = []
    for number, item in enumerate(cells, start=1):
        kind, source = item[0], item[1]
        cell = new_markdown_cell(source) if kind == "md" else new_code_cell(source)
        cell.id = f"c{number:02d}"
        if len(item) == 3:
            cell.metadata["tags"] = item[2]
        made.append(cell)
    nb = new_notebook(cells=made)
    nb.metadata = {"kernelspec": {"name": "python3", "language": "python", "display_name": "Python 3"}}
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, str(path))
    return path


def test_wine_draft(tmp_path: Path, capsys: pytest.CaptureFixture[str], snapshot: SnapshotAssertion) -> None:
    notebook = copy_notebook(EXAMPLES / "wine" / "wine.ipynb", tmp_path / "wine")
    before = notebook.read_bytes()
    assert main(["init", str(notebook)]) == 0
    out = capsys.readouterr().out
    assert "wrote" in out and "it validates (6 steps)" in out
    text = (notebook.parent / "pipeline.kale.yaml").read_text()
    assert text == snapshot
    assert notebook.read_bytes() == before
    project = api.validate(notebook.parent)
    assert [s.config.name for s in project.pipeline.steps] == [
        "setup", "load_data", "split", "logistic_regression", "random_forest", "evaluate",
    ]  # fmt: skip


def test_draft_starts_with_the_schema_line_and_explains_its_keys(tmp_path: Path) -> None:
    notebook = copy_notebook(EXAMPLES / "textstats" / "textstats.ipynb", tmp_path / "t")
    assert main(["init", str(notebook)]) == 0
    lines = (notebook.parent / "pipeline.kale.yaml").read_text().splitlines()
    assert lines[0] == f"# yaml-language-server: $schema={load_schema()['$id']}"
    assert any("kale-yaml schema > " in line for line in lines[:6])
    top_level = [line for line in lines if line and not line.startswith((" ", "#"))]
    assert top_level and all("#" in line for line in top_level)
    assert api.validate(notebook.parent).config.steps


def test_init_refuses_to_overwrite(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    notebook = copy_notebook(EXAMPLES / "wine" / "wine.ipynb", tmp_path)
    (tmp_path / "pipeline.kale.yaml").write_text("mine\n")
    assert main(["init", str(notebook)]) == 1
    assert "already exists" in capsys.readouterr().err
    assert (tmp_path / "pipeline.kale.yaml").read_text() == "mine\n"


def test_init_wants_a_notebook_not_a_folder(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["init", str(tmp_path)]) == 1
    assert "is a folder: name the notebook (.ipynb) itself" in capsys.readouterr().err
    assert not (tmp_path / "pipeline.kale.yaml").exists()


def test_papermill_parameters_prelude_and_setup(tmp_path: Path) -> None:
    notebook = write_notebook(
        tmp_path / "flow.ipynb",
        [
            ("md", "# Flow"),
            ("code", "import math\n%matplotlib inline"),
            ("code", "rate = 0.5\nsteps = 3", ["parameters"]),
            ("code", "from functools import reduce"),
            ("code", "base = 10"),
            ("code", "import os"),
            ("md", "## 1. Grow"),
            ("code", "values = [base * rate**i for i in range(steps)]"),
            ("md", "## Notes\nProse only."),
            ("code", ""),
            ("md", "## Prelude"),
            ("code", "total = reduce(lambda a, b: a + b, values)\nroot = math.sqrt(total)"),
        ],
    )
    assert main(["init", str(notebook)]) == 0
    text = (tmp_path / "pipeline.kale.yaml").read_text()
    data = yaml.safe_load(text)
    assert data["parameters"] == {"cells": {"id": "c03"}}
    assert data["prelude"] == [{"id": "c02"}, {"id": "c04"}]
    assert [s["name"] for s in data["steps"]] == ["setup", "step_1_grow", "prelude_step"]
    assert data["steps"][0]["cells"] == [{"id": "c05"}, {"id": "c06"}]
    assert data["steps"][1]["cells"] == {"heading": "1. Grow"}
    project = api.validate(tmp_path)
    assert project.config.parameters[0].name == "rate"


def test_duplicate_headings_and_a_parameter_cell_inside_a_section(tmp_path: Path) -> None:
    notebook = write_notebook(
        tmp_path / "dup.ipynb",
        [
            ("md", "## Train"),
            ("code", "a = 1"),
            ("code", "n = 2", ["parameters"]),
            ("code", "b = a * n"),
            ("md", "## Train"),
            ("code", "c = b + 1"),
            ("md", "### Details"),
            ("code", "d = c * 2"),
        ],
    )
    assert main(["init", str(notebook)]) == 0
    data = yaml.safe_load((tmp_path / "pipeline.kale.yaml").read_text())
    assert [s["name"] for s in data["steps"]] == ["train", "train_2"]
    assert data["steps"][0]["cells"] == [2, 4]  # cell 3 is the parameters cell: named one by one
    assert data["steps"][1]["cells"] == {"from": {"id": "c05"}}  # the heading is not unique
    api.validate(tmp_path)


def test_a_notebook_without_headings_is_one_step(tmp_path: Path) -> None:
    notebook = write_notebook(
        tmp_path / "plain.ipynb", [("code", "import json"), ("code", "x = json.dumps(1)")]
    )
    assert main(["init", str(notebook)]) == 0
    data = yaml.safe_load((tmp_path / "plain.ipynb").with_name("pipeline.kale.yaml").read_text())
    assert data["prelude"] == {"id": "c01"} and data["steps"] == [{"name": "main", "cells": {"id": "c02"}}]
    api.validate(tmp_path)


def test_a_draft_that_does_not_validate_is_written_with_next_steps(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    notebook = write_notebook(tmp_path / "bad.ipynb", [("md", "## One"), ("code", "y = undefined_name + 1")])
    assert main(["init", str(notebook)]) == 1
    captured = capsys.readouterr()
    assert "does not validate yet" in captured.out
    assert "'undefined_name' is read here but no earlier cell defines it" in captured.err
    assert (tmp_path / "pipeline.kale.yaml").is_file()


def test_title_rule() -> None:
    wine = load_notebook(EXAMPLES / "wine" / "wine.ipynb", "wine.ipynb")
    title, sections = top_sections(wine)
    assert title == "Wine classification"
    assert [s.text for s in sections] == [
        "Load data",
        "Split",
        "Logistic regression",
        "Random forest",
        "Evaluate",
    ]


@pytest.mark.parametrize(
    ("heading", "expected"),
    [
        ("Load data", "load_data"),
        ("1. Load the data!", "step_1_load_the_data"),
        ("Données brutes", "donnees_brutes"),
        ("Prelude", "prelude_step"),
        ("parameter", "parameter_step"),
        ("Train", "train_2"),
        ("???", "section_9"),
        (
            "A very long heading that keeps going on and on about the data",
            "a_very_long_heading_that_keeps_going_on",
        ),
    ],
)
def test_step_names(heading: str, expected: str) -> None:
    assert step_name(heading, {"train"}, "section_9") == expected


def test_pipeline_names() -> None:
    assert pipeline_name("Wine Quality (v2)") == "wine-quality-v2"
    assert pipeline_name("___") == "pipeline"


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("import a\nfrom b import c", True),
        ("%matplotlib inline\nimport numpy as np", True),
        ("import a\nx = 1", False),
        ("", False),
        ("%%bash\necho", False),
    ],
)
def test_import_only_cells(source: str, expected: bool) -> None:
    assert is_import_only(Cell(1, None, "code", source)) is expected


def test_a_license_comment_cell_makes_no_setup_step(tmp_path: Path) -> None:
    path = write_notebook(
        tmp_path / "nb.ipynb",
        [
            ("code", "# Authors: The scikit-learn developers\n# SPDX-License-Identifier: BSD-3-Clause"),
            ("code", "import numpy as np"),
            ("md", "## Data"),
            ("code", "x = np.arange(3)"),
        ],
    )
    assert main(["init", str(path)]) == 0
    data = yaml.safe_load((tmp_path / "pipeline.kale.yaml").read_text())
    assert [s["name"] for s in data["steps"]] == ["data"]
    assert data["prelude"] == {"id": "c02"}
    api.validate(tmp_path)


def test_setting_only_cells_join_the_prelude_and_cells_that_cannot_run_are_skipped(tmp_path: Path) -> None:
    path = write_notebook(
        tmp_path / "nb.ipynb",
        [
            ("code", "import numpy as np\nimport pandas as pd"),
            ("code", "pd.set_option('display.precision', 3)\nnp.random.seed(0)"),
            ("md", "## Data"),
            ("code", "x = np.random.rand(3)"),
            ("code", "%%timeit\nsum(range(10))"),
            ("code", "%%bash\necho hi"),
            ("code", "x?"),
        ],
    )
    assert main(["init", str(path)]) == 0
    text = (tmp_path / "pipeline.kale.yaml").read_text()
    data = yaml.safe_load(text)
    assert data["prelude"] == [{"id": "c01"}, {"id": "c02"}]
    assert data["skip"] == [{"id": "c06"}, {"id": "c07"}]
    assert "# cell 6 cannot run in a pipeline step: cell magic %%bash" in text
    assert "# cell 7 cannot run in a pipeline step: not Python (invalid syntax; IPython-only syntax?)" in text
    assert [s.config.name for s in api.validate(tmp_path).pipeline.steps] == ["data"]
