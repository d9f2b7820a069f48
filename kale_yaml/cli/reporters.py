"""Everything the command line shows: diagnostics as text, JSON or GitHub annotations, and the tables and
progress lines of `run` and `cells`.

rich is imported when something is printed, not at start-up: `validate` runs in pre-commit hooks.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from kale_yaml.errors import Diagnostic

if TYPE_CHECKING:
    import rich.console
    import rich.table

    from kale_yaml.authoring.cell_table import CellsView
    from kale_yaml.plan.environment import PackageRow
    from kale_yaml.run.local import RunResult
    from kale_yaml.run.local_steps import StepStatus


def Console(**options: Any) -> rich.console.Console:
    from rich.console import Console as RichConsole

    return RichConsole(**options)


def escape(text: str) -> str:
    from rich.markup import escape as rich_escape

    return rich_escape(text)


# -- diagnostics ---------------------------------------------------------------------------------------------
def report(diagnostics: Sequence[Diagnostic], output_format: str) -> None:
    """Text on standard error (the default, and for any format that is not json or github); json and github
    on standard output, for the tools that read them."""
    if output_format == "json":  # json always prints its list, even an empty one
        sys.stdout.write(json.dumps([json_row(d) for d in diagnostics], indent=2) + "\n")
        return
    if not diagnostics:
        return
    if output_format == "github":
        for d in diagnostics:
            sys.stdout.write(github_command(d) + "\n")
        return
    console = Console(stderr=True, highlight=False, soft_wrap=True)
    for d in diagnostics:
        colour = {"error": "red", "warning": "yellow"}.get(d.severity, "cyan")
        console.print(f"[{colour}]{d.severity}[/{colour}]: {escape(str(d))}")


def json_row(d: Diagnostic) -> dict[str, Any]:
    return {
        "severity": d.severity,
        "code": d.code,
        "file": d.file,
        "line": d.line,
        "column": d.col,
        "cell": d.cell,
        "key": d.key,
        "message": d.message,
        "text": str(d),
    }


def github_command(d: Diagnostic) -> str:
    """A GitHub Actions workflow command; its properties and message have their own escaping. The code is
    the annotation's title."""
    kind = {"error": "error", "warning": "warning"}.get(d.severity, "notice")
    props = [f"file={_gh_property(d.file)}"]
    if d.line is not None and d.cell is None:
        props.append(f"line={d.line}")
        props.append(f"col={d.col or 1}")
    if d.code:
        props.append(f"title={_gh_property(d.code)}")
    message = str(d) if d.cell is not None else (f"{d.key}: {d.message}" if d.key else d.message)
    return f"::{kind} {','.join(props)}::{_gh_data(message)}"


def _gh_data(text: str) -> str:
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _gh_property(text: str) -> str:
    return _gh_data(text).replace(":", "%3A").replace(",", "%2C")


# -- run -----------------------------------------------------------------------------------------------------
def step_line(status: StepStatus) -> str | None:
    """A local run's line as a step starts, ends, fails or is stopped (None for other changes)."""
    name = escape(status.name)
    lines = {
        "running": f"  [cyan]started[/cyan]  {name}",
        "done": f"  [green]done[/green]     {name} ({status.seconds or 0:.1f}s)",
        "failed": f"  [red]failed[/red]   {name}",
        "interrupted": f"  [yellow]stopped[/yellow]  {name}",
        "cached": f"  [blue]cached[/blue]   {name}",
    }
    return lines.get(status.state)


def steps_table(result: RunResult) -> rich.table.Table:
    from rich.table import Table

    table = Table(title="steps")
    for column in ("step", "status", "seconds"):
        table.add_column(column)
    colours = {
        "done": "green",
        "cached": "blue",
        "failed": "red",
        "interrupted": "yellow",
        "not run": "dim",
        "skipped": "dim",
    }
    for status in result.steps.values():
        colour = colours.get(status.state, "white")
        seconds = f"{status.seconds:.1f}" if status.seconds is not None else "-"
        table.add_row(escape(status.name), f"[{colour}]{status.state}[/{colour}]", seconds)
    return table


def metrics_table(metrics: dict[str, float]) -> rich.table.Table:
    from rich.table import Table

    table = Table(title="metrics")
    table.add_column("name")
    table.add_column("value", justify="right")
    for name, value in metrics.items():
        table.add_row(escape(name), f"{value:.6g}")
    return table


# -- packages ------------------------------------------------------------------------------------------------
PACKAGE_COLUMNS = ("step", "import", "distribution", "version", "source")


def package_fields(row: PackageRow) -> tuple[str, str, str, str, str]:
    """A row of `kale-yaml packages` as its columns show it ("-" where there is nothing)."""
    return row.step, row.module or "-", row.distribution, row.version or "-", row.source


def packages_table(rows: Sequence[PackageRow]) -> rich.table.Table:
    from rich import box
    from rich.table import Table

    table = Table(box=box.SIMPLE_HEAD)
    for column in PACKAGE_COLUMNS:
        table.add_column(column, no_wrap=column != "distribution")
    colours = {"missing": "red", "auto": "green", "local": "cyan", "runtime": "dim"}
    for row in rows:
        *cells, source = (escape(text) for text in package_fields(row))
        colour = colours.get(row.source)
        table.add_row(*cells, f"[{colour}]{source}[/{colour}]" if colour else source)
    return table


# -- cells ---------------------------------------------------------------------------------------------------
def cells_table(view: CellsView, width: int) -> rich.table.Table:
    """The notebook's cells, one row each, in a terminal `width` columns wide: the first line of each cell
    gets the room the other columns leave, and is cut rather than wrapped."""
    from rich import box
    from rich.table import Table

    table = Table(box=box.SIMPLE_HEAD)
    columns: list[tuple[str, list[str]]] = [
        ("#", [str(row.number) for row in view.rows]),
        ("id", [row.id or "-" for row in view.rows]),
        ("type", [row.cell_type for row in view.rows]),
    ]
    if view.with_owners:
        columns.append(("owner", [row.owner for row in view.rows]))
    used = 0
    for header, values in columns:
        column_width = max([len(header), *map(len, values)])
        table.add_column(
            header, justify="right" if header == "#" else "left", no_wrap=True, min_width=column_width
        )
        used += column_width + 3
    room = max(width - used - 4, 12)  # what is left for the first line; rich would squeeze the rest
    table.add_column("first line", no_wrap=True)
    colours = {"prelude": "cyan", "parameters": "cyan", "skip": "dim"}
    for row in view.rows:
        cells = [str(row.number), escape(row.id or "-"), row.cell_type]
        if view.with_owners:
            colour = "red" if row.state in ("unowned", "conflict") else colours.get(row.owner, "")
            cells.append(f"[{colour}]{escape(row.owner)}[/{colour}]" if colour else escape(row.owner))
        first = row.first_line if len(row.first_line) <= room else row.first_line[: room - 1] + "…"
        table.add_row(*cells, f"[dim]{escape(first)}[/dim]" if row.cell_type != "code" else escape(first))
    return table
