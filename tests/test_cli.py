"""The command line: exit codes, output formats, several paths at once."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from kale_yaml.cli.main import main
from tests.conftest import CASES, REPO, CopyCase

WINE = REPO / "examples" / "wine"
BAD = CASES / "invalid" / "schema_unknown_key_typo"


def test_validate_ok_exits_zero(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", str(WINE)]) == 0
    assert "ok" in capsys.readouterr().out


def test_validate_reports_every_path_and_fails_if_any_fails(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", str(WINE), str(BAD)]) == 1
    captured = capsys.readouterr()
    assert "ok" in captured.out and "error" in captured.err


def test_validate_json_format_lists_located_diagnostics(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", str(BAD), "--format", "json"]) == 1
    rows = json.loads(capsys.readouterr().out)
    assert rows and all(row["line"] and row["file"].endswith("pipeline.kale.yaml") for row in rows)


def test_validate_github_format_emits_workflow_commands(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", str(BAD), "--format", "github"]) == 1
    lines = capsys.readouterr().out.splitlines()
    assert lines and all(line.startswith("::error file=") and ",line=" in line for line in lines)


def test_missing_sidecar_is_an_input_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", str(tmp_path)]) == 1
    assert "no such sidecar file" in capsys.readouterr().err


def test_wrong_usage_exits_two() -> None:
    with pytest.raises(SystemExit) as caught:
        main(["build", "--no-such-flag"])
    assert caught.value.code == 2


def test_build_check_exit_codes(copy_case: CopyCase, capsys: pytest.CaptureFixture[str]) -> None:
    folder = copy_case(CASES / "valid" / "after_edge")
    assert main(["build", str(folder), "--check"]) == 1
    assert main(["build", str(folder)]) == 0
    assert main(["build", str(folder), "--check"]) == 0
    assert "up to date" in capsys.readouterr().out


def test_schema_command_prints_the_schema(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["schema"]) == 0
    assert json.loads(capsys.readouterr().out)["$schema"].endswith("2020-12/schema")
