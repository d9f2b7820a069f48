"""The resolve stage's value: the sidecar resolved against the notebook, every setting in place."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from kale_yaml.load.cells import Notebook
from kale_yaml.load.document import Document

ParameterValue = bool | int | float | str | list[Any] | dict[str, Any]


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
