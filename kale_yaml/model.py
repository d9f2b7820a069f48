"""Values that flow between the stages: the notebook's cells and the resolved configuration."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kale_yaml.document import Document
from kale_yaml.nbmeta import NotebookMetadata

ParameterValue = bool | int | float | str | list[Any] | dict[str, Any]


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
        return not self.source.strip()

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


@dataclass(frozen=True)
class Parameter:
    name: str
    default: ParameterValue
    type_name: str  # "bool" | "int" | "float" | "str" | "list" | "dict"
    cell: int | None  # the notebook cell it came from; None when only `values:` declares it


@dataclass(frozen=True)
class StepConfig:
    """A step as the sidecar describes it, with its cells resolved to numbers."""

    name: str
    index: int  # position in `steps:`, for locating messages
    cells: tuple[int, ...]  # code cells this step runs, in notebook order (skipped cells removed)
    after: tuple[str, ...] = ()
    inputs: tuple[str, ...] | None = None  # explicit `inputs:` (added to what analysis finds)
    outputs: tuple[str, ...] | None = None  # explicit `outputs:`
    image: str = "python:3.11-slim"
    packages: tuple[str, ...] = ()
    cache: bool = True
    settings: dict[str, Any] = field(default_factory=dict)  # cluster-only keys, as written


@dataclass(frozen=True)
class Metrics:
    step: str
    names: tuple[str, ...]


@dataclass(frozen=True)
class Config:
    """The sidecar resolved against the notebook: who owns which cell, and every setting."""

    document: Document
    notebook: Notebook
    name: str
    description: str | None
    experiment: str | None
    parameters: tuple[Parameter, ...]
    parameter_cells: tuple[int, ...]
    prelude: tuple[int, ...]
    skipped: tuple[int, ...]
    steps: tuple[StepConfig, ...]
    metrics: Metrics | None
    volumes: tuple[dict[str, Any], ...] = ()
    snapshots: tuple[dict[str, Any], ...] = ()

    def step(self, name: str) -> StepConfig:
        for s in self.steps:
            if s.name == name:
                return s
        raise KeyError(name)
