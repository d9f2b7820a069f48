"""The user documentation (README.md and docs/*.md): every relative link points at a file or heading that
exists inside the repository, no link leaves the repository, and the sidecar reference names every key of the
schema."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import pytest

from tests.conftest import REPO

DOCS = REPO / "docs"
PAGES = [REPO / "README.md", *sorted(DOCS.glob("*.md"))]
SIDECAR_PAGE = DOCS / "sidecar.md"
SCHEMA = REPO / "schemas" / "pipeline.kale.schema.json"
EXPECTED_PAGES = ("index.md", "sidecar.md", "commands.md", "run.md")
# What the documentation of the product must never mention: notes and places outside the repository.
INTERNAL = ("SPEC.md", "DESIGN.md", "../shared", "/work/", "package registry here")
# Hosts of ours that serve nothing (the schema's $id) or would duplicate a file of the repository.
OUR_HOSTS = ("kale-yaml.dev",)

_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")
_HEADING = re.compile(r"^ {0,3}(#{1,6})[ \t]+(.*?)[ \t]*#*[ \t]*$")
_INLINE_CODE = re.compile(r"(`+)(.+?)\1")
_TITLE = r"""(?:\s+(?:"[^"]*"|'[^']*'))?"""
_INLINE_LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\]]*\])*\]\(\s*<?([^()\s<>]*)>?" + _TITLE + r"\s*\)")
_REFERENCE = re.compile(r"^ {0,3}\[[^\]]+\]:\s*<?([^\s<>]+)>?" + _TITLE + r"\s*$")
_AUTOLINK = re.compile(r"<((?:https?|file|ftp)://[^>\s]+)>")
_BARE_URL = re.compile(r"(?<![(<\w])((?:https?|file)://[^\s)>\]]*[^\s)>\].,;:!?'\"])")


def _outside_code(text: str) -> Iterator[tuple[int, str]]:
    """(line number, line) of the lines outside fenced code blocks."""
    fence: str | None = None
    for number, line in enumerate(text.splitlines(), start=1):
        marker = _FENCE.match(line)
        if fence is None:
            if marker:
                fence = marker.group(1)
                continue
            yield number, line
        elif (
            marker
            and marker.group(1)[0] == fence[0]
            and len(marker.group(1)) >= len(fence)
            and not line.strip().lstrip(fence[0])  # a closing fence carries no info string
        ):
            fence = None


def _prose_lines(text: str) -> Iterator[tuple[int, str]]:
    """The lines outside fenced code blocks, with inline code spans blanked out."""
    for number, line in _outside_code(text):
        yield number, _INLINE_CODE.sub(" ", line)


def _line_links(line: str) -> list[str]:
    found = [m.group(1) for m in _INLINE_LINK.finditer(line)]
    found += [m.group(1) for m in _REFERENCE.finditer(line)]
    found += [m.group(1) for m in _AUTOLINK.finditer(line)]
    rest = _INLINE_LINK.sub(" ", _AUTOLINK.sub(" ", line))
    return found + [m.group(1) for m in _BARE_URL.finditer(rest)]


def _links(page: Path) -> list[tuple[int, str]]:
    """Every link target written in a page's prose: inline, reference-style, autolinks and bare URLs."""
    text = page.read_text(encoding="utf-8")
    return [(number, target) for number, line in _prose_lines(text) for target in _line_links(line)]


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces as hyphens."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link in a heading anchors by its text
    text = re.sub(r"[^\w\- ]", "", text.strip().lower())
    return text.replace(" ", "-")


def _anchors(page: Path) -> set[str]:
    anchors: set[str] = set()
    seen: dict[str, int] = {}
    for _, line in _outside_code(page.read_text(encoding="utf-8")):
        heading = _HEADING.match(line)
        if heading:
            base = _slug(heading.group(2))
            count = seen.get(base, 0)
            seen[base] = count + 1
            anchors.add(base if count == 0 else f"{base}-{count}")
    return anchors


def _relative(page: Path) -> str:
    return page.relative_to(REPO).as_posix()


def _all_links() -> list[tuple[Path, int, str]]:
    return [(page, number, target) for page in PAGES for number, target in _links(page)]


def test_the_documentation_pages_exist() -> None:
    assert (REPO / "README.md").is_file()
    missing = [name for name in EXPECTED_PAGES if not (DOCS / name).is_file()]
    assert not missing, f"docs/ lacks {missing}"
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    unlisted = [name for name in EXPECTED_PAGES if f"](docs/{name})" not in readme]
    assert not unlisted, f"README.md does not link to docs/{unlisted}"


def test_the_link_finder_sees_links_and_skips_code() -> None:
    sample = "\n".join(
        [
            "See [the run](run.md#local-runs) and [x](../README.md 'title').",
            "`[not](a-link.md)` and <https://example.org/a>, also https://example.org/b.",
            "````",
            "```",
            "[inside](code.md)",
            "```",
            "````",
            "[ref]: sidecar.md",
        ]
    )
    found = [target for _, line in _prose_lines(sample) for target in _line_links(line)]
    assert found == [
        "run.md#local-runs",
        "../README.md",
        "https://example.org/a",
        "https://example.org/b",
        "sidecar.md",
    ]
    assert _slug("The `.kale/` folder") == "the-kale-folder"
    assert _slug("Ownership: every code cell has one owner") == "ownership-every-code-cell-has-one-owner"
    assert _slug("`node_selector`") == "node_selector"


@pytest.mark.parametrize("page", PAGES, ids=_relative)
def test_relative_links_point_at_files_and_headings_that_exist(page: Path) -> None:
    problems: list[str] = []
    for number, target in _links(page):
        parts = urlsplit(target)
        if parts.scheme or parts.netloc or target.startswith("mailto:"):
            continue  # checked by test_no_link_leaves_the_repository
        path = unquote(parts.path)
        where = f"{_relative(page)}:{number}: {target}"
        if path.startswith("/"):
            problems.append(f"{where}: an absolute path; link relative to the page")
            continue
        resolved = (page.parent / path).resolve() if path else page.resolve()
        if not resolved.is_relative_to(REPO.resolve()):
            continue  # reported by test_no_link_leaves_the_repository
        if not resolved.exists():
            problems.append(f"{where}: no such file in the repository")
            continue
        if parts.fragment and resolved.suffix == ".md" and parts.fragment not in _anchors(resolved):
            problems.append(f"{where}: {_relative(resolved)} has no heading #{parts.fragment}")
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("page", PAGES, ids=_relative)
def test_no_link_leaves_the_repository(page: Path) -> None:
    problems: list[str] = []
    for number, target in _links(page):
        where = f"{_relative(page)}:{number}: {target}"
        parts = urlsplit(target)
        if parts.scheme in ("http", "https"):
            host = parts.netloc.lower()
            if any(host == ours or host.endswith("." + ours) for ours in OUR_HOSTS):
                problems.append(f"{where}: {host} serves nothing yet; link the repository's file instead")
                continue
            segments = [s for s in unquote(parts.path).split("/") if s]
            tails = ["/".join(segments[i:]) for i in range(len(segments))]
            ours = [t for t in tails if ("/" in t or t.endswith(".md")) and (REPO / t).exists()]
            if ours:
                problems.append(
                    f"{where}: a web link to {ours[0]}, a file of the repository; link it relatively"
                )
            continue
        if target.startswith("mailto:"):
            continue
        if parts.scheme or parts.netloc:
            problems.append(
                f"{where}: a {parts.scheme or 'network'} link; link the repository's files relatively"
            )
            continue
        path = unquote(parts.path)
        if path.startswith("/") or path.startswith("~"):
            problems.append(f"{where}: an absolute path leaves the repository")
            continue
        resolved = (page.parent / path).resolve()
        if not resolved.is_relative_to(REPO.resolve()):
            problems.append(f"{where}: climbs out of the repository")
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("page", PAGES, ids=_relative)
def test_the_documentation_mentions_nothing_outside_the_repository(page: Path) -> None:
    text = page.read_text(encoding="utf-8")
    problems = [
        f"{_relative(page)}:{number}: mentions {word!r}"
        for number, line in enumerate(text.splitlines(), start=1)
        for word in INTERNAL
        if word in line
    ]
    assert not problems, "\n".join(problems)


# The schema's keys and fixed values, found by walking it: every one must appear in docs/sidecar.md.


def _schema() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(SCHEMA.read_text(encoding="utf-8"))
    return loaded


def _resolve(node: Any, schema: dict[str, Any]) -> Any:
    while isinstance(node, dict) and isinstance(node.get("$ref"), str):
        target: Any = schema
        for part in node["$ref"].removeprefix("#/").split("/"):
            target = target[part]
        node = target
    return node


def _schema_words(schema: dict[str, Any]) -> tuple[dict[str, str], dict[str, str]]:
    """(key -> one path where it appears, enum value -> one path): every property name at every depth, and
    every fixed string value, following references from the root."""
    keys: dict[str, str] = {}
    values: dict[str, str] = {}
    seen: set[int] = set()
    pending: list[tuple[Any, str]] = [(schema, "")]
    while pending:
        node, path = pending.pop()
        node = _resolve(node, schema)
        if not isinstance(node, dict) or id(node) in seen:
            continue
        seen.add(id(node))
        for name, child in (node.get("properties") or {}).items():
            keys.setdefault(name, f"{path}.{name}" if path else name)
            pending.append((child, f"{path}.{name}" if path else name))
        for value in node.get("enum") or []:
            if isinstance(value, str):
                values.setdefault(value, path)
        for keyword in ("items", "additionalProperties", "propertyNames"):
            if isinstance(node.get(keyword), dict):
                pending.append((node[keyword], f"{path}[]" if keyword == "items" else path))
        for keyword in ("anyOf", "oneOf", "allOf"):
            pending.extend((branch, path) for branch in node.get(keyword) or [])
        # `not` lists what is refused (Python keywords), not values a user writes: left out on purpose.
    return keys, values


def test_the_schema_walk_finds_nested_keys() -> None:
    keys, values = _schema_words(_schema())
    nested = ("version", "steps", "toleration_seconds", "from_snapshot", "gpu_type", "heading", "to", "when")
    assert set(nested) <= set(keys)
    assert keys["toleration_seconds"].endswith("tolerations[].toleration_seconds")
    assert {"after_run", "before_each_step", "ReadWriteOncePod", "NoExecute"} <= set(values)
    assert "lambda" not in values  # the keywords under `not` are not values to document


def test_the_sidecar_reference_names_every_key_of_the_schema() -> None:
    text = SIDECAR_PAGE.read_text(encoding="utf-8")
    keys, _ = _schema_words(_schema())
    missing = [f"{path} (write `{key}`)" for key, path in sorted(keys.items()) if f"`{key}`" not in text]
    assert not missing, "docs/sidecar.md does not describe these schema keys:\n" + "\n".join(missing)


def test_the_sidecar_reference_names_every_fixed_value_of_the_schema() -> None:
    text = SIDECAR_PAGE.read_text(encoding="utf-8")
    _, values = _schema_words(_schema())
    missing = [f"{path}: {value}" for value, path in sorted(values.items()) if f"`{value}`" not in text]
    assert not missing, "docs/sidecar.md does not name these values:\n" + "\n".join(missing)
