"""Who claims which cell: the selectors of `parameters.cells`, `prelude`, `skip` and every step, applied to
the notebook, and the owners that follow from them.

The rules: only code cells are owned; `skip` wins over every other claim; an open `{from: ...}` ends where
the next step starts. Resolve checks that each code cell then has exactly one owner; `kale-yaml cells` shows
the owners as far as the selectors that work can tell, also for a sidecar that does not resolve (or does
not even fit the schema), which is why reading the sidecar here is lenient about its shape.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from kale_yaml.errors import Collector
from kale_yaml.load.cells import Notebook
from kale_yaml.load.document import Document, KeyPath
from kale_yaml.resolve.model import Config
from kale_yaml.resolve.selectors import SelectorContext, first_cell, is_open_from, select


@dataclass(frozen=True)
class StepCells:
    index: int  # position in `steps:`
    name: str
    selected: tuple[int, ...]  # every cell its selector names, of any type

    @property
    def path(self) -> KeyPath:
        return ("steps", self.index, "cells")


@dataclass(frozen=True)
class Selection:
    """The cells each selector names. Parameter and prelude cells are code cells that are not skipped."""

    notebook: Notebook
    parameter_cells: tuple[int, ...]
    prelude: tuple[int, ...]
    skipped: tuple[int, ...]  # code cells, in order
    steps: tuple[StepCells, ...]

    @cached_property
    def skip_set(self) -> frozenset[int]:
        return frozenset(self.skipped)

    def code(self, numbers: Iterable[int]) -> tuple[int, ...]:
        return tuple(n for n in numbers if self.notebook.cell(n).cell_type == "code")

    def owned(self, step: StepCells) -> tuple[int, ...]:
        """The cells a step runs: the code cells it selects that are not skipped."""
        return tuple(n for n in self.code(step.selected) if n not in self.skip_set)


@dataclass(frozen=True)
class Claim:
    owner: str  # "parameters", "prelude", "skip" or a step's name, as `kale-yaml cells` shows it
    label: str  # "parameters", "the prelude", "step 'NAME'", as messages say it
    path: KeyPath  # the selector that claims the cell


def select_cells(document: Document, notebook: Notebook, errors: Collector) -> Selection:
    """Apply every selector of the sidecar; problems go to `errors`. Parts of the sidecar that do not have
    the schema's shape are passed over."""
    data: dict[str, Any] = document.data if isinstance(document.data, dict) else {}
    ctx = SelectorContext(document, notebook, errors)

    def code(selector: Any, path: KeyPath, open_end: int | None = None) -> tuple[int, ...]:
        return tuple(n for n in select(selector, path, ctx, open_end) if notebook.cell(n).cell_type == "code")

    skipped = code(data["skip"], ("skip",)) if "skip" in data else ()
    skip_set = set(skipped)
    parameters = data.get("parameters")
    parameter_cells: tuple[int, ...] = ()
    if isinstance(parameters, dict) and "cells" in parameters:
        parameter_cells = code(parameters["cells"], ("parameters", "cells"))
    prelude = code(data["prelude"], ("prelude",)) if "prelude" in data else ()
    raw_steps = data.get("steps")
    steps = raw_steps if isinstance(raw_steps, list) else []
    selectors = {i: s["cells"] for i, s in enumerate(steps) if isinstance(s, dict) and "cells" in s}
    starts = {i: first_cell(selector, ("steps", i, "cells"), ctx) for i, selector in selectors.items()}
    selected: list[StepCells] = []
    for index, selector in selectors.items():
        open_end = None
        if is_open_from(selector):
            later = [s for i, s in starts.items() if i > index and s is not None]
            open_end = later[0] - 1 if later else None
        name = str(steps[index].get("name", f"steps[{index}]"))
        cells = select(selector, ("steps", index, "cells"), ctx, open_end)
        selected.append(StepCells(index, name, cells))
    return Selection(
        notebook=notebook,
        parameter_cells=tuple(n for n in parameter_cells if n not in skip_set),
        prelude=tuple(n for n in prelude if n not in skip_set),
        skipped=tuple(sorted(skip_set)),
        steps=tuple(selected),
    )


def claims(
    parameter_cells: Sequence[int],
    prelude: Sequence[int],
    skipped: Sequence[int],
    steps: Iterable[tuple[str, Sequence[int], KeyPath]],
) -> dict[int, list[Claim]]:
    """Every claim on each cell: skip, then parameters, the prelude and the steps in their order."""
    found: dict[int, list[Claim]] = {}
    for numbers, claim in (
        (skipped, Claim("skip", "skip", ("skip",))),
        (parameter_cells, Claim("parameters", "parameters", ("parameters", "cells"))),
        (prelude, Claim("prelude", "the prelude", ("prelude",))),
    ):
        for n in numbers:
            found.setdefault(n, []).append(claim)
    for name, cells, path in steps:
        for n in cells:
            found.setdefault(n, []).append(Claim(name, f"step '{name}'", path))
    return found


def selector_owners(document: Document, notebook: Notebook) -> dict[int, list[str]]:
    """Owners as far as the selectors that work tell (for a sidecar that may not resolve)."""
    selection = select_cells(document, notebook, Collector())
    steps = ((step.name, selection.owned(step), step.path) for step in selection.steps)
    return _owners(claims(selection.parameter_cells, selection.prelude, selection.skipped, steps))


def config_owners(config: Config) -> dict[int, list[str]]:
    """Owners as a resolved sidecar has them: exactly one per code cell."""
    steps = ((step.name, step.cells, ("steps", step.index, "cells")) for step in config.steps)
    return _owners(claims(config.parameter_cells, config.prelude, config.skipped, steps))


def _owners(found: dict[int, list[Claim]]) -> dict[int, list[str]]:
    # A name two steps share is shown once (resolve reports the name).
    return {n: list(dict.fromkeys(claim.owner for claim in cell_claims)) for n, cell_claims in found.items()}
