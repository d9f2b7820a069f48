"""The notebook as the load stage reads it: its cells, numbered from 1 over all cells."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from kale_yaml.load.nbmeta import NotebookMetadata


@dataclass(frozen=True)
class Cell:
    """One notebook cell. `number` counts from 1 over all cells, markdown included."""

    number: int
    id: str | None
    cell_type: str  # "code" | "markdown" | "raw"
    source: str

    @property
    def first_line(self) -> str:
        for line in self.source.splitlines():
            if line.strip():
                return line.strip()
        return ""

    @property
    def is_blank(self) -> bool:
        """Runs nothing: only whitespace and comments (`# Authors: ...`, `# License: ...`)."""
        return all(not line.strip() or line.lstrip().startswith("#") for line in self.source.splitlines())

    def describe(self) -> str:
        """`cell 7 (id a1b2c3, "df = load()")` as used in error messages."""
        first = self.first_line
        if len(first) > 50:
            first = first[:47] + "..."
        details = [f"id {self.id}"] if self.id else []
        if first:
            details.append(f'"{first}"')
        return f"cell {self.number} ({', '.join(details)})" if details else f"cell {self.number}"


@dataclass(frozen=True)
class Notebook:
    path: Path
    display_name: str
    cells: tuple[Cell, ...]
    language: str
    # Tags and notebook metadata (Kale's, papermill's), read with the cells; not part of equality.
    metadata: NotebookMetadata = field(default=NotebookMetadata.EMPTY, compare=False)

    def cell(self, number: int) -> Cell:
        return self.cells[number - 1]


def cells_phrase(cells: Iterable[int]) -> str:
    """`cell 3` or `cells 3-5, 9`, as messages and docstrings name a step's cells."""
    numbers = list(cells)
    spans: list[str] = []
    start = prev = numbers[0]
    for n in [*numbers[1:], None]:
        if n is not None and n == prev + 1:
            prev = n
            continue
        spans.append(str(start) if start == prev else f"{start}-{prev}")
        if n is not None:
            start = prev = n
    return ("cell " if len(numbers) == 1 else "cells ") + ", ".join(spans)
