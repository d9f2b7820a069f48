"""Reading a notebook into numbered cells. The notebook file is only ever opened for reading."""

from __future__ import annotations

import functools
import json
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from itertools import accumulate
from pathlib import Path
from typing import Any

from kale_yaml import diagnostics as ky
from kale_yaml.diagnostics import Kind
from kale_yaml.errors import Diagnostic, NotebookError
from kale_yaml.load.cells import Cell, Notebook
from kale_yaml.load.document import Document
from kale_yaml.load.input_file import NOTEBOOK_LIMIT, UnreadableFile, read_input_file
from kale_yaml.load.nbmeta import metadata_from_json
from kale_yaml.suggest import did_you_mean

_ATX_HEADING = re.compile(r"^ {0,3}(#{1,6})[ \t]+(.*?)[ \t]*#*[ \t]*$")

# nbformat itself nests 5 levels; outputs and widget state add a few more.
MAX_JSON_DEPTH = 100
_DEPTH_STEP = {ord("["): 1, ord("{"): 1, ord("]"): -1, ord("}"): -1}
_NOT_STRUCTURE = bytes(b for b in range(256) if b not in b'[]{}"')
_BRACKETED_STRING = re.compile(rb'"[^"]*"')
_JSON_TOKEN = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"|[\[\]{}]')


@dataclass(frozen=True)
class Heading:
    level: int
    text: str


@functools.cache  # selectors ask for every cell's headings many times over
def headings(cell: Cell) -> tuple[Heading, ...]:
    """The ATX headings of a markdown cell, outside fenced code blocks."""
    if cell.cell_type != "markdown":
        return ()
    found: list[Heading] = []
    in_fence = False
    for line in cell.source.splitlines():
        if line.lstrip().startswith(("```", "~~~")):
            in_fence = not in_fence
            continue
        match = None if in_fence else _ATX_HEADING.match(line)
        if match:
            found.append(Heading(len(match.group(1)), match.group(2).strip()))
    return tuple(found)


def normalise_heading(text: str) -> str:
    return " ".join(text.replace("#", " ").split()).casefold()


def notebook_path(document: Document) -> Path:
    """The notebook the sidecar's `notebook:` names. A relative path is taken from the sidecar's folder and
    may not climb out of it (a review should not have to chase `../../`); an absolute path says explicitly
    where the notebook is. `~` is not expanded: a sidecar is shared, and every reader has a different home."""
    written = str(document.data["notebook"])

    def refuse(kind: Kind, message: str) -> NotebookError:
        return NotebookError.single(document.at(("notebook",), kind, message))

    if "\0" in written:
        raise refuse(ky.BAD_NOTEBOOK_PATH, f"{written!r} is not a file name: it holds a NUL character")
    try:
        os.fsencode(written)
    except UnicodeError:
        message = f"{written!r} is not a file name: it holds characters no file name can"
        raise refuse(ky.BAD_NOTEBOOK_PATH, message) from None
    path = Path(written)
    if path.is_absolute():
        return path
    # realpath, not Path.resolve: a symbolic link loop is for the reader to report, not a RuntimeError here.
    folder = Path(os.path.realpath(document.path.parent))
    located = Path(os.path.realpath(folder / path))
    if written.startswith("~") and not os.path.lexists(located):
        raise refuse(
            ky.NOTEBOOK_NOT_FOUND,
            f"no such notebook: '{written}'; '~' is not expanded: a relative path is taken from the sidecar's"
            " folder, so write the notebook's path relative to the sidecar, or absolute",
        )
    if not located.is_relative_to(folder):
        raise refuse(
            ky.NOTEBOOK_OUTSIDE,
            f"'{written}' leaves the sidecar's folder; keep the notebook beside or below the sidecar,"
            " or write an absolute path",
        )
    return located


Problem = Callable[[Kind, str], NotebookError]


def load_notebook(
    path: Path, display_name: str, locate: Callable[[Kind, str], Diagnostic] | None = None
) -> Notebook:
    """Read an nbformat 4 notebook (with or without cell ids). Raises `NotebookError`.

    `locate` turns a problem (its kind and message) about the notebook as a whole into a diagnostic; a
    sidecar passes one that points at its `notebook:` key. Without it, the problem is located in the
    notebook file itself.
    """

    def problem(kind: Kind, message: str) -> NotebookError:
        if locate is not None:
            return NotebookError.single(locate(kind, message))
        return NotebookError.single(kind.at(display_name, message, line=1, col=1))

    as_json = _notebook_json(path, display_name, problem)
    cells = _cells(as_json, display_name, problem)
    language = _language(as_json)
    if language.lower() != "python":
        raise problem(
            ky.NOT_PYTHON,
            f"{display_name} is written in {language} (its kernel's language); kale-yaml turns Python"
            " notebooks into pipelines",
        )
    return Notebook(
        path=path,
        display_name=display_name,
        cells=cells,
        language=language.lower(),
        metadata=metadata_from_json(as_json),
    )


def _notebook_json(path: Path, display_name: str, problem: Problem) -> dict[str, Any]:
    """The notebook file's JSON, read within bounds and checked to be nbformat 4."""
    try:
        raw = read_input_file(path, NOTEBOOK_LIMIT, "notebooks")
    except UnreadableFile as exc:
        if not exc.missing:
            message = f"cannot read the notebook {display_name}: {exc.reason}"
            raise problem(ky.UNREADABLE_NOTEBOOK, message) from None
        siblings = [p.name for p in path.parent.glob("*.ipynb")] if path.parent.is_dir() else []
        message = f"no such notebook: '{path.name}'{did_you_mean(path.name, siblings)}"
        raise problem(ky.NOTEBOOK_NOT_FOUND, message) from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        message = f"{display_name} is not UTF-8 text (byte {exc.start})"
        raise problem(ky.NOTEBOOK_NOT_UTF8, message) from None
    too_deep = json_too_deep_at(raw)
    if too_deep is not None:
        line, col = too_deep
        message = f"not a notebook: its JSON nests more than {MAX_JSON_DEPTH} levels deep"
        raise NotebookError.single(ky.NOT_A_NOTEBOOK.at(display_name, message, line=line, col=col))
    try:
        as_json = json.loads(text)
    except json.JSONDecodeError as exc:
        hint = ""
        if re.search(r"^(<<<<<<<|=======|>>>>>>>)", text, re.MULTILINE):
            hint = " (it holds an unresolved git merge conflict)"
        message = f"not a notebook: invalid JSON: {exc.msg}{hint}"
        raise NotebookError.single(
            ky.NOT_A_NOTEBOOK.at(display_name, message, line=exc.lineno, col=exc.colno)
        ) from None
    if not isinstance(as_json, dict) or as_json.get("nbformat") != 4:
        found = as_json.get("nbformat") if isinstance(as_json, dict) else None
        raise problem(
            ky.NOT_A_NOTEBOOK,
            f"{display_name} is not an nbformat 4 notebook (nbformat: {found!r}); save it again in Jupyter",
        )
    return as_json


def _cells(as_json: dict[str, Any], display_name: str, problem: Problem) -> tuple[Cell, ...]:
    # The parsed JSON is read directly: nbformat's own validation builds a JSON Schema checker in every
    # process (a tenth of a second, most of `validate`'s time) and checks far more than kale-yaml reads.
    raw_cells = as_json.get("cells", [])
    if not isinstance(raw_cells, list):
        raise problem(ky.NOT_A_NOTEBOOK, f"{display_name} is not a valid notebook: 'cells' is not a list")
    cells: list[Cell] = []
    for number, cell in enumerate(raw_cells, start=1):
        source = cell.get("source", "") if isinstance(cell, dict) else None
        if isinstance(source, list) and all(isinstance(part, str) for part in source):
            source = "".join(source)
        if not isinstance(source, str) or not isinstance(cell.get("cell_type", "code"), str):
            message = f"{display_name} is not a valid notebook: cell {number} is malformed"
            raise problem(ky.NOT_A_NOTEBOOK, message)
        cell_id = cell.get("id")
        cells.append(
            Cell(
                number=number,
                id=cell_id if isinstance(cell_id, str) and cell_id else None,
                cell_type=cell.get("cell_type", "code"),
                source=source,
            )
        )
    return tuple(cells)


def json_too_deep_at(raw: bytes, limit: int = MAX_JSON_DEPTH) -> tuple[int, int] | None:
    """Where (line, column) the notebook's JSON first nests deeper than `limit` levels, if it does.

    json.loads recurses once per level, and so would anything that walks the metadata after it. The depth is
    measured without parsing: with escaped backslashes and quotes taken out, every quote left opens or closes
    a string, and the brackets outside strings give the depth (exact for valid JSON, in C-speed passes).
    """
    skeleton = raw.replace(b"\\\\", b"").replace(b'\\"', b"").translate(None, _NOT_STRUCTURE)
    brackets = _BRACKETED_STRING.sub(b"", skeleton).replace(b'"', b"")
    if max(accumulate(map(_DEPTH_STEP.__getitem__, brackets)), default=0) <= limit:
        return None
    depth = 0
    for token in _JSON_TOKEN.finditer(raw):  # the slow, exact pass, only for a notebook that is rejected
        depth += _DEPTH_STEP.get(raw[token.start()], 0)
        if depth > limit:
            start = raw.rfind(b"\n", 0, token.start()) + 1
            return raw.count(b"\n", 0, start) + 1, len(raw[start : token.start()].decode("utf-8")) + 1
    return None  # not valid JSON: json.loads says where


def _mapping(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _language(node: dict[str, Any]) -> str:
    metadata = _mapping(node.get("metadata"))
    info = _mapping(metadata.get("language_info"))
    spec = _mapping(metadata.get("kernelspec"))
    language = info.get("name") or spec.get("language") or "python"
    return str(language)
