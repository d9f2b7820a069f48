"""The command line's grammar: every command, every argument and its help. Parsing only; the work is in
`commands`, the printing in `reporters`."""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from kale_yaml.plan.graph import FORMATS

DIAGNOSTIC_FORMATS = ("text", "json", "github")
PATH_HELP = "a pipeline.kale.yaml file, or a folder holding one (default: the current folder)"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="kale-yaml",
        description="Turn a Jupyter notebook plus pipeline.kale.yaml into a Kubeflow Pipelines v2 pipeline.",
    )
    parser.add_argument("--version", action=_Version, help="print kale-yaml's version and exit")
    sub = parser.add_subparsers(
        dest="command", metavar="COMMAND", help="one of these; kale-yaml COMMAND --help tells more"
    )
    _validate(sub)
    _build(sub)
    _run(sub)
    _debug(sub)
    sub.add_parser("schema", help="print the JSON Schema of pipeline.kale.yaml")
    _review(sub)
    _migration(sub)
    return parser


if TYPE_CHECKING:
    Commands = argparse._SubParsersAction[argparse.ArgumentParser]


def _validate(sub: Commands) -> None:
    validate = sub.add_parser(
        "validate", help="check sidecars against the schema, the notebook and the data flow"
    )
    validate.add_argument(
        "paths", nargs="*", metavar="PATH", help="pipeline.kale.yaml files or folders (default: .)"
    )
    validate.add_argument(
        "--format",
        choices=DIAGNOSTIC_FORMATS,
        default="text",
        help="how to report problems: text (default), json (a list, with codes), or github (annotations)",
    )
    validate.add_argument(
        "--strict",
        action="store_true",
        help="fail (exit 1) on warnings too, e.g. an import no package provides",
    )


def _build(sub: Commands) -> None:
    build = sub.add_parser("build", help="write NAME.pipeline.py and NAME.pipeline.yaml")
    build.add_argument("path", nargs="?", metavar="PATH", help=PATH_HELP)
    build.add_argument(
        "-o", "--output", metavar="DIR", help="output folder (default: .kale/ beside the sidecar)"
    )
    build.add_argument(
        "--check", action="store_true", help="write nothing; exit 1 if the files on disk are stale"
    )


def _run(sub: Commands) -> None:
    run = sub.add_parser(
        "run", help="build, then run every step on this machine with kfp's local runner, or on a KFP server"
    )
    run.add_argument("path", nargs="?", metavar="PATH", help=PATH_HELP)
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
        type=seconds,
        metavar="SECONDS",
        help="with --host: how long each request to the server may take in all (default: 30)",
    )
    run.add_argument(
        "--wait-timeout",
        type=seconds,
        metavar="SECONDS",
        help="with --wait: how long to follow the run before giving up on it (default: 86400, a day)",
    )
    run.add_argument("--local", action="store_true", help="run on this machine even when KFP_HOST is set")
    run.add_argument(
        "--jobs",
        "-j",
        type=positive_int,
        metavar="N",
        help="run at most N steps at once (default: the number of cores)",
    )
    run.add_argument(
        "--from", dest="from_step", metavar="STEP", help="run STEP and every step after it; earlier steps' "
        "values come from their last successful run"
    )
    run.add_argument(
        "--only",
        dest="only_step",
        metavar="STEP",
        help="run STEP alone; the values it receives come from the steps' last successful run",
    )
    run.add_argument(
        "--runner",
        choices=("kale", "kfp"),
        default="kale",
        help="kale: kale-yaml's own executor, parallel and warm (default); kfp: kfp's local runner, one "
        "step at a time",
    )
    run.add_argument(
        "--no-preload",
        action="store_true",
        help="do not import the notebook's modules before the steps start; each step imports them itself",
    )


def _debug(sub: Commands) -> None:
    debug = sub.add_parser(
        "debug",
        help="a Python console holding a step's inputs and parameters from the last run, to run its cells"
        " by hand",
    )
    debug.add_argument("step", metavar="STEP", help="the step to debug")
    debug.add_argument("path", nargs="?", metavar="PATH", help=PATH_HELP)
    debug.add_argument(
        "--run",
        metavar="RUN",
        help="take the inputs from this run's folder in .kale/runs/ (default: each step's last successful"
        " run)",
    )
    debug.add_argument(
        "--param", action="append", default=[], metavar="NAME=VALUE", help="override a pipeline parameter"
    )


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number of 1 or more, got {text!r}")
    return value


def _review(sub: Commands) -> None:
    cells = sub.add_parser("cells", help="list the notebook's cells: number, id, type, owner, first line")
    cells.add_argument(
        "path", nargs="?", metavar="PATH|NOTEBOOK", help="a sidecar, a folder holding one, or a notebook"
    )
    packages = sub.add_parser(
        "packages", help="list what each step installs and carries: import, distribution, version, source"
    )
    packages.add_argument("path", nargs="?", metavar="PATH", help=PATH_HELP)
    packages.add_argument(
        "--format", choices=("text", "json"), default="text", help="text (a table, default) or json (a list)"
    )
    view = sub.add_parser(
        "view",
        help="write one HTML page to review a sidecar: cells coloured by owner, each step's inputs and"
        " outputs, the DAG, and every problem at its cell",
    )
    view.add_argument(
        "path", nargs="?", metavar="PATH|NOTEBOOK", help="a sidecar, a folder holding one, or a notebook"
    )
    view.add_argument(
        "-o",
        "--output",
        metavar="FILE",
        help="where to write the page (default: .kale/view.html beside the sidecar)",
    )
    graph = sub.add_parser("graph", help="show the steps, the edges and the variables on each edge")
    graph.add_argument("path", nargs="?", metavar="PATH", help=PATH_HELP)
    graph.add_argument(
        "--format",
        choices=FORMATS,
        default="text",
        help="text (default), mermaid (renders in GitHub comments) or dot (Graphviz)",
    )


def _migration(sub: Commands) -> None:
    init = sub.add_parser("init", help="draft a pipeline.kale.yaml beside a notebook from its sections")
    init.add_argument("notebook", metavar="NOTEBOOK", help="the .ipynb file to draft a sidecar for")
    kale = sub.add_parser(
        "import-kale", help="write the pipeline.kale.yaml that a Kale notebook's tags and metadata describe"
    )
    kale.add_argument("notebook", metavar="NOTEBOOK", help="the .ipynb file carrying Kale's tags")


def seconds(text: str) -> float:
    """A positive, finite number of seconds."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not 0 < value < math.inf:
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive number of seconds")
    return value


class _Version(argparse.Action):
    """`--version`, as argparse's own prints it, but the version is looked up only when asked for: reading
    the distribution's metadata costs start-up time that `validate` in a pre-commit hook should not pay."""

    def __init__(self, option_strings: Sequence[str], dest: str, **options: Any) -> None:
        super().__init__(
            option_strings, dest=argparse.SUPPRESS, default=argparse.SUPPRESS, nargs=0, **options
        )

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: str | Sequence[Any] | None,
        option_string: str | None = None,
    ) -> None:
        import kale_yaml

        sys.stdout.write(f"kale-yaml {kale_yaml.__version__}\n")
        parser.exit()
