"""From a schema-checked sidecar and its notebook to a `Config`: every code cell owned exactly once, every
setting typed with its defaults merged and its place in the sidecar captured."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from kale_yaml import diagnostics as ky
from kale_yaml.errors import Collector, NotebookError
from kale_yaml.load.cells import Notebook
from kale_yaml.load.document import Document
from kale_yaml.resolve.checks import (
    RESERVED_STEP_NAMES,
    check_names,
    check_notebook_order,
    check_ownership,
    span,
)
from kale_yaml.resolve.cluster import DEFAULT_KEYS, STEP_KEYS, read_cluster
from kale_yaml.resolve.model import Config, Metrics, StepConfig
from kale_yaml.resolve.needs import read_packages
from kale_yaml.resolve.ownership import Selection, StepCells, select_cells
from kale_yaml.resolve.parameter_cells import RESERVED_PARAMETER_NAMES, read_parameters
from kale_yaml.resolve.volumes import read_snapshots, read_volumes
from kale_yaml.resolve.where import Locator, Where

DEFAULT_IMAGE = "python:3.11-slim"

__all__ = ["DEFAULT_IMAGE", "RESERVED_PARAMETER_NAMES", "RESERVED_STEP_NAMES", "resolve"]


def resolve(document: Document, notebook: Notebook) -> Config:
    """Raises `NotebookError` with every selector, parameter, name and ownership problem at once."""
    data: dict[str, Any] = document.data
    errors = Collector()
    locator = Locator(document)
    selection = select_cells(document, notebook, errors)
    values = (data.get("parameters") or {}).get("values") or {}
    parameters = read_parameters(document, notebook, selection.parameter_cells, values, errors)
    pipeline: dict[str, Any] = data["pipeline"]
    image = pipeline.get("image") or DEFAULT_IMAGE
    defaults = _Defaults(pipeline, locator.at(("pipeline",)), image)
    steps = [
        _step(raw, cells, selection, locator.at(("steps", cells.index)), defaults, errors)
        for raw, cells in zip(data["steps"], selection.steps, strict=True)
    ]
    metrics = None
    if "metrics" in data:
        raw_metrics = data["metrics"]
        metrics = Metrics(raw_metrics["step"], tuple(raw_metrics["names"]), locator.at(("metrics",)))
    volumes = read_volumes(data.get("volumes") or (), locator)
    snapshots = read_snapshots(data.get("snapshots") or (), locator)
    check_names(steps, metrics, volumes, snapshots, errors)
    skipped = selection.skipped
    check_ownership(document, notebook, selection.parameter_cells, selection.prelude, skipped, steps, errors)
    check_notebook_order(steps, errors)
    errors.raise_if_any(NotebookError)
    return Config(
        where=locator.at((), depth=1),
        notebook=notebook,
        notebook_name=str(data["notebook"]),
        name=pipeline["name"],
        description=pipeline.get("description"),
        experiment=pipeline.get("experiment"),
        image=image,
        parameters=parameters,
        parameter_cells=selection.parameter_cells,
        prelude=selection.prelude,
        skipped=skipped,
        steps=tuple(steps),
        metrics=metrics,
        volumes=volumes,
        snapshots=snapshots,
        cluster_defaults=tuple(key for key in DEFAULT_KEYS if key in pipeline),
    )


@dataclass(frozen=True)
class _Defaults:
    """What `pipeline:` sets for every step."""

    pipeline: Mapping[str, Any]
    where: Where
    image: str


def _step(
    raw: Mapping[str, Any],
    cells: StepCells,
    selection: Selection,
    where: Where,
    defaults: _Defaults,
    errors: Collector,
) -> StepConfig:
    pipeline = defaults.pipeline
    selected, code = cells.selected, selection.code(cells.selected)
    at_cells = where.child("cells")
    if selected and not code:
        what = f"cell {selected[0]}" if len(selected) == 1 else f"cells {span(selected)}"
        errors.add(
            at_cells.at(
                ky.NO_CODE_CELLS,
                f"selects only markdown or raw cells ({what}); a step needs at least one code cell",
            )
        )
    elif code and all(n in selection.skip_set for n in code):
        listed = ", ".join(str(n) for n in code)
        errors.add(
            at_cells.at(
                ky.ALL_SKIPPED,
                f"every code cell it selects ({listed}) is under 'skip'; the step would run nothing",
            )
        )
    packages, needs = read_packages(raw, where, pipeline, defaults.where)
    return StepConfig(
        name=raw["name"],
        index=cells.index,
        where=where,
        cells=selection.owned(cells),
        after=tuple(raw.get("after") or ()),
        inputs=tuple(raw["inputs"]) if "inputs" in raw else None,
        outputs=tuple(raw["outputs"]) if "outputs" in raw else None,
        image=raw.get("image") or defaults.image,
        # A step's packages add to the pipeline's: a step that needs xgboost still needs pandas.
        packages=packages,
        cache=bool(raw.get("cache", pipeline.get("cache", True))),
        report=bool(raw.get("report", pipeline.get("report", True))),
        cluster=read_cluster(raw, where, pipeline, defaults.where),
        volumes=tuple(raw["volumes"]) if "volumes" in raw else None,
        cluster_keys=tuple(key for key in STEP_KEYS if key in raw),
        needs=needs,
    )
