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
from typing import Literal

from kale_yaml import diagnostics as ky
from kale_yaml.analysis.magics import CellMagicError, rewrite, written_file
from kale_yaml.analysis.process_state import notebook_state
from kale_yaml.errors import Diagnostic, KaleYamlError, NotebookError
from kale_yaml.load.cells import Notebook
from kale_yaml.load.inputs import Sidecar, read_sidecar
from kale_yaml.load.notebook import load_notebook
from kale_yaml.load.paths import SIDECAR_NAME, display_path, find_sidecar
from kale_yaml.resolve.config import resolve
from kale_yaml.resolve.ownership import config_owners, selector_owners

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

    @property
    def state(self) -> list[tuple[int, str]]:
        """(cell, what) of the process-wide state code cells set: settings, seeds, `%%writefile` files."""
        sources: list[tuple[int, str]] = []
        files: list[tuple[int, str]] = []
        for cell in self.notebook.cells:
            if cell.cell_type != "code":
                continue
            written = written_file(cell)
            if written is not None:
                files.append((cell.number, f"file {written[0]}"))
            try:
                sources.append((cell.number, rewrite(cell)[0]))
            except CellMagicError:
                continue
        return sorted(notebook_state(sources) + files, key=lambda item: item[0])


def cells_view(path: Path | str | None = None) -> CellsView:
    """The table for `PATH` (a sidecar or a folder holding one) or `NOTEBOOK` (with the sidecar beside it
    that names it, if there is one). Raises `KaleYamlError` only when there is no notebook to show."""
    target = Path(path) if path is not None else Path.cwd()
    if target.suffix == ".ipynb":
        notebook = load_notebook(target, display_path(target))
        beside = target.parent / SIDECAR_NAME
        # lexists, not is_file: a sidecar that cannot be read (a FIFO, a link loop) is still shown as broken
        if os.path.lexists(beside):
            try:
                sidecar = read_sidecar(beside)
            except KaleYamlError as exc:  # a broken sidecar beside the notebook is still its sidecar
                return CellsView(notebook, None, cell_rows(notebook, None), tuple(exc.diagnostics))
            if sidecar.names(target):
                return _with_sidecar(sidecar, notebook)
        return CellsView(notebook, None, cell_rows(notebook, None), ())
    if target.is_dir() and not os.path.lexists(target / SIDECAR_NAME):
        notebooks = sorted(target.glob("*.ipynb"))
        if len(notebooks) == 1:
            return cells_view(notebooks[0])
    return _with_sidecar(read_sidecar(find_sidecar(target)), None)


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


def _with_sidecar(sidecar: Sidecar, notebook: Notebook | None) -> CellsView:
    problems = list(sidecar.problems)
    if notebook is None:
        if sidecar.notebook_name is None:
            raise KaleYamlError(
                problems or [sidecar.document.at(("notebook",), ky.NO_NOTEBOOK_KEY, "names no notebook")]
            )
        try:
            notebook = sidecar.notebook()
        except NotebookError as exc:
            raise KaleYamlError([*problems, *exc.diagnostics]) from None
    owners: Mapping[int, Sequence[str]]
    if problems:
        owners = selector_owners(sidecar.document, notebook)
    else:
        try:
            owners = config_owners(resolve(sidecar.document, notebook))
        except NotebookError as exc:
            problems.extend(exc.diagnostics)
            owners = selector_owners(sidecar.document, notebook)
    return CellsView(notebook, sidecar.path, cell_rows(notebook, owners), tuple(problems))
