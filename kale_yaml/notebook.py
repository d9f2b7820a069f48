"""Reading a notebook into numbered cells. The notebook file is only ever opened for reading."""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kale_yaml.errors import Diagnostic, NotebookError
from kale_yaml.model import Cell, Notebook
from kale_yaml.nbmeta import metadata_from_json
from kale_yaml.suggest import did_you_mean

_ATX_HEADING = re.compile(r"^ {0,3}(#{1,6})[ \t]+(.*?)[ \t]*#*[ \t]*$")


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


def load_notebook(
    path: Path, display_name: str, locate: Callable[[str], Diagnostic] | None = None
) -> Notebook:
    """Read an nbformat 4 notebook (with or without cell ids). Raises `NotebookError`.

    `locate` turns a message about the notebook as a whole into a diagnostic; a sidecar passes one that
    points at its `notebook:` key. Without it, the message is about the notebook file itself.
    """

    def problem(message: str) -> NotebookError:
        if locate is not None:
            return NotebookError.single(locate(message))
        return NotebookError.single(Diagnostic(file=display_name, line=1, col=1, message=message))

    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        siblings = [p.name for p in path.parent.glob("*.ipynb")] if path.parent.is_dir() else []
        raise problem(f"no such notebook: '{path.name}'{did_you_mean(path.name, siblings)}") from None
    except OSError as exc:
        raise problem(f"cannot read the notebook {display_name}: {exc.strerror}") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise problem(f"{display_name} is not UTF-8 text (byte {exc.start})") from None
    try:
        as_json = json.loads(text)
    except json.JSONDecodeError as exc:
        hint = ""
        if re.search(r"^(<<<<<<<|=======|>>>>>>>)", text, re.MULTILINE):
            hint = " (it holds an unresolved git merge conflict)"
        raise NotebookError.single(
            Diagnostic(
                file=display_name,
                line=exc.lineno,
                col=exc.colno,
                message=f"not a notebook: invalid JSON: {exc.msg}{hint}",
            )
        ) from None
    if not isinstance(as_json, dict) or as_json.get("nbformat") != 4:
        found = as_json.get("nbformat") if isinstance(as_json, dict) else None
        raise problem(
            f"{display_name} is not an nbformat 4 notebook (nbformat: {found!r}); save it again in Jupyter"
        )
    # The parsed JSON is read directly: nbformat's own validation builds a JSON Schema checker in every
    # process (a tenth of a second, most of `validate`'s time) and checks far more than kale-yaml reads.
    raw_cells = as_json.get("cells", [])
    if not isinstance(raw_cells, list):
        raise problem(f"{display_name} is not a valid notebook: 'cells' is not a list")
    cells: list[Cell] = []
    for number, cell in enumerate(raw_cells, start=1):
        source = cell.get("source", "") if isinstance(cell, dict) else None
        if isinstance(source, list) and all(isinstance(part, str) for part in source):
            source = "".join(source)
        if not isinstance(source, str) or not isinstance(cell.get("cell_type", "code"), str):
            raise problem(f"{display_name} is not a valid notebook: cell {number} is malformed")
        cell_id = cell.get("id")
        cells.append(
            Cell(
                number=number,
                id=cell_id if isinstance(cell_id, str) and cell_id else None,
                cell_type=cell.get("cell_type", "code"),
                source=source,
            )
        )
    node = as_json
    language = _language(node)
    if language.lower() != "python":
        raise problem(
            f"{display_name} is written in {language} (its kernel's language); kale-yaml turns Python"
            " notebooks into pipelines"
        )
    return Notebook(
        path=path,
        display_name=display_name,
        cells=tuple(cells),
        language=language.lower(),
        metadata=metadata_from_json(as_json),
    )


def _mapping(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _language(node: dict[str, Any]) -> str:
    metadata = _mapping(node.get("metadata"))
    info = _mapping(metadata.get("language_info"))
    spec = _mapping(metadata.get("kernelspec"))
    language = info.get("name") or spec.get("language") or "python"
    return str(language)
