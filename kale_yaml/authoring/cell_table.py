"""`kale-yaml cells`: every cell of a notebook with its number, id, type, owner and first line.

Owners come from the resolved sidecar when it resolves. When it does not (a selector names a missing heading,
two steps claim a cell, the schema rejects a key), the table still shows every owner the selectors that work
can tell, next to the errors: that is when a reviewer needs the table most. A notebook without a sidecar gets
the table without owners.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from kale_yaml.errors import Collector, Diagnostic, KaleYamlError, NotebookError, SchemaError
from kale_yaml.load import schema
from kale_yaml.load.cells import Notebook
from kale_yaml.load.document import Document, KeyPath, load_document
from kale_yaml.load.notebook import load_notebook, notebook_path
from kale_yaml.load.paths import SIDECAR_NAME, display_path, find_sidecar
from kale_yaml.resolve.config import resolve
from kale_yaml.resolve.model import Config
from kale_yaml.resolve.selectors import SelectorContext, first_cell, is_open_from, select

OwnerState = Literal["owned", "unowned", "conflict", "none"]  # none: markdown, raw, or a blank code cell


@dataclass(frozen=True)
class CellRow:
    number: int
    id: str | None
    cell_type: str  # code | markdown | raw
    owners: tuple[str, ...]  # step names, "prelude", "parameters" or "skip"
    state: OwnerState
    first_line: str

    @property
    def owner(self) -> str:
        if self.state == "unowned":
            return "unowned"
        return " + ".join(self.owners) if self.owners else "-"


@dataclass(frozen=True)
class CellsView:
    notebook: Notebook
    sidecar: Path | None  # None: the notebook alone, no owners
    rows: tuple[CellRow, ...]
    diagnostics: tuple[Diagnostic, ...]  # what is wrong with the sidecar; owners are shown as far as known

    @property
    def with_owners(self) -> bool:
        return self.sidecar is not None


def cells_view(path: Path | str | None = None) -> CellsView:
    """The table for `PATH` (a sidecar or a folder holding one) or `NOTEBOOK` (with the sidecar beside it
    that names it, if there is one). Raises `KaleYamlError` only when there is no notebook to show."""
    target = Path(path) if path is not None else Path.cwd()
    if target.suffix == ".ipynb":
        notebook = load_notebook(target, display_path(target))
        beside = target.parent / SIDECAR_NAME
        # lexists, not is_file: a sidecar that cannot be read (a FIFO, a link loop) is still shown as broken
        if os.path.lexists(beside) and _names_notebook(beside, target):
            return _with_sidecar(beside, notebook)
        return CellsView(notebook, None, cell_rows(notebook, None), ())
    if target.is_dir() and not os.path.lexists(target / SIDECAR_NAME):
        notebooks = sorted(target.glob("*.ipynb"))
        if len(notebooks) == 1:
            return cells_view(notebooks[0])
    return _with_sidecar(find_sidecar(target), None)


def cell_rows(notebook: Notebook, owners: Mapping[int, Sequence[str]] | None) -> tuple[CellRow, ...]:
    """One row per cell; `owners` maps cell numbers to who claims them (None: no sidecar)."""
    rows: list[CellRow] = []
    for cell in notebook.cells:
        claims = tuple(owners.get(cell.number, ())) if owners is not None else ()
        state: OwnerState = "none"
        if owners is not None and cell.cell_type == "code":
            if len(claims) > 1:
                state = "conflict"
            elif claims:
                state = "owned"
            elif not cell.is_blank:
                state = "unowned"
        rows.append(CellRow(cell.number, cell.id, cell.cell_type, claims, state, cell.first_line))
    return tuple(rows)


def config_owners(config: Config) -> dict[int, list[str]]:
    """Owners as a resolved sidecar has them: exactly one per code cell."""
    owners: dict[int, list[str]] = {}
    for n in config.parameter_cells:
        owners.setdefault(n, []).append("parameters")
    for n in config.prelude:
        owners.setdefault(n, []).append("prelude")
    for n in config.skipped:
        owners.setdefault(n, []).append("skip")
    for step in config.steps:
        for n in step.cells:
            owners.setdefault(n, []).append(step.name)
    return owners


def selector_owners(document: Document, notebook: Notebook) -> dict[int, list[str]]:
    """Owners as far as the selectors that work tell, for a sidecar that does not resolve (or does not even
    fit the schema). Follows resolve's rules: code cells only, skip wins, an open `from` ends where the next
    step starts."""
    data = document.data if isinstance(document.data, dict) else {}
    ctx = SelectorContext(document, notebook, Collector())

    def code(selector: Any, path: KeyPath, open_end: int | None = None) -> list[int]:
        return [n for n in select(selector, path, ctx, open_end) if notebook.cell(n).cell_type == "code"]

    skipped = set(code(data["skip"], ("skip",))) if "skip" in data else set()
    owners: dict[int, list[str]] = {n: ["skip"] for n in sorted(skipped)}

    def claim(numbers: list[int], owner: str) -> None:
        for n in numbers:
            if n not in skipped and owner not in owners.setdefault(n, []):
                owners[n].append(owner)

    parameters = data.get("parameters")
    if isinstance(parameters, dict) and "cells" in parameters:
        claim(code(parameters["cells"], ("parameters", "cells")), "parameters")
    if "prelude" in data:
        claim(code(data["prelude"], ("prelude",)), "prelude")
    raw_steps = data.get("steps")
    steps = [s for s in raw_steps if isinstance(s, dict)] if isinstance(raw_steps, list) else []
    starts = [
        first_cell(step["cells"], ("steps", i, "cells"), ctx) if "cells" in step else None
        for i, step in enumerate(steps)
    ]
    for index, step in enumerate(steps):
        if "cells" not in step:
            continue
        open_end = None
        if is_open_from(step["cells"]):
            later = [s for s in starts[index + 1 :] if s is not None]
            open_end = later[0] - 1 if later else None
        name = str(step.get("name", f"steps[{index}]"))
        claim(code(step["cells"], ("steps", index, "cells"), open_end), name)
    return owners


def _with_sidecar(sidecar: Path, notebook: Notebook | None) -> CellsView:
    try:
        document = load_document(sidecar, display_path(sidecar))
    except KaleYamlError as exc:
        if notebook is None:
            raise
        return CellsView(notebook, None, cell_rows(notebook, None), tuple(exc.diagnostics))
    problems: list[Diagnostic] = []
    try:
        schema.check(document)
    except SchemaError as exc:
        problems.extend(exc.diagnostics)
    if notebook is None:
        name = document.data.get("notebook") if isinstance(document.data, dict) else None
        if not isinstance(name, str) or not name:
            raise KaleYamlError(problems or [document.diagnostic(("notebook",), "names no notebook")])
        try:
            path = notebook_path(document)
            notebook = load_notebook(
                path, display_path(path), lambda message: document.diagnostic(("notebook",), message)
            )
        except NotebookError as exc:
            raise KaleYamlError([*problems, *exc.diagnostics]) from None
    owners: Mapping[int, Sequence[str]]
    if problems:
        owners = selector_owners(document, notebook)
    else:
        try:
            owners = config_owners(resolve(document, notebook))
        except NotebookError as exc:
            problems.extend(exc.diagnostics)
            owners = selector_owners(document, notebook)
    return CellsView(notebook, sidecar, cell_rows(notebook, owners), tuple(problems))


def _names_notebook(sidecar: Path, notebook: Path) -> bool:
    """Whether the sidecar's `notebook:` key names this notebook (read leniently: any problem means no)."""
    try:
        document = load_document(sidecar, display_path(sidecar))
    except KaleYamlError:
        return True  # a broken sidecar beside the notebook is still its sidecar: show its errors
    name = document.data.get("notebook") if isinstance(document.data, dict) else None
    if not isinstance(name, str) or not name:
        return False
    try:
        named = notebook_path(document)
    except NotebookError:
        return False
    return os.path.realpath(named) == os.path.realpath(notebook)
