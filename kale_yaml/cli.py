"""The `kale-yaml` command: argument parsing and printing only; the work is in api.py.

Exit status: 0 success, 1 the input is wrong or a run failed, 2 wrong usage.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

from rich.console import Console
from rich.markup import escape

from kale_yaml import api
from kale_yaml.errors import Diagnostic, KaleYamlError

EXIT_OK, EXIT_INPUT, EXIT_USAGE = 0, 1, 2


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

    run = sub.add_parser("run", help="build, then run every step on this machine with kfp's local runner")
    run.add_argument("path", nargs="?", metavar="PATH")
    run.add_argument(
        "--param", action="append", default=[], metavar="NAME=VALUE", help="override a pipeline parameter"
    )
    run.add_argument("--no-cache", action="store_true", help="run every step, even unchanged ones")

    sub.add_parser("schema", help="print the JSON Schema of pipeline.kale.yaml")
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
        console = Console(stderr=False, highlight=False)
        for name, project in checked:
            steps = len(project.config.steps)
            console.print(f"[green]ok[/green] {escape(name)}: {steps} step{'s' if steps != 1 else ''}")
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


def _run(args: argparse.Namespace) -> int:
    from rich.table import Table

    from kale_yaml.local import RunOptions, StepStatus, run_local

    params: dict[str, str] = {}
    for item in args.param:
        name, sep, value = item.partition("=")
        if not sep or not name:
            sys.stderr.write(f"kale-yaml run: --param takes NAME=VALUE, got {item!r}\n")
            return EXIT_USAGE
        params[name.strip()] = value
    # Bound to the real stdout now: during the run kfp's own output is redirected to the run's log.
    console = Console(file=sys.stdout, highlight=False)
    built = api.build(args.path)
    _report(list(built.project.warnings), "text")
    state = "built" if built.changed else "up to date"
    console.print(f"{state}: {escape(api.display_path(built.yaml_path))}")

    def show(status: StepStatus) -> None:
        if status.state == "running":
            console.print(f"  [cyan]started[/cyan]  {escape(status.name)}")
        elif status.state == "done":
            console.print(f"  [green]done[/green]     {escape(status.name)} ({status.seconds or 0:.1f}s)")
        elif status.state == "failed":
            console.print(f"  [red]failed[/red]   {escape(status.name)}")

    result = run_local(built.project, RunOptions(params=params, use_cache=not args.no_cache, on_update=show))
    for note in result.ignored:
        console.print(f"[dim]ignored locally: {escape(note)}[/dim]")
    table = Table(title="steps")
    for column in ("step", "status", "seconds"):
        table.add_column(column)
    colours = {"done": "green", "cached": "blue", "failed": "red", "not run": "dim"}
    for status in result.steps.values():
        colour = colours.get(status.state, "white")
        seconds = f"{status.seconds:.1f}" if status.seconds is not None else "-"
        table.add_row(escape(status.name), f"[{colour}]{status.state}[/{colour}]", seconds)
    console.print(table)
    if result.failure is not None:
        _report([result.failure], "text")
        console.print(f"outputs of completed steps: {escape(api.display_path(result.run_dir))}")
        return EXIT_INPUT
    if result.metrics:
        metrics = Table(title="metrics")
        metrics.add_column("name")
        metrics.add_column("value", justify="right")
        for name, value in result.metrics.items():
            metrics.add_row(escape(name), f"{value:.6g}")
        console.print(metrics)
    console.print(f"outputs: {escape(api.display_path(result.run_dir))}")
    return EXIT_OK


def _schema(args: argparse.Namespace) -> int:
    from kale_yaml.schema import schema_text

    sys.stdout.write(schema_text())
    return EXIT_OK


def _report(diagnostics: list[Diagnostic], output_format: str) -> None:
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


_COMMANDS = {"validate": _validate, "build": _build, "run": _run, "schema": _schema}

if __name__ == "__main__":
    raise SystemExit(main())
