"""After `kale-yaml run`: the executed notebook and `report.html` in the run's folder.

The run comes in as the facts the pages need (a `RunResult` of the run stage has them all), so this stage
does not depend on how the run was made.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from markupsafe import Markup

from kale_yaml.errors import Diagnostic
from kale_yaml.load.cells import cells_phrase
from kale_yaml.plan.project import Project
from kale_yaml.report.dag_svg import dag_svg
from kale_yaml.report.executed import executed_notebook, write_executed_notebook
from kale_yaml.report.model import CellView, cell_views, dag_parts, step_colours
from kale_yaml.report.outputs import outputs_html
from kale_yaml.report.pages import render_page
from kale_yaml.report.records import StepRecord, cell_runs, read_records
from kale_yaml.resolve.ownership import config_owners
from kale_yaml.resolve.parameters import parse_params

PAGE_NAME = "report.html"


class StepFacts(Protocol):
    @property
    def state(self) -> str: ...
    @property
    def seconds(self) -> float | None: ...


class RunFacts(Protocol):
    @property
    def run_dir(self) -> Path: ...
    @property
    def steps(self) -> Mapping[str, StepFacts]: ...
    @property
    def metrics(self) -> Mapping[str, float]: ...
    @property
    def failure(self) -> Diagnostic | None: ...
    @property
    def reports(self) -> Mapping[str, Path]: ...


@dataclass(frozen=True)
class RunReports:
    notebook: Path  # .kale/runs/RUN/NOTEBOOK.ipynb
    page: Path  # .kale/runs/RUN/report.html


@dataclass(frozen=True)
class StepRow:
    name: str
    colour: str
    state: str
    time: str
    cells: str
    has_report: bool


def write_run_reports(project: Project, run: RunFacts, params: Mapping[str, str]) -> RunReports:
    """Write both files into the run's folder; `params` are the run's `--param` values as given."""
    config = project.config
    owners = config_owners(config)
    owner_of = {number: names[0] for number, names in owners.items()}
    records = read_records(run.reports)
    runs = cell_runs(records.values(), owner_of)
    notebook_path = run.run_dir / config.notebook.path.name
    write_executed_notebook(notebook_path, executed_notebook(config.notebook, owner_of, runs))
    page = run.run_dir / PAGE_NAME
    page.write_text(run_page(project, run, params, records), encoding="utf-8")
    return RunReports(notebook_path, page)


def run_page(
    project: Project, run: RunFacts, params: Mapping[str, str], records: Mapping[str, StepRecord]
) -> str:
    config, pipeline = project.config, project.pipeline
    owners = config_owners(config)
    colours = step_colours(config.notebook, owners, [s.name for s in config.steps])
    owner_of = {number: names[0] for number, names in owners.items()}
    runs = cell_runs(records.values(), owner_of)
    rows = [_step_row(s.name, s.config.cells, run, colours, s.name in records) for s in pipeline.steps]
    cells = cell_views(config.notebook, owners, colours)
    for view in cells:
        cell_run = runs.get(view.cell.number)
        if cell_run is not None:
            view.outputs = outputs_html(cell_run.outputs)
    _place_failure(cells, run.failure, runs)
    row_of = {row.name: row for row in rows}
    for view in cells:
        step = view.owner.step
        if (
            step is not None
            and step in row_of
            and view.cell.number == project.pipeline.step(step).config.cells[0]
        ):
            view.aside = Markup(render_page("run_aside.html.j2", row=row_of[step]))
    nodes, links = dag_parts(
        pipeline,
        colours,
        {r.name: f"{r.state} · {r.time}" if r.time else r.state for r in rows},
        {r.name: r.state.replace(" ", "-") for r in rows},
    )
    return render_page(
        "run.html.j2",
        title=config.name,
        description=config.description,
        run_name=run.run_dir.name,
        notebook=config.notebook.path.name,
        succeeded=run.failure is None,
        failure=str(run.failure) if run.failure else None,
        dag=dag_svg(nodes, links),
        steps=rows,
        metrics=[(name, f"{value:.6g}") for name, value in run.metrics.items()],
        parameters=_parameters(project, params),
        cells=cells,
        without_outputs=not records,
    )


def _step_row(
    name: str, cells: tuple[int, ...], run: RunFacts, colours: Mapping[str, tuple[str, str]], recorded: bool
) -> StepRow:
    status = run.steps.get(name)
    state = status.state if status else "not run"
    seconds = status.seconds if status else None
    time = f"{seconds:.1f} s" if seconds is not None else ""
    return StepRow(name, colours[name][0], state, time, cells_phrase(cells) if cells else "", recorded)


def _place_failure(cells: list[CellView], failure: Diagnostic | None, runs: Mapping[int, object]) -> None:
    """A failure at a cell whose outputs do not already show the error is shown at that cell."""
    if failure is None or failure.cell is None:
        return
    for view in cells:
        run = runs.get(view.cell.number)
        if view.cell.number == failure.cell and getattr(run, "error", None) is None:
            view.problems.append(failure.message)


def _parameters(project: Project, params: Mapping[str, str]) -> list[tuple[str, str, str]]:
    given = parse_params(project.config.parameters, params)
    rows = []
    for parameter in project.config.parameters:
        value = given.get(parameter.name, parameter.default)
        source = "--param" if parameter.name in given else "default"
        rows.append((parameter.name, repr(value), source))
    return rows
