"""The `kale-yaml` command: argument parsing and printing only; the work is in api.py.

Exit status: 0 success, 1 the input is wrong or a run failed, 2 wrong usage, 128+N a run stopped by
signal N (130: SIGINT).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kale_yaml import api
from kale_yaml.errors import Diagnostic, KaleYamlError

if TYPE_CHECKING:
    import rich.console

EXIT_OK, EXIT_INPUT, EXIT_USAGE = 0, 1, 2


# rich is imported when something is printed, not at start-up: `validate` runs in pre-commit hooks.
def Console(**options: Any) -> rich.console.Console:
    from rich.console import Console as RichConsole

    return RichConsole(**options)


def escape(text: str) -> str:
    from rich.markup import escape as rich_escape

    return rich_escape(text)


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if not getattr(args, "command", None):
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    handler = _COMMANDS[args.command]
    try:
        return handler(args)
    except KaleYamlError as exc:
        _report(list(exc.diagnostics), getattr(args, "format", "text"))
        return EXIT_INPUT
    except KeyboardInterrupt:
        return 130


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="kale-yaml",
        description="Turn a Jupyter notebook plus pipeline.kale.yaml into a Kubeflow Pipelines v2 pipeline.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    validate = sub.add_parser(
        "validate", help="check sidecars against the schema, the notebook and the data flow"
    )
    validate.add_argument(
        "paths", nargs="*", metavar="PATH", help="pipeline.kale.yaml files or folders (default: .)"
    )
    validate.add_argument("--format", choices=["text", "json", "github"], default="text")

    build = sub.add_parser("build", help="write NAME.pipeline.py and NAME.pipeline.yaml")
    build.add_argument("path", nargs="?", metavar="PATH")
    build.add_argument(
        "-o", "--output", metavar="DIR", help="output folder (default: .kale/ beside the sidecar)"
    )
    build.add_argument(
        "--check", action="store_true", help="write nothing; exit 1 if the files on disk are stale"
    )

    run = sub.add_parser(
        "run", help="build, then run every step on this machine with kfp's local runner, or on a KFP server"
    )
    run.add_argument("path", nargs="?", metavar="PATH")
    run.add_argument(
        "--param", action="append", default=[], metavar="NAME=VALUE", help="override a pipeline parameter"
    )
    run.add_argument("--no-cache", action="store_true", help="run every step, even unchanged ones")
    run.add_argument(
        "--host", metavar="URL", help="submit to this KFP server instead of running here (default: $KFP_HOST)"
    )
    run.add_argument(
        "--experiment", metavar="NAME", help="with --host: the experiment (default: pipeline.experiment)"
    )
    run.add_argument("--wait", action="store_true", help="with --host: follow the run to its end")
    run.add_argument(
        "--timeout",
        type=_seconds,
        metavar="SECONDS",
        help="with --host: how long each request waits for the server's answer (default: 30)",
    )
    run.add_argument(
        "--wait-timeout",
        type=_seconds,
        metavar="SECONDS",
        help="with --wait: how long to follow the run before giving up on it (default: 86400, a day)",
    )
    run.add_argument("--local", action="store_true", help="run on this machine even when KFP_HOST is set")

    sub.add_parser("schema", help="print the JSON Schema of pipeline.kale.yaml")
    _add_review_commands(sub)
    return parser


def _validate(args: argparse.Namespace) -> int:
    paths: list[str | None] = list(args.paths) or [None]
    problems: list[Diagnostic] = []
    checked: list[tuple[str, api.Project]] = []
    for path in paths:
        try:
            project = api.validate(path)
        except KaleYamlError as exc:
            problems.extend(exc.diagnostics)
            continue
        checked.append((api.display_path(project.sidecar), project))
        problems.extend(project.warnings)
    _report(problems, args.format)
    failed = any(d.severity == "error" for d in problems)
    if args.format == "text":
        for name, project in checked:
            steps = len(project.config.steps)
            line = f"{name}: {steps} step{'s' if steps != 1 else ''}"
            if sys.stdout.isatty():
                Console(highlight=False).print(f"[green]ok[/green] {escape(line)}")
            else:  # pre-commit and CI: plain text, and no time spent importing rich
                sys.stdout.write(f"ok {line}\n")
    return EXIT_INPUT if failed else EXIT_OK


def _build(args: argparse.Namespace) -> int:
    result = api.build(args.path, args.output, check=args.check)
    _report(list(result.project.warnings), "text")
    console = Console(highlight=False)
    py_name, yaml_name = api.display_path(result.python_path), api.display_path(result.yaml_path)
    if args.check:
        if result.changed:
            console.print(f"[red]stale[/red]: {escape(py_name)} / {escape(yaml_name)}; run kale-yaml build")
            return EXIT_INPUT
        console.print(f"[green]up to date[/green]: {escape(py_name)}, {escape(yaml_name)}")
        return EXIT_OK
    verb = "wrote" if result.changed else "unchanged"
    console.print(f"[green]{verb}[/green] {escape(py_name)}")
    console.print(f"[green]{verb}[/green] {escape(yaml_name)}")
    return EXIT_OK


def _seconds(text: str) -> float:
    try:
        seconds = float(text)
    except ValueError:
        seconds = math.nan
    if not 0 < seconds < math.inf:
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive number of seconds")
    return seconds


def _run(args: argparse.Namespace) -> int:
    from rich.table import Table

    from kale_yaml.run.local import RunOptions, run_local
    from kale_yaml.run.local_steps import StepStatus
    from kale_yaml.run.remote import (
        DEFAULT_TIMEOUT,
        DEFAULT_WAIT_TIMEOUT,
        follow,
        host_from_environment,
        server_url,
        submit,
    )

    params: dict[str, str] = {}
    for item in args.param:
        name, sep, value = item.partition("=")
        if not sep or not name:
            sys.stderr.write(f"kale-yaml run: --param takes NAME=VALUE, got {item!r}\n")
            return EXIT_USAGE
        params[name.strip()] = value
    if args.local and args.host:
        sys.stderr.write("kale-yaml run: --local and --host exclude each other\n")
        return EXIT_USAGE
    if args.host is not None and not args.host.strip():
        sys.stderr.write("kale-yaml run: --host needs a URL, got an empty one\n")
        return EXIT_USAGE
    host = None if args.local else host_from_environment(args.host)
    if host is None and (args.experiment or args.wait or args.timeout or args.wait_timeout):
        flags = "--experiment, --wait, --timeout and --wait-timeout"
        sys.stderr.write(f"kale-yaml run: {flags} need --host URL (or KFP_HOST)\n")
        return EXIT_USAGE
    if args.wait_timeout is not None and not args.wait:
        sys.stderr.write("kale-yaml run: --wait-timeout needs --wait\n")
        return EXIT_USAGE
    if host is not None:
        host = server_url(host)  # a host no request can reach fails before the build
    # Bound to the real stdout now: during the run kfp's own output is redirected to the run's log.
    console = Console(file=sys.stdout, highlight=False)
    built = api.build(args.path)
    _report(list(built.project.warnings), "text")
    state = "built" if built.changed else "up to date"
    console.print(f"{state}: {escape(api.display_path(built.yaml_path))}")
    if host is not None:
        sent = submit(
            built.project,
            built.yaml_path,
            host,
            experiment=args.experiment,
            params=params,
            use_cache=not args.no_cache,
            timeout=args.timeout or DEFAULT_TIMEOUT,
        )
        where = f"{escape(sent.host)}, experiment '{escape(sent.experiment)}'"
        console.print(f"submitted run '{escape(sent.run_name)}' to {where}")
        console.print(f"run: {escape(sent.url)}")
        if not args.wait:
            return EXIT_OK
        seen: dict[str, str] = {}
        last = None
        for last in follow(sent, wait_timeout=args.wait_timeout or DEFAULT_WAIT_TIMEOUT):
            for task, task_state in (("run", last.state), *last.tasks):
                if seen.get(task) != task_state:
                    console.print(f"  {escape(task_state.lower()):<10} {escape(task)}")
                    seen[task] = task_state
        if last is None or not last.succeeded:
            ended = last.state.lower() if last else "unknown"
            why = f": {last.error}" if last and last.error else ""
            _report([Diagnostic(file=sent.url, message=f"the run ended {ended}{why}")], "text")
            return EXIT_INPUT
        console.print(f"[green]succeeded[/green]: {escape(sent.url)}")
        return EXIT_OK

    def show(status: StepStatus) -> None:
        if status.state == "running":
            console.print(f"  [cyan]started[/cyan]  {escape(status.name)}")
        elif status.state == "done":
            console.print(f"  [green]done[/green]     {escape(status.name)} ({status.seconds or 0:.1f}s)")
        elif status.state == "failed":
            console.print(f"  [red]failed[/red]   {escape(status.name)}")
        elif status.state == "interrupted":
            console.print(f"  [yellow]stopped[/yellow]  {escape(status.name)}")

    result = run_local(built.project, RunOptions(params=params, use_cache=not args.no_cache, on_update=show))
    for note in result.volumes:
        console.print(f"on this machine: {escape(note)}")
    for note in result.ignored:
        console.print(f"[dim]ignored locally: {escape(note)}[/dim]")
    table = Table(title="steps")
    for column in ("step", "status", "seconds"):
        table.add_column(column)
    colours = {"done": "green", "cached": "blue", "failed": "red", "interrupted": "yellow", "not run": "dim"}
    for status in result.steps.values():
        colour = colours.get(status.state, "white")
        seconds = f"{status.seconds:.1f}" if status.seconds is not None else "-"
        table.add_row(escape(status.name), f"[{colour}]{status.state}[/{colour}]", seconds)
    console.print(table)
    if result.failure is not None:
        _report([result.failure], "text")
        console.print(f"outputs of completed steps: {escape(api.display_path(result.run_dir))}")
        # A stopped run exits as a shell reports a command ended by that signal (130 for SIGINT).
        return 128 + result.interrupted if result.interrupted else EXIT_INPUT
    if result.metrics:
        metrics = Table(title="metrics")
        metrics.add_column("name")
        metrics.add_column("value", justify="right")
        for name, value in result.metrics.items():
            metrics.add_row(escape(name), f"{value:.6g}")
        console.print(metrics)
    for copy in result.snapshots:
        console.print(f"snapshot: {escape(api.display_path(copy))}")
    console.print(f"outputs: {escape(api.display_path(result.run_dir))}")
    return EXIT_OK


def _schema(args: argparse.Namespace) -> int:
    from kale_yaml.load.schema import schema_text

    sys.stdout.write(schema_text())
    return EXIT_OK


def _report(diagnostics: list[Diagnostic], output_format: str) -> None:
    if not diagnostics and output_format != "json":  # json always prints its list, even an empty one
        return
    if output_format == "json":
        rows = [
            {
                "severity": d.severity,
                "file": d.file,
                "line": d.line,
                "column": d.col,
                "cell": d.cell,
                "key": d.key,
                "message": d.message,
                "text": str(d),
            }
            for d in diagnostics
        ]
        sys.stdout.write(json.dumps(rows, indent=2) + "\n")
        return
    if output_format == "github":
        for d in diagnostics:
            sys.stdout.write(_github(d) + "\n")
        return
    console = Console(stderr=True, highlight=False, soft_wrap=True)
    for d in diagnostics:
        colour = "red" if d.severity == "error" else "yellow"
        console.print(f"[{colour}]{d.severity}[/{colour}]: {escape(str(d))}")


def _github(d: Diagnostic) -> str:
    """A GitHub Actions workflow command; its properties and message have their own escaping."""
    kind = "error" if d.severity == "error" else "warning"
    props = [f"file={_gh_property(d.file)}"]
    if d.line is not None and d.cell is None:
        props.append(f"line={d.line}")
        props.append(f"col={d.col or 1}")
    message = str(d) if d.cell is not None else (f"{d.key}: {d.message}" if d.key else d.message)
    return f"::{kind} {','.join(props)}::{_gh_data(message)}"


def _gh_data(text: str) -> str:
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _gh_property(text: str) -> str:
    return _gh_data(text).replace(":", "%3A").replace(",", "%2C")


# -- review and migration: cells, graph, init, import-kale -------------------------------------------------
def _add_review_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from kale_yaml.plan.graph import FORMATS

    cells = sub.add_parser("cells", help="list the notebook's cells: number, id, type, owner, first line")
    cells.add_argument(
        "path", nargs="?", metavar="PATH|NOTEBOOK", help="a sidecar, a folder holding one, or a notebook"
    )
    graph = sub.add_parser("graph", help="show the steps, the edges and the variables on each edge")
    graph.add_argument("path", nargs="?", metavar="PATH")
    graph.add_argument("--format", choices=FORMATS, default="text", help="mermaid renders in GitHub comments")
    init = sub.add_parser("init", help="draft a pipeline.kale.yaml beside a notebook from its sections")
    init.add_argument("notebook", metavar="NOTEBOOK")
    kale = sub.add_parser(
        "import-kale", help="write the pipeline.kale.yaml that a Kale notebook's tags and metadata describe"
    )
    kale.add_argument("notebook", metavar="NOTEBOOK")


def _cells(args: argparse.Namespace) -> int:
    from rich import box
    from rich.table import Table

    from kale_yaml.authoring.cell_table import cells_view

    view = cells_view(args.path)
    console = Console(highlight=False)
    title = api.display_path(view.notebook.path)
    if view.sidecar is not None:
        title += f", owners from {api.display_path(view.sidecar)}"
    console.print(escape(title), soft_wrap=True)
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
        width = max([len(header), *map(len, values)])
        table.add_column(header, justify="right" if header == "#" else "left", no_wrap=True, min_width=width)
        used += width + 3
    room = max(console.width - used - 4, 12)  # what is left for the first line; rich would squeeze the rest
    table.add_column("first line", no_wrap=True)
    colours = {"prelude": "cyan", "parameters": "cyan", "skip": "dim"}
    for row in view.rows:
        cells = [str(row.number), escape(row.id or "-"), row.cell_type]
        if view.with_owners:
            colour = "red" if row.state in ("unowned", "conflict") else colours.get(row.owner, "")
            cells.append(f"[{colour}]{escape(row.owner)}[/{colour}]" if colour else escape(row.owner))
        first = row.first_line if len(row.first_line) <= room else row.first_line[: room - 1] + "…"
        table.add_row(*cells, f"[dim]{escape(first)}[/dim]" if row.cell_type != "code" else escape(first))
    console.print(table)
    _report(list(view.diagnostics), "text")
    if view.diagnostics and view.with_owners:
        console.print("[yellow]owners as far as the sidecar's working selectors tell[/yellow]")
    return EXIT_INPUT if any(d.severity == "error" for d in view.diagnostics) else EXIT_OK


def _graph(args: argparse.Namespace) -> int:
    from kale_yaml.plan.graph import graph_text

    project = api.validate(args.path)
    _report(list(project.warnings), "text")
    sys.stdout.write(graph_text(project.pipeline, args.format))
    return EXIT_OK


def _init(args: argparse.Namespace) -> int:
    from kale_yaml.authoring.draft import init_sidecar

    sidecar = init_sidecar(Path(args.notebook))
    Console(highlight=False).print(f"[green]wrote[/green] {escape(api.display_path(sidecar))}")
    return _check_written(sidecar, [])


def _import_kale(args: argparse.Namespace) -> int:
    from kale_yaml.authoring.kale_import import dependency_warnings, import_to_sidecar

    sidecar, result = import_to_sidecar(Path(args.notebook))
    Console(highlight=False).print(f"[green]wrote[/green] {escape(api.display_path(sidecar))}")
    _report(list(result.warnings), "text")
    return _check_written(sidecar, [lambda project: dependency_warnings(result, project.pipeline)])


def _check_written(sidecar: Path, more_warnings: list[Callable[[api.Project], list[Diagnostic]]]) -> int:
    """Validate a sidecar just written: a draft that does not validate yet stays, and exits 1."""
    console = Console(highlight=False)
    try:
        project = api.validate(sidecar)
    except KaleYamlError as exc:
        console.print(
            "[yellow]it does not validate yet[/yellow]: fix these in the file, then run kale-yaml validate"
        )
        _report(list(exc.diagnostics), "text")
        return EXIT_INPUT
    warnings = [*project.warnings, *(d for more in more_warnings for d in more(project))]
    _report(warnings, "text")
    steps = len(project.config.steps)
    console.print(
        f"[green]ok[/green]: it validates ({steps} step{'s' if steps != 1 else ''}); review it with"
        " kale-yaml cells and kale-yaml graph"
    )
    return EXIT_OK


_COMMANDS = {"validate": _validate, "build": _build, "run": _run, "schema": _schema}
_COMMANDS.update({"cells": _cells, "graph": _graph, "init": _init, "import-kale": _import_kale})

if __name__ == "__main__":
    raise SystemExit(main())
