"""`kale-yaml view`: the review page of a sidecar, without a run.

The notebook's cells coloured by owner, what each step reads and hands on beside its first cell, the DAG,
and every diagnostic at its cell. A sidecar with errors still gets its page: owners as far as the working
selectors tell, and the errors; the DAG and the data flow only when the sidecar validates.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from markupsafe import Markup

from kale_yaml import diagnostics as ky
from kale_yaml.errors import Diagnostic
from kale_yaml.load.cells import Notebook, cells_phrase
from kale_yaml.load.paths import display_path
from kale_yaml.plan.dag import Transfer
from kale_yaml.plan.project import Project
from kale_yaml.render.compile import Kept, write_atomically
from kale_yaml.report.dag_svg import dag_svg
from kale_yaml.report.model import cell_views, dag_parts, step_colours
from kale_yaml.report.pages import render_page

PAGE_NAME = "view.html"


@dataclass(frozen=True)
class StepFlowRow:
    name: str
    colour: str
    cells: str
    inputs: tuple[str, ...]  # "variable (from step)"
    outputs: tuple[str, ...]
    parameters: tuple[str, ...]
    after: tuple[str, ...]


def view_page(
    notebook: Notebook,
    owners: Mapping[int, Sequence[str]] | None,
    diagnostics: Sequence[Diagnostic],
    project: Project | None,
    title: str,
) -> str:
    """The page. `owners`: who claims each cell (None: the notebook alone, no sidecar); `project`: the
    validated sidecar, None when it has errors."""
    names = [s.name for s in project.config.steps] if project else []
    colours = step_colours(notebook, owners or {}, names)
    cells = cell_views(notebook, owners, colours)
    for view in cells:
        for problem in diagnostics:
            if problem.cell == view.cell.number:
                view.problems.append(f"{problem.severity}: {problem.message}")
    rows: list[StepFlowRow] = []
    dag = Markup("")
    if project is not None:
        rows = [_flow_row(project, name, colours) for name in names]
        row_of = {row.name: row for row in rows}
        for view in cells:
            step = view.owner.step
            if step in row_of and view.cell.number == project.config.step(step).cells[0]:
                view.aside = Markup(render_page("view_aside.html.j2", row=row_of[step]))
        dag = dag_svg(*dag_parts(project.pipeline, colours, {r.name: r.cells for r in rows}, {}))
    legend = [(name, colour) for name, (colour, _) in colours.items()]
    return render_page(
        "view.html.j2",
        title=title,
        description=project.config.description if project else None,
        notebook=notebook.display_name,
        errors=sum(d.severity == "error" for d in diagnostics),
        diagnostics=[(str(d), d.severity) for d in diagnostics],
        with_owners=owners is not None,
        legend=legend,
        dag=dag,
        steps=rows,
        cells=cells,
    )


def _flow_row(project: Project, name: str, colours: Mapping[str, tuple[str, str]]) -> StepFlowRow:
    step = project.pipeline.step(name)
    return StepFlowRow(
        name=name,
        colour=colours[name][0],
        cells=cells_phrase(step.config.cells) if step.config.cells else "",
        inputs=_grouped(step.inputs),
        outputs=step.outputs,
        parameters=step.parameters,
        after=step.config.after,
    )


def _grouped(transfers: Sequence[Transfer]) -> tuple[str, ...]:
    """`from split: X_train, y_train`, one line per producing step."""
    by_producer: dict[str, list[str]] = {}
    for transfer in transfers:
        by_producer.setdefault(transfer.producer, []).append(transfer.variable)
    return tuple(f"from {producer}: {', '.join(names)}" for producer, names in by_producer.items())


def write_page(target: Path, text: str, inputs: Sequence[Path]) -> None:
    """Write the page, never over one of `inputs` (the notebook, the sidecar)."""

    def refusal(kind: str) -> Callable[[Path], Diagnostic]:
        def refuse(output: Path) -> Diagnostic:
            message = (
                f"view writes its page {display_path(output)}, which is the {kind}; choose another -o FILE"
            )
            return ky.OUTPUT_REPLACES_INPUT.at(display_path(output), message)

        return refuse

    kept = [Kept(path, refusal("notebook" if path.suffix == ".ipynb" else "sidecar")) for path in inputs]
    write_atomically({target: text}, kept, display_path)
