"""Reading a notebook into numbered cells. The notebook file is only ever opened for reading."""

from __future__ import annotations

import json
import re
import warnings
from dataclasses import dataclass
from pathlib import Path

import nbformat

from kale_yaml.errors import Diagnostic, NotebookError
from kale_yaml.model import Cell, Notebook

_ATX_HEADING = re.compile(r"^ {0,3}(#{1,6})[ \t]+(.*?)[ \t]*#*[ \t]*$")


@dataclass(frozen=True)
class Heading:
    level: int
    text: str


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


def load_notebook(path: Path, display_name: str) -> Notebook:
    """Read an nbformat 4 notebook (with or without cell ids). Raises `NotebookError`."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise NotebookError.single(Diagnostic(file=display_name, message="notebook not found")) from None
    except OSError as exc:
        raise NotebookError.single(
            Diagnostic(file=display_name, message=f"cannot read the notebook: {exc.strerror}")
        ) from None
    try:
        text = raw.decode("utf-8")
        as_json = json.loads(text)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise NotebookError.single(
            Diagnostic(file=display_name, message=f"not a notebook: not valid JSON ({exc})")
        ) from None
    if not isinstance(as_json, dict) or as_json.get("nbformat") != 4:
        found = as_json.get("nbformat") if isinstance(as_json, dict) else None
        raise NotebookError.single(
            Diagnostic(
                file=display_name,
                message=f"not an nbformat 4 notebook (nbformat: {found!r}); open and save it in Jupyter first",
            )
        )
    with warnings.catch_warnings():
        # nbformat warns about missing cell ids in 4.4 files; those are fine for us.
        warnings.simplefilter("ignore")
        try:
            node = nbformat.reads(text, as_version=nbformat.NO_CONVERT)
        except Exception as exc:  # nbformat raises assorted types for malformed files
            raise NotebookError.single(
                Diagnostic(file=display_name, message=f"not a valid notebook: {exc}")
            ) from None
    cells: list[Cell] = []
    for number, cell in enumerate(node.get("cells", []), start=1):
        source = cell.get("source", "")
        if isinstance(source, list):
            source = "".join(source)
        cells.append(
            Cell(
                number=number,
                id=cell.get("id") or None,
                cell_type=str(cell.get("cell_type", "code")),
                source=str(source),
            )
        )
    language = _language(node)
    if language != "python":
        raise NotebookError.single(
            Diagnostic(
                file=display_name,
                message=f"the notebook's kernel language is {language!r}; kale-yaml turns Python notebooks"
                " into pipelines",
            )
        )
    return Notebook(path=path, display_name=display_name, cells=tuple(cells), language=language)


def _language(node: nbformat.NotebookNode) -> str:
    metadata = node.get("metadata", {}) or {}
    info = metadata.get("language_info", {}) or {}
    spec = metadata.get("kernelspec", {}) or {}
    language = info.get("name") or spec.get("language") or "python"
    return str(language).lower()
