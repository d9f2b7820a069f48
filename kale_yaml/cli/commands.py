"""One function per command: call the library (`api`, and the run and authoring stages), then show the
result through `reporters`. Each returns the exit status."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from kale_yaml import api
from kale_yaml import diagnostics as ky
from kale_yaml.cli.reporters import (
    Console,
    cells_table,
    escape,
    metrics_table,
    report,
    step_line,
    steps_table,
)
from kale_yaml.errors import Diagnostic, KaleYamlError

if TYPE_CHECKING:
    import rich.console

    from kale_yaml.run.debug_session import DebugSession

EXIT_OK, EXIT_INPUT, EXIT_USAGE = 0, 1, 2
Command = Callable[[argparse.Namespace], int]


def validate(args: argparse.Namespace) -> int:
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
    report(problems, args.format)
    failing = ("error", "warning") if args.strict else ("error",)
    failed = any(d.severity in failing for d in problems)
    if args.format == "text":
        for name, project in checked:
            steps = len(project.config.steps)
            line = f"{name}: {steps} step{'s' if steps != 1 else ''}"
            if sys.stdout.isatty():
                Console(highlight=False).print(f"[green]ok[/green] {escape(line)}")
            else:  # pre-commit and CI: plain text, and no time spent importing rich
                sys.stdout.write(f"ok {line}\n")
    return EXIT_INPUT if failed else EXIT_OK


def build(args: argparse.Namespace) -> int:
    result = api.build(args.path, args.output, check=args.check)
    report(result.project.warnings, "text")
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


def run(args: argparse.Namespace) -> int:
    from kale_yaml.run.remote import host_from_environment, server_url

    params = _params(args.param)
    if isinstance(params, str):
        return _usage(params)
    if args.local and args.host:
        return _usage("--local and --host exclude each other")
    if args.host is not None and not args.host.strip():
        return _usage("--host needs a URL, got an empty one")
    host = None if args.local else host_from_environment(args.host)
    if host is None and (args.experiment or args.wait or args.timeout or args.wait_timeout):
        return _usage("--experiment, --wait, --timeout and --wait-timeout need --host URL (or KFP_HOST)")
    if args.from_step and args.only_step:
        return _usage("--from and --only exclude each other")
    here_only = args.jobs or args.from_step or args.only_step or args.runner != "kale" or args.no_preload
    if host is not None and here_only:
        return _usage("--jobs, --from, --only, --runner and --no-preload are for a run on this machine")
    if args.wait_timeout is not None and not args.wait:
        return _usage("--wait-timeout needs --wait")
    if host is not None:
        host = server_url(host)  # a host no request can reach fails before the build
    # Bound to the real stdout now: during the run kfp's own output is redirected to the run's log.
    console = Console(file=sys.stdout, highlight=False)
    if host is not None:
        built = api.build(args.path)
        _built(built, console)
        return _submit(args, built, host, params, console)
    return _run_here(args, params, console)


def _built(built: api.BuildResult, console: rich.console.Console) -> None:
    report(built.project.warnings, "text")
    state = "built" if built.changed else "up to date"
    console.print(f"{state}: {escape(api.display_path(built.yaml_path))}")


def _usage(problem: str, command: str = "run") -> int:
    sys.stderr.write(f"kale-yaml {command}: {problem}\n")
    return EXIT_USAGE


def _params(items: list[str]) -> dict[str, str] | str:
    """`--param NAME=VALUE` arguments as a dict, or the usage problem of the first that is not one."""
    params: dict[str, str] = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name:
            return f"--param takes NAME=VALUE, got {item!r}"
        params[name.strip()] = value
    return params


def _submit(
    args: argparse.Namespace,
    built: api.BuildResult,
    host: str,
    params: dict[str, str],
    console: rich.console.Console,
) -> int:
    from kale_yaml.run.remote import DEFAULT_TIMEOUT, DEFAULT_WAIT_TIMEOUT, follow, submit

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
        report([ky.RUN_UNSUCCESSFUL.at(sent.url, f"the run ended {ended}{why}")], "text")
        return EXIT_INPUT
    console.print(f"[green]succeeded[/green]: {escape(sent.url)}")
    return EXIT_OK


def _run_here(args: argparse.Namespace, params: dict[str, str], console: rich.console.Console) -> int:
    from kale_yaml.report.run_page import write_run_reports
    from kale_yaml.run.local import RunOptions, start_local_run
    from kale_yaml.run.local_steps import StepStatus

    def show(status: StepStatus) -> None:
        line = step_line(status)
        if line is not None:
            console.print(line)

    options = RunOptions(
        params=params,
        use_cache=not args.no_cache,
        on_update=show,
        runner=args.runner,
        preload=not args.no_preload,
        from_step=args.from_step,
        only_step=args.only_step,
    )
    if args.jobs:
        options.jobs = args.jobs
    # The run starts before the build: its warm parent imports the notebook's modules meanwhile.
    local_run = start_local_run(api.validate(args.path), options)
    try:
        built = api.build(project=local_run.project)
    except BaseException:
        local_run.close()
        raise
    _built(built, console)
    result = local_run.execute(built.view)  # the local variant of the view build rendered
    for note in [*result.volumes, *result.notes]:
        console.print(f"on this machine: {escape(note)}")
    for note in result.ignored:
        console.print(f"[dim]ignored locally: {escape(note)}[/dim]")
    console.print(steps_table(result))
    pages = write_run_reports(built.project, result, params)
    shown = [("executed notebook", pages.notebook), ("report", pages.page)]
    if result.failure is not None:
        report([result.failure], "text")
        console.print(f"outputs of completed steps: {escape(api.display_path(result.run_dir))}")
        for label, page in shown:
            console.print(f"{label}: {escape(api.display_path(page))}", soft_wrap=True)
        # A stopped run exits as a shell reports a command ended by that signal (130 for SIGINT).
        return 128 + result.interrupted if result.interrupted else EXIT_INPUT
    if result.metrics:
        console.print(metrics_table(result.metrics))
    for copy in result.snapshots:
        console.print(f"snapshot: {escape(api.display_path(copy))}")
    console.print(f"outputs: {escape(api.display_path(result.run_dir))}")
    for label, page in shown:
        console.print(f"{label}: {escape(api.display_path(page))}", soft_wrap=True)
    return EXIT_OK


def packages(args: argparse.Namespace) -> int:
    from kale_yaml.cli.reporters import PACKAGE_COLUMNS, package_fields, packages_table

    project = api.validate(args.path)
    rows = [row for environment in project.environments.steps.values() for row in environment.rows]
    if args.format == "json":
        listed = [dict(zip(PACKAGE_COLUMNS, package_fields(row), strict=True)) for row in rows]
        sys.stdout.write(json.dumps(listed, indent=2) + "\n")
        report(project.warnings, "text")
        return EXIT_OK
    report(project.warnings, "text")
    Console(highlight=False).print(packages_table(rows))
    return EXIT_OK


def schema(args: argparse.Namespace) -> int:
    from kale_yaml.load.schema import schema_text

    sys.stdout.write(schema_text())
    return EXIT_OK


# -- review and migration ----------------------------------------------------------------------------------
def cells(args: argparse.Namespace) -> int:
    from kale_yaml.authoring.cell_table import cells_view

    view = cells_view(args.path)
    console = Console(highlight=False)
    title = api.display_path(view.notebook.path)
    if view.sidecar is not None:
        title += f", owners from {api.display_path(view.sidecar)}"
    console.print(escape(title), soft_wrap=True)
    console.print(cells_table(view, console.width))
    state = view.state
    if state:  # later steps set these again at their start (docs/run.md#process-state)
        by_cell: dict[int, list[str]] = {}
        for cell, what in state:
            by_cell.setdefault(cell, []).append(what)
        sets = "; ".join(f"cell {cell}: {', '.join(whats)}" for cell, whats in by_cell.items())
        console.print(escape(f"process state, set again in later steps: {sets}"), soft_wrap=True)
    report(view.diagnostics, "text")
    if view.diagnostics and view.with_owners:
        console.print("[yellow]owners as far as the sidecar's working selectors tell[/yellow]")
    return EXIT_INPUT if any(d.severity == "error" for d in view.diagnostics) else EXIT_OK


def view(args: argparse.Namespace) -> int:
    """Write the review page, also for a sidecar with errors (it shows them); exit 1 when it has errors."""
    from kale_yaml.authoring.cell_table import cells_view
    from kale_yaml.load.paths import DEFAULT_OUTPUT_DIR
    from kale_yaml.report.view_page import PAGE_NAME, view_page, write_page

    cells = cells_view(args.path)
    problems, project = list(cells.diagnostics), None
    if cells.sidecar is not None and not problems:
        try:
            project = api.validate(cells.sidecar)
            problems = list(project.warnings)
        except KaleYamlError as exc:
            problems = list(exc.diagnostics)
    owners = {row.number: row.owners for row in cells.rows} if cells.with_owners else None
    shown = cells.sidecar or cells.notebook.path
    title = project.config.name if project else api.display_path(shown)
    target = Path(args.output) if args.output else shown.parent / DEFAULT_OUTPUT_DIR / PAGE_NAME
    page = view_page(cells.notebook, owners, problems, project, title)
    write_page(target, page, [p for p in (cells.notebook.path, cells.sidecar) if p is not None])
    report(problems, "text")
    Console(highlight=False).print(f"[green]wrote[/green] {escape(api.display_path(target))}")
    return EXIT_INPUT if any(d.severity == "error" for d in problems) else EXIT_OK


def graph(args: argparse.Namespace) -> int:
    from kale_yaml.plan.graph import graph_text

    project = api.validate(args.path)
    report(project.warnings, "text")
    sys.stdout.write(graph_text(project.pipeline, args.format))
    return EXIT_OK


def init(args: argparse.Namespace) -> int:
    from kale_yaml.authoring.draft import init_sidecar

    sidecar = init_sidecar(Path(args.notebook))
    Console(highlight=False).print(f"[green]wrote[/green] {escape(api.display_path(sidecar))}")
    return _check_written(sidecar, [])


def import_kale(args: argparse.Namespace) -> int:
    from kale_yaml.authoring.kale_dag import dependency_warnings
    from kale_yaml.authoring.kale_import import import_to_sidecar

    sidecar, result = import_to_sidecar(Path(args.notebook))
    Console(highlight=False).print(f"[green]wrote[/green] {escape(api.display_path(sidecar))}")
    report(result.warnings, "text")
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
        report(exc.diagnostics, "text")
        return EXIT_INPUT
    warnings = [*project.warnings, *(d for more in more_warnings for d in more(project))]
    report(warnings, "text")
    steps = len(project.config.steps)
    console.print(
        f"[green]ok[/green]: it validates ({steps} step{'s' if steps != 1 else ''}); review it with"
        " kale-yaml cells and kale-yaml graph"
    )
    return EXIT_OK


def debug(args: argparse.Namespace) -> int:
    from kale_yaml.run.debug_session import open_session

    params = _params(args.param)
    if isinstance(params, str):
        return _usage(params, "debug")
    session = open_session(api.validate(args.path), args.step, params, args.run)
    session.namespace.update(_console_helpers(session))
    import importlib.util

    if importlib.util.find_spec("IPython") is None:
        import code

        code.interact(banner=session.banner(), local=session.namespace, exitmsg="")
        return EXIT_OK
    from IPython import start_ipython  # type: ignore[import-not-found,unused-ignore]

    print(session.banner())
    start_ipython(argv=[], user_ns=session.namespace)
    return EXIT_OK


def _console_helpers(session: DebugSession) -> dict[str, Callable[..., None]]:
    """run(N), run_all() and show(N) in the debug console."""

    def run(number: int) -> None:
        if number not in session.cells:
            numbers = ", ".join(map(str, session.cells))
            print(f"cell {number} is not one of step '{session.step}''s cells ({numbers})")
            return
        session.run(number)  # the cell's own errors show as the console shows any error

    def run_all() -> None:
        for number in session.cells:
            session.run(number)

    def show(number: int) -> None:
        print(session.cells.get(number, f"cell {number} is not one of step '{session.step}''s cells"))

    return {"run": run, "run_all": run_all, "show": show}


COMMANDS: dict[str, Command] = {
    "validate": validate,
    "build": build,
    "run": run,
    "debug": debug,
    "schema": schema,
    "cells": cells,
    "view": view,
    "graph": graph,
    "packages": packages,
    "init": init,
    "import-kale": import_kale,
}
