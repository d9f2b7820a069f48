"""The pre-commit hook this repository offers: its definition, and that its command takes the file names
pre-commit passes."""

from __future__ import annotations

import re
import shlex

import pytest
import yaml

from kale_yaml.cli.main import main
from tests.conftest import CASES, REPO


def hook() -> dict[str, object]:
    hooks = yaml.safe_load((REPO / ".pre-commit-hooks.yaml").read_text())
    assert isinstance(hooks, list) and len(hooks) == 1
    found: dict[str, object] = hooks[0]
    return found


def test_hook_definition() -> None:
    found = hook()
    assert found["id"] == "kale-yaml-validate"
    assert found["entry"] == "kale-yaml validate" and found["language"] == "python"
    assert found["pass_filenames"] is True


@pytest.mark.parametrize(
    ("path", "matches"),
    [
        ("pipeline.kale.yaml", True),
        ("examples/wine/pipeline.kale.yaml", True),
        ("mypipeline.kale.yaml", False),
        ("pipeline.kale.yaml.bak", False),
        ("pipeline_kale_yaml", False),
    ],
)
def test_hook_files_pattern(path: str, matches: bool) -> None:
    # pre-commit matches `files` with re.search against paths relative to the repository root.
    assert bool(re.search(str(hook()["files"]), path)) is matches


def test_hook_command_takes_several_file_names(capsys: pytest.CaptureFixture[str]) -> None:
    program, *args = shlex.split(str(hook()["entry"]))
    assert program == "kale-yaml"
    good = REPO / "examples" / "wine" / "pipeline.kale.yaml"
    other = REPO / "examples" / "textstats" / "pipeline.kale.yaml"
    bad = CASES / "invalid" / "names_unknown_metric" / "pipeline.kale.yaml"
    assert main([*args, str(good), str(other)]) == 0
    assert main([*args, str(good), str(bad)]) == 1
    assert "did you mean 'score'?" in capsys.readouterr().err
