"""Resolve's checks of the whole sidecar: names (of steps, `after:`, metrics, volumes), each code cell's one
owner, and steps in the notebook's order."""

from __future__ import annotations

from collections.abc import Sequence

from kale_yaml import diagnostics as ky
from kale_yaml.errors import Collector
from kale_yaml.load.cells import Notebook, cells_phrase
from kale_yaml.load.document import Document
from kale_yaml.resolve.model import Metrics, SnapshotConfig, StepConfig, VolumeConfig
from kale_yaml.resolve.ownership import claims
from kale_yaml.suggest import did_you_mean

# Analysis names the providers of a value "prelude" and "parameter"; a step cannot share those names.
RESERVED_STEP_NAMES = frozenset({"prelude", "parameter"})


def check_names(
    steps: Sequence[StepConfig],
    metrics: Metrics | None,
    volumes: Sequence[VolumeConfig],
    snapshots: Sequence[SnapshotConfig],
    errors: Collector,
) -> None:
    names = [s.name for s in steps]
    seen: dict[str, int] = {}
    for step in steps:
        at_name = step.where.child("name")
        if step.name in RESERVED_STEP_NAMES:
            errors.add(
                at_name.at(ky.RESERVED_STEP_NAME, f"step name '{step.name}' is reserved; choose another name")
            )
        if step.name in seen:
            message = f"step name '{step.name}' is already used by steps[{seen[step.name]}]"
            errors.add(at_name.at(ky.DUPLICATE_STEP_NAME, message))
        seen.setdefault(step.name, step.index)
    for step in steps:
        for i, other in enumerate(step.after):
            where = step.where.child("after", i)
            if other == step.name:
                errors.add(where.at(ky.AFTER_ITSELF, "a step cannot run after itself"))
            elif other not in seen:
                errors.add(where.at(ky.UNKNOWN_STEP, f"no step named '{other}'{did_you_mean(other, names)}"))
    if metrics and metrics.step not in seen:
        message = f"no step named '{metrics.step}'{did_you_mean(metrics.step, names)}"
        errors.add(metrics.where.child("step").at(ky.UNKNOWN_STEP, message))
    volume_names = [v.name for v in volumes]
    for i, volume in enumerate(volumes):
        if volume.name in volume_names[:i]:
            message = f"volume name '{volume.name}' is declared twice"
            errors.add(volume.where.child("name").at(ky.DUPLICATE_VOLUME_NAME, message))
    for step in steps:
        for i, name in enumerate(step.volumes or ()):
            if name not in volume_names:
                message = f"no volume named '{name}'{did_you_mean(name, volume_names)}"
                errors.add(step.where.child("volumes", i).at(ky.UNKNOWN_VOLUME, message))
    for snapshot in snapshots:
        if snapshot.volume not in volume_names:
            message = f"no volume named '{snapshot.volume}'{did_you_mean(snapshot.volume, volume_names)}"
            errors.add(snapshot.where.child("volume").at(ky.UNKNOWN_VOLUME, message))


def check_ownership(
    document: Document,
    notebook: Notebook,
    parameter_cells: Sequence[int],
    prelude: Sequence[int],
    skipped: Sequence[int],
    steps: Sequence[StepConfig],
    errors: Collector,
) -> None:
    selectors_failed = bool(errors.errors)
    step_cells = ((s.name, s.cells, ("steps", s.index, "cells")) for s in steps)
    found = claims(parameter_cells, prelude, skipped, step_cells)
    skip_set = set(skipped)
    for cell in notebook.cells:
        if cell.cell_type != "code" or cell.number in skip_set:
            continue
        cell_claims = found.get(cell.number, [])
        if len(cell_claims) > 1:
            first, second = cell_claims[0], cell_claims[1]
            both = f"{first.label} and {second.label}"
            message = f"{cell.describe()} belongs to both {both}; a code cell has one owner"
            errors.add(document.at(second.path, ky.TWO_OWNERS, message))
        elif not cell_claims and not cell.is_blank and not selectors_failed:
            # When a selector failed, the cells it meant to select would be reported here a second time.
            errors.add(
                ky.UNOWNED_CELL.at(
                    notebook.display_name,
                    f"this code cell{cell.describe().removeprefix(f'cell {cell.number}')} belongs to"
                    " no step; add it to a step's cells, the prelude or skip",
                    cell=cell.number,
                )
            )


def check_notebook_order(steps: Sequence[StepConfig], errors: Collector) -> None:
    """A step runs all its cells before the next step starts, so the steps' cells must follow the notebook's
    order: a step whose cells come before, or between, an earlier-listed step's cells would see other values
    than the notebook does. Cells that two steps claim are reported as overlaps and left out here."""
    owners: dict[int, int] = {}
    for step in steps:
        for number in step.cells:
            owners[number] = owners.get(number, 0) + 1
    earlier: list[tuple[StepConfig, tuple[int, ...]]] = []
    for step in steps:
        cells = tuple(n for n in step.cells if owners[n] == 1)
        if not cells:
            continue
        for other, other_cells in earlier:
            if cells[0] > other_cells[-1]:
                continue
            message = _order_message(step, cells, other, other_cells)
            errors.add(step.where.child("cells").at(ky.NOTEBOOK_ORDER, message))
            break
        earlier.append((step, cells))


def _order_message(
    step: StepConfig, cells: tuple[int, ...], other: StepConfig, other_cells: tuple[int, ...]
) -> str:
    inside = next((n for n in cells if other_cells[0] < n < other_cells[-1]), None)
    if cells[-1] < other_cells[0]:
        return (
            f"step '{step.name}' ({cells_phrase(cells)}) is listed after step '{other.name}'"
            f" ({cells_phrase(other_cells)}) but comes before it in the notebook; list steps in"
            " notebook order"
        )
    if inside is not None:
        return (
            f"cell {inside} of step '{step.name}' lies between cells {other_cells[0]} and"
            f" {other_cells[-1]} of step '{other.name}'; the pipeline runs a step's cells together,"
            f" so the notebook's order would be lost: split '{other.name}' or move the cell"
        )
    return (
        f"step '{other.name}' ({cells_phrase(other_cells)}) lies between cells {cells[0]} and"
        f" {cells[-1]} of step '{step.name}'; the pipeline runs a step's cells together,"
        f" so the notebook's order would be lost: split '{step.name}' or move the cells"
    )


def span(numbers: Sequence[int]) -> str:
    return f"{numbers[0]}-{numbers[-1]}" if len(numbers) > 1 else str(numbers[0])
