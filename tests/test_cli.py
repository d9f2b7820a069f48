"""The command line: exit codes, output formats (with the codes of the problems), several paths at once,
--version, and help for every argument."""

from __future__ import annotations

import argparse
import json
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest

import kale_yaml
from kale_yaml.cli.arguments import build_parser
from kale_yaml.cli.commands import COMMANDS
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


def test_json_and_github_formats_carry_each_problem_s_code(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", str(BAD), "--format", "json"]) == 1
    rows = json.loads(capsys.readouterr().out)
    assert [row["code"] for row in rows] == ["KY201"]
    assert main(["validate", str(BAD), "--format", "github"]) == 1
    (line,) = capsys.readouterr().out.splitlines()
    assert (
        line.startswith("::error file=")
        and ",line=6,col=3,title=KY201::pipeline.pacakges: unknown key" in line
    )


def test_the_text_format_leaves_the_code_out(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", str(BAD)]) == 1
    err = capsys.readouterr().err
    assert "unknown key 'pacakges'" in err and "KY201" not in err


def test_version_prints_the_version_pyproject_declares(capsys: pytest.CaptureFixture[str]) -> None:
    declared = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]["version"]
    with pytest.raises(SystemExit) as caught:
        main(["--version"])
    assert caught.value.code == 0
    assert capsys.readouterr().out == f"kale-yaml {declared}\n"
    assert kale_yaml.__version__ == declared


def _parsers(parser: argparse.ArgumentParser, name: str) -> Iterator[tuple[str, argparse.ArgumentParser]]:
    yield name, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for command, sub in action.choices.items():
                yield from _parsers(sub, f"{name} {command}")


def test_every_argument_of_every_command_has_help() -> None:
    parsers = list(_parsers(build_parser(), "kale-yaml"))
    assert {name for name, _ in parsers} >= {f"kale-yaml {c}" for c in COMMANDS}
    missing = [
        f"{name}: {'/'.join(action.option_strings) or action.dest}"
        for name, parser in parsers
        for action in parser._actions
        if not isinstance(action, argparse._HelpAction) and not (action.help or "").strip()
    ]
    commands = [
        f"kale-yaml {choice.dest}"
        for _, parser in parsers
        for action in parser._actions
        if isinstance(action, argparse._SubParsersAction)
        for choice in action._choices_actions
        if not (choice.help or "").strip()
    ]
    assert missing + commands == []


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_every_command_s_help_prints_and_exits_zero(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as caught:
        main([command, "--help"])
    assert caught.value.code == 0
    assert f"usage: kale-yaml {command}" in capsys.readouterr().out
