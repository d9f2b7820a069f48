"""Hostile input to the loaders (issue 10: B1, B2, B4-B7): whatever the YAML or JSON holds and whatever the
notebook path names, loading ends quickly in a located error: never a hang, never a traceback.

Symlink loops, FIFOs and devices cannot be committed as case folders, so they are made here in tmp_path.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
import tracemalloc
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator
from syrupy.assertion import SnapshotAssertion

from kale_yaml import api
from kale_yaml.authoring.cell_table import cells_view
from kale_yaml.authoring.draft import init_sidecar
from kale_yaml.errors import KaleYamlError
from kale_yaml.load import schema
from kale_yaml.load.document import MAX_DEPTH, MAX_TEXT, MAX_VALUES, parse_document
from kale_yaml.load.input_file import NOTEBOOK_LIMIT, SIDECAR_LIMIT
from kale_yaml.load.notebook import MAX_JSON_DEPTH, json_too_deep_at, notebook_path
from kale_yaml.resolve.selectors import CELL_RANGE
from tests.conftest import CASES, REPO

NOTEBOOK = CASES / "invalid" / "yaml_control_character" / "nb.ipynb"  # markdown, `x = 1`, `print(x)`
SIDECAR = """\
version: 1
notebook: {notebook}
pipeline:
  name: demo
steps:
  - name: load
    cells: 2
  - name: show
    cells: 3
"""
needs_posix_files = pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="FIFOs and /dev/zero are POSIX")


def project(folder: Path, notebook: str = "nb.ipynb", extra: str = "") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copy(NOTEBOOK, folder / "nb.ipynb")
    (folder / "pipeline.kale.yaml").write_text(SIDECAR.format(notebook=notebook) + extra, encoding="utf-8")
    return folder


def errors(call: Any, *args: Any) -> str:
    with pytest.raises(KaleYamlError) as caught:
        call(*args)
    return "\n".join(str(d) for d in caught.value.diagnostics)


def parse_errors(text: str) -> str:
    return errors(parse_document, text, Path("pipeline.kale.yaml"), "pipeline.kale.yaml")


def parsed(text: str) -> Any:
    return parse_document(text, Path("pipeline.kale.yaml"), "pipeline.kale.yaml").data


# B1: aliases are counted as what they expand to


def test_billion_laughs_is_refused_within_two_seconds_and_little_memory() -> None:
    tracemalloc.start()
    started = time.perf_counter()
    try:
        message = errors(api.validate, CASES / "invalid" / "yaml_billion_laughs")
        elapsed = time.perf_counter() - started
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert "alias *lol4 expands the sidecar to more than 20000 values" in message
    assert elapsed < 2
    assert peak < 50_000_000


def test_an_alias_of_a_long_text_counts_its_characters_each_time(snapshot: SnapshotAssertion) -> None:
    copies = MAX_TEXT // 100_000 + 1
    text = f"s: &s '{'x' * 100_000}'\nt: [{', '.join(['*s'] * copies)}]\n"
    assert parse_errors(text) == snapshot


def test_a_sidecar_of_too_many_values_is_refused_without_aliases_too() -> None:
    started = time.perf_counter()
    message = parse_errors(f"x: [{', '.join(['0'] * MAX_VALUES)}]\n")
    assert "the sidecar holds more than 20000 values" in message
    assert time.perf_counter() - started < 5


def test_aliases_within_the_bounds_are_expanded() -> None:
    data = parsed("base: &r {cpu: '1', memory: 1Gi}\nsteps: [{resources: *r}, {resources: *r}]\n")
    assert data["steps"] == [{"resources": {"cpu": "1", "memory": "1Gi"}}] * 2


# B2: recursion and depth


def test_a_recursive_alias_is_a_located_error() -> None:
    assert parse_errors("x: &a [*a]\n") == (
        "pipeline.kale.yaml:1:8: alias *a is used inside the value it names; no value can contain itself"
    )


def test_nesting_up_to_the_limit_is_read() -> None:
    inner = MAX_DEPTH - 1  # the top-level mapping is the first level
    assert parsed("x: " + "[" * inner + "]" * inner + "\n") is not None
    assert "nested more than 50 levels deep" in parse_errors("x: " + "[" * (inner + 1) + "]" * (inner + 1))


def test_an_alias_that_nests_the_sidecar_too_deep_is_located_at_the_alias() -> None:
    deep = MAX_DEPTH - 2
    text = f"a: &a {'[' * deep}{']' * deep}\nb: [[*a]]\n"
    assert parse_errors(text) == (
        "pipeline.kale.yaml:2:6: alias *a nests the sidecar more than 50 levels deep;"
        " a sidecar needs far fewer"
    )


def selector(levels: int) -> str:
    return "{from: " * levels + "2" + "}" * levels


def test_a_selector_nested_to_its_limit_passes_the_schema() -> None:
    text = SIDECAR.format(notebook="nb").replace(
        "cells: 2", f"cells: {selector(schema.MAX_SELECTOR_NESTING)}"
    )
    schema.check(parse_document(text, Path("pipeline.kale.yaml"), "pipeline.kale.yaml"))


def test_a_selector_nested_past_its_limit_is_refused_before_jsonschema_runs(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(schema, "_validator", lambda: pytest.fail("jsonschema ran"))
    too_deep = selector(schema.MAX_SELECTOR_NESTING + 1)
    text = SIDECAR.format(notebook="nb").replace("cells: 2", f"cells: [3, {too_deep}]")
    document = parse_document(text, Path("pipeline.kale.yaml"), "pipeline.kale.yaml")
    assert "steps[0].cells[1].from.from" in errors(schema.check, document)


def nested(depth: int) -> Any:
    value: Any = "x"
    for level in range(depth):
        value = [value] if level % 2 else {"k": value}
    return value


def test_notebook_json_to_the_depth_limit_is_read_and_past_it_is_located() -> None:
    assert json_too_deep_at(json.dumps(nested(MAX_JSON_DEPTH)).encode()) is None
    assert json_too_deep_at(json.dumps(nested(MAX_JSON_DEPTH + 1)).encode()) is not None
    # The outer mapping is level 1: the 100th "[" crosses the limit; columns count characters, not bytes.
    text = '{\n "é": ' + "[" * MAX_JSON_DEPTH + "]" * MAX_JSON_DEPTH + "}"
    assert json_too_deep_at(text.encode()) == (2, 7 + MAX_JSON_DEPTH - 1)


def test_a_notebook_nested_100000_deep_is_a_located_error(tmp_path: Path) -> None:
    folder = project(tmp_path / "p")
    (folder / "nb.ipynb").write_text("[" * 100_000 + "]" * 100_000, encoding="utf-8")
    assert errors(api.validate, folder).endswith(
        "nb.ipynb:1:101: not a notebook: its JSON nests more than 100 levels deep"
    )


json_text = st.text(alphabet='[]{}"\\/ nxé', max_size=8)
json_values = st.recursive(
    st.none() | st.integers() | json_text,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(json_text, inner, max_size=3),
    max_leaves=40,
)


def depth_of(value: Any) -> int:
    children = value.values() if isinstance(value, dict) else value if isinstance(value, list) else None
    return 0 if children is None else 1 + max((depth_of(c) for c in children), default=0)


@settings(max_examples=300, deadline=None)
@given(json_values, st.integers(0, 8))
def test_the_notebook_depth_check_agrees_with_the_parsed_depth(value: Any, indent: int) -> None:
    """Brackets, quotes and backslashes inside strings never count."""
    raw = json.dumps(value, indent=indent or None, ensure_ascii=False).encode()
    depth = depth_of(value)
    assert json_too_deep_at(raw, depth) is None
    if depth:
        assert json_too_deep_at(raw, depth - 1) is not None


# B4: scalars


def test_a_date_that_does_not_exist_is_text_like_any_unquoted_date(tmp_path: Path) -> None:
    folder = project(tmp_path / "p")
    sidecar = folder / "pipeline.kale.yaml"
    sidecar.write_text(sidecar.read_text().replace("name: demo\n", "name: demo\n  description: 2024-02-30\n"))
    assert api.validate(folder).config.description == "2024-02-30"
    assert parsed("d: 2024-02-29\nt: 2001-12-14 21:59:43.10 -5\n") == {
        "d": "2024-02-29",
        "t": "2001-12-14 21:59:43.10 -5",
    }


def test_an_explicit_timestamp_is_a_date_that_the_schema_refuses(snapshot: SnapshotAssertion) -> None:
    text = SIDECAR.format(notebook="nb").replace(
        "  name: demo\n", "  name: demo\n  description: !!timestamp 2024-02-29\n"
    )
    document = parse_document(text, Path("pipeline.kale.yaml"), "pipeline.kale.yaml")
    assert errors(schema.check, document) == snapshot


def test_a_bad_scalar_behind_aliases_is_reported_once_where_it_is_written() -> None:
    assert parse_errors("a: &a !!int x\nb: [*a, *a]\n") == (
        "pipeline.kale.yaml:1:4: a: invalid YAML value: 'x' is not a valid !!int"
    )


# B5: every pattern of the schema is anchored at the very end, in Python and in ECMA-262


def patterns() -> Iterator[tuple[str, dict[str, Any]]]:
    def walk(node: Any, where: str) -> Iterator[tuple[str, dict[str, Any]]]:
        if isinstance(node, dict):
            if "pattern" in node:
                yield where, node
            for key, value in node.items():
                if key != "x-message":  # wording, keyed by the keyword it explains
                    yield from walk(value, f"{where}/{key}")
        elif isinstance(node, list):
            for index, value in enumerate(node):
                yield from walk(value, f"{where}/{index}")

    return walk(schema.load_schema(), "#")


PATTERNS = list(patterns())
# Strings that a pattern anchored at both ends must refuse when added to a valid example.
SPOILERS = ["{}\n", "\n{}", "{}\r\n", "{}\n\n", "{}\nx"]
# Any absolute path may be mounted, newlines included (tests/test_cluster_checks.py sends such paths through).
FREE_TEXT = {"#/properties/volumes/items/properties/mount"}


def test_every_pattern_is_anchored_at_both_ends_and_has_examples() -> None:
    r"""`$` alone lets Python's re (which jsonschema uses) accept a final newline; ECMA-262's `$` does not.
    `$(?!\n)` is the very end in both, using only a lookahead, which JSON Schema's portable subset has."""
    assert len(PATTERNS) >= 14
    assert [where for where, node in PATTERNS if not re.fullmatch(r"\^.*\$\(\?!\\n\)", node["pattern"])] == []
    assert [where for where, node in PATTERNS if not node.get("examples")] == []


@pytest.mark.parametrize(("where", "node"), PATTERNS, ids=[w for w, _ in PATTERNS])
def test_each_pattern_accepts_its_examples_and_rejects_them_with_a_newline(
    where: str, node: dict[str, Any]
) -> None:
    checker = Draft202012Validator({k: v for k, v in node.items() if k not in ("x-message", "description")})
    for example in node["examples"]:
        assert checker.is_valid(example), (where, example)
        assert not checker.is_valid(example + "\0"), (where, example)
        for spoiler in SPOILERS if where not in FREE_TEXT else []:
            assert not checker.is_valid(spoiler.format(example)), (where, spoiler.format(example))


@pytest.mark.skipif(shutil.which("node") is None, reason="needs node for JavaScript's RegExp")
def test_each_pattern_means_the_same_in_ecma_262_as_in_python() -> None:
    """Editors check the schema with JavaScript's RegExp, kale-yaml with Python's re: they must agree."""
    probes = [
        (node["pattern"], text)
        for _, node in PATTERNS
        for example in node["examples"]
        for text in [example, *(spoiler.format(example) for spoiler in SPOILERS), f" {example}", "", "\n"]
    ]
    script = (
        "const probes = JSON.parse(require('fs').readFileSync(0, 'utf8'));"
        "const answer = probes.map(([p, s]) => [new RegExp(p).test(s), new RegExp(p, 'u').test(s)]);"
        "console.log(JSON.stringify(answer));"
    )
    answer = subprocess.run(
        ["node", "-e", script],
        input=json.dumps(probes),
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    python = [re.search(pattern, text) is not None for pattern, text in probes]
    assert [plain for plain, _ in json.loads(answer.stdout)] == python
    assert [unicode for _, unicode in json.loads(answer.stdout)] == python


@pytest.mark.parametrize("text", ["7", "3-6", " 3 - 6 ", "3\t-\t6", "3-6\n", "3\n", "\n3", "3 -", "\u20033"])
def test_the_selector_reads_a_range_exactly_when_the_schema_accepts_it(text: str) -> None:
    cell_range = schema.load_schema()["$defs"]["cell_range"]
    assert (CELL_RANGE.match(text) is not None) == Draft202012Validator(cell_range).is_valid(text)


# B6, B7: only regular files are read, within a size limit; odd paths are located errors


@needs_posix_files
def test_a_fifo_notebook_is_refused_without_blocking(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, snapshot: SnapshotAssertion
) -> None:
    folder = project(tmp_path / "p")
    (folder / "nb.ipynb").unlink()
    os.mkfifo(folder / "nb.ipynb")
    monkeypatch.chdir(folder)
    found = [errors(api.validate, "."), errors(cells_view, "."), errors(cells_view, "nb.ipynb")]
    (folder / "pipeline.kale.yaml").unlink()
    found.append(errors(init_sidecar, Path("nb.ipynb")))
    assert found == snapshot


@needs_posix_files
def test_a_fifo_sidecar_is_refused_without_blocking(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    os.mkfifo(tmp_path / "pipeline.kale.yaml")
    monkeypatch.chdir(tmp_path)
    expected = "pipeline.kale.yaml: cannot read: it is a named pipe (FIFO), not a regular file"
    assert errors(api.validate, ".") == expected
    assert errors(cells_view, ".") == expected
    shutil.copy(NOTEBOOK, tmp_path / "nb.ipynb")  # the notebook's table, with the sidecar's error
    assert [str(d) for d in cells_view("nb.ipynb").diagnostics] == [expected]


@pytest.mark.skipif(not Path("/dev/zero").exists(), reason="needs /dev/zero")
def test_a_device_as_notebook_is_refused_without_reading_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, snapshot: SnapshotAssertion
) -> None:
    folder = project(tmp_path / "p", notebook="/dev/zero")
    monkeypatch.chdir(folder)
    assert [errors(api.validate, "."), errors(init_sidecar, Path("/dev/zero"))] == snapshot


@needs_posix_files
def test_a_symlink_loop_is_a_located_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, snapshot: SnapshotAssertion
) -> None:
    folder = project(tmp_path / "p")
    (folder / "nb.ipynb").unlink()
    (folder / "nb.ipynb").symlink_to("nb.ipynb")
    monkeypatch.chdir(folder)
    found = [errors(api.validate, "."), errors(cells_view, "."), errors(cells_view, "nb.ipynb")]
    (folder / "pipeline.kale.yaml").rename("elsewhere.yaml")
    (folder / "pipeline.kale.yaml").symlink_to("pipeline.kale.yaml")
    found.append(errors(api.validate, "."))
    found.append(errors(init_sidecar, Path("nb.ipynb")))
    assert found == snapshot


def test_a_folder_named_as_the_notebook_is_a_located_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = project(tmp_path / "p", notebook="data")
    (folder / "data").mkdir()
    monkeypatch.chdir(folder)
    assert errors(api.validate, ".") == (
        "pipeline.kale.yaml:2:1: notebook: cannot read the notebook data: it is a folder, not a regular file"
    )


def test_files_over_the_size_limits_name_their_size_and_the_limit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = project(tmp_path / "p")
    monkeypatch.chdir(folder)
    with open("nb.ipynb", "r+b") as sparse:  # no disk space used: the size is all that is read first
        sparse.truncate(NOTEBOOK_LIMIT + 1)
    assert errors(api.validate, ".") == (
        "pipeline.kale.yaml:2:1: notebook: cannot read the notebook nb.ipynb: it is 100.1 MB; kale-yaml reads"
        " notebooks of at most 100 MB"
    )
    with open("pipeline.kale.yaml", "a", encoding="utf-8") as sidecar:
        sidecar.write("#" * SIDECAR_LIMIT)
    assert errors(api.validate, ".") == (
        "pipeline.kale.yaml: cannot read: it is 1.1 MB; kale-yaml reads sidecars of at most 1 MB"
    )


def test_a_notebook_path_that_no_file_name_can_hold_is_a_located_error() -> None:
    unusable = [("nb\0.ipynb", "a NUL character"), ("nb\ud800.ipynb", "characters no file name can")]
    for written, reason in unusable:
        text = SIDECAR.format(notebook=json.dumps(written))
        document = parse_document(text, REPO / "pipeline.kale.yaml", "pipeline.kale.yaml")
        assert errors(notebook_path, document).endswith(f"is not a file name: it holds {reason}")


def test_tilde_is_not_expanded_but_a_folder_named_tilde_is_found(tmp_path: Path) -> None:
    folder = project(tmp_path / "p", notebook='"~/nb.ipynb"')
    assert "'~' is not expanded" in errors(api.validate, folder)
    (folder / "~").mkdir()
    shutil.copy(NOTEBOOK, folder / "~" / "nb.ipynb")
    api.validate(folder)


def test_cells_applies_the_notebook_path_rules_of_validate(tmp_path: Path) -> None:
    folder = project(tmp_path / "p", notebook="../nb.ipynb")
    shutil.copy(NOTEBOOK, tmp_path / "nb.ipynb")
    assert errors(cells_view, folder) == errors(api.validate, folder)


# The CLI on unreadable notebooks: an error and exit 1, never a hang or a traceback


def unreadable_notebook(folder: Path, kind: str) -> None:
    notebook = folder / "nb.ipynb"
    notebook.unlink(missing_ok=True)
    if kind == "fifo":
        os.mkfifo(notebook)
    elif kind == "device":
        notebook.symlink_to("/dev/zero")
    else:
        notebook.symlink_to("nb.ipynb")


@needs_posix_files
@pytest.mark.parametrize("kind", ["fifo", "device", "loop"])
def test_commands_on_an_unreadable_notebook_end_in_an_error(tmp_path: Path, kind: str) -> None:
    commands = [
        ["validate"],
        ["cells"],
        ["cells", "nb.ipynb"],
        ["init", "nb.ipynb"],
        ["import-kale", "nb.ipynb"],
    ]
    for command in commands:
        folder = project(tmp_path / "-".join(command))
        if command[0] in ("init", "import-kale"):
            (folder / "pipeline.kale.yaml").unlink()
        unreadable_notebook(folder, kind)
        done = subprocess.run(
            [sys.executable, "-m", "kale_yaml", *command],
            cwd=folder,
            capture_output=True,
            text=True,
            timeout=60,
            env={**os.environ, "PYTHONPATH": str(REPO)},
        )
        assert done.returncode == 1, (command, done.stderr)
        assert "Traceback" not in done.stderr, (command, done.stderr)
        assert done.stderr.startswith("error: "), (command, done.stderr)


# Duplicate cell ids: as ambiguous as a repeated heading


def test_init_selects_cells_with_a_repeated_id_by_number(tmp_path: Path) -> None:
    folder = tmp_path / "p"
    folder.mkdir()
    shutil.copy(CASES / "invalid" / "selector_duplicate_id" / "nb.ipynb", folder / "nb.ipynb")
    sidecar = init_sidecar(folder / "nb.ipynb")
    assert "cell-2" not in sidecar.read_text(encoding="utf-8")
    api.validate(folder)


def test_plain_numbers_are_read_as_yaml_1_2_reads_them(tmp_path: Path) -> None:
    """YAML 1.1 (pyyaml's default) reads `017` as octal 15, `1:30` as 90 and `1e3` as text: not what a
    sidecar author writing a parameter value means."""
    text = (
        "x: {a: 017, b: 1e3, c: '1:30', d: 1:30, e: 0x10, f: 0o17, g: -5, h: .5, i: 12e-1, j: !!int 0b101}\n"
    )
    document = parse_document(text, tmp_path / "pipeline.kale.yaml", "pipeline.kale.yaml")
    assert document.data["x"] == {
        "a": 17,
        "b": 1000.0,
        "c": "1:30",
        "d": "1:30",
        "e": 16,
        "f": 15,
        "g": -5,
        "h": 0.5,
        "i": 1.2,
        "j": 5,
    }
    assert [type(v) for v in document.data["x"].values()] == [
        int,
        float,
        str,
        str,
        int,
        int,
        int,
        float,
        float,
        int,
    ]
