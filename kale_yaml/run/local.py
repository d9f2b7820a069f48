"""`kale-yaml run` on this machine: the generated pipeline executed by kfp's own local runner.

kfp.local runs each step as a subprocess of the current Python (SubprocessRunner without a venv), so
nothing is installed; its file cache re-uses a step whose generated code, image and inputs are unchanged
(an unchanged upstream step keeps its output URIs, so only edited steps and what follows them re-run).
The step runtime appends progress events to a JSON-lines file named by KALE_YAML_EVENTS, which is how
we follow the run without parsing kfp's logs (local_steps.py follows them, runs each step's process in
kfp's place and stops the steps when the run is stopped). Volumes are their mount paths as they are on
this machine (local_volumes.py); snapshots are folder copies under .kale/snapshots/RUN/, made by a small
component of the local variant that runs in the pipeline's own order (KALE_YAML_SNAPSHOTS names the folder).
"""

from __future__ import annotations

import ast
import contextlib
import datetime
import importlib.metadata
import importlib.util
import os
import re
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kale_yaml import diagnostics as ky
from kale_yaml.errors import Diagnostic, RunError
from kale_yaml.load.paths import DEFAULT_OUTPUT_DIR, display_path
from kale_yaml.plan.dag import Pipeline
from kale_yaml.plan.project import Project
from kale_yaml.render.generate import render
from kale_yaml.render.view import PipelineView, pipeline_view
from kale_yaml.resolve.cluster import CLUSTER_ONLY
from kale_yaml.resolve.parameters import KfpValue, parse_params, pipeline_arguments
from kale_yaml.run import local_volumes
from kale_yaml.run.local_steps import (
    EventFollower,
    RunInterrupted,
    StepProcesses,
    StepStatus,
    stopped_by_signals,
    supervising,
)

EVENTS_ENV = "KALE_YAML_EVENTS"
SNAPSHOTS_ENV = "KALE_YAML_SNAPSHOTS"


@dataclass
class RunResult:
    run_dir: Path
    steps: dict[str, StepStatus]
    metrics: dict[str, float]
    ignored: list[str]
    succeeded: bool
    failure: Diagnostic | None = None
    log_path: Path | None = None
    volumes: list[str] = field(default_factory=list)  # how each volume was mapped on this machine
    snapshots: list[Path] = field(default_factory=list)  # .kale/snapshots/RUN/STEP/VOLUME copies made
    interrupted: int | None = None  # the signal that stopped the run


@dataclass
class RunOptions:
    params: dict[str, str] = field(default_factory=dict)
    use_cache: bool = True
    on_update: Callable[[StepStatus], None] | None = None


def missing_packages(pipeline: Pipeline) -> list[str]:
    """Distributions the sidecar lists and modules the cells import that this environment lacks."""
    missing: set[str] = set()
    for step in pipeline.steps:
        for requirement in step.config.packages:
            name = re.split(r"[\s<>=!~;\[]", requirement.strip(), maxsplit=1)[0]
            try:
                importlib.metadata.distribution(name)
            except importlib.metadata.PackageNotFoundError:
                missing.add(f"{name} (listed in packages)")
    sources = [source for _, source in pipeline.prelude_sources]
    sources += [source for step in pipeline.steps for _, source in step.sources]
    # modules a `%%writefile NAME.py` cell writes exist once the step that writes them has run
    written = {
        what.removeprefix("file ").removesuffix(".py") for step in pipeline.steps for _, what in step.sets
    }
    for module in sorted({m for source in sources for m in imported_modules(source)}):
        if module in sys.stdlib_module_names or module == "__future__" or module in written:
            continue
        if importlib.util.find_spec(module) is None:
            missing.add(f"{module} (imported by the notebook)")
    return sorted(missing)


def ignored_settings(pipeline: Pipeline) -> list[str]:
    notes: list[str] = []
    defaults = [k for k in CLUSTER_ONLY if k in pipeline.config.cluster_defaults]
    if defaults:
        notes.append(f"pipeline: {', '.join(defaults)} (cluster only)")
    for step in pipeline.steps:
        keys = [k for k in CLUSTER_ONLY if k in step.config.cluster_keys]
        if keys:
            notes.append(f"step '{step.name}': {', '.join(keys)} (cluster only)")
        if step.config.volumes is not None:
            notes.append(f"step '{step.name}': volumes (locally every step sees every volume's path)")
    if any(step.config.packages for step in pipeline.steps):
        notes.append("packages: not installed locally; this environment's are used")
    images = sorted({step.config.image for step in pipeline.steps})
    notes.append(f"image {', '.join(images)}: steps run in this Python ({sys.version.split()[0]})")
    return notes


def run_local(project: Project, options: RunOptions, view: PipelineView | None = None) -> RunResult:
    """Run the pipeline here. `view` is the one `build` rendered, when it did: the local variant is rendered
    from it rather than from a new one."""
    pipeline = project.pipeline
    arguments = pipeline_arguments(parse_params(pipeline.config.parameters, options.params))
    missing = missing_packages(pipeline)
    if missing:
        raise RunError(
            [
                ky.MISSING_PACKAGES.at(
                    project.config.where.file,
                    "this environment lacks "
                    + ", ".join(missing)
                    + "; install them (kale-yaml installs nothing into your environment)",
                )
            ]
        )
    view = view or pipeline_view(project)
    source = render(view, local=True)
    volumes = local_volumes.prepare(project.config)
    try:
        return _execute(view, project, options, arguments, source, volumes)
    finally:
        volumes.cleanup()


@dataclass(frozen=True)
class _RunFolder:
    """`.kale/runs/NAME-STAMP/`: the local variant it runs, kfp's artifacts, events and log."""

    kale_dir: Path
    run_dir: Path

    @property
    def module(self) -> Path:
        return self.run_dir / "pipeline.local.py"

    @property
    def events(self) -> Path:
        return self.run_dir / "events.jsonl"

    @property
    def log(self) -> Path:
        return self.run_dir / "run.log"

    @property
    def snapshots(self) -> Path:
        return self.kale_dir / "snapshots" / self.run_dir.name


def _run_folder(project: Project, source: str) -> _RunFolder:
    kale_dir = project.sidecar.parent / DEFAULT_OUTPUT_DIR
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S-%f")
    folder = _RunFolder(kale_dir, kale_dir / "runs" / f"{project.config.name}-{stamp}")
    folder.run_dir.mkdir(parents=True, exist_ok=False)
    folder.module.write_text(source, encoding="utf-8")
    folder.events.touch()
    return folder


@dataclass
class _Ending:
    """How kfp.local's call of the pipeline function ended."""

    outputs: Any = None
    kfp_failure: str | None = None  # kfp.local's message for a task that failed
    missing_output: Diagnostic | None = None
    interrupted: int | None = None  # the signal that stopped the run


def _execute(
    view: PipelineView,
    project: Project,
    options: RunOptions,
    arguments: dict[str, KfpValue],
    source: str,
    volumes: local_volumes.LocalVolumes,
) -> RunResult:
    pipeline = project.pipeline
    folder = _run_folder(project, source)
    statuses = {step.name: StepStatus(step.name) for step in pipeline.steps}
    pipeline_func = _load_pipeline(folder.module, view.function)

    from kfp import local

    local.init(
        runner=local.SubprocessRunner(use_venv=False),
        pipeline_root=str(folder.run_dir / "artifacts"),
        raise_on_error=True,
        enable_caching=options.use_cache,
        cache_root=str(folder.kale_dir / "cache"),
    )
    follower = EventFollower(folder.events, statuses, options.on_update, display_path(folder.log))
    processes = StepProcesses(follower, {step.function: step.step.name for step in view.steps})
    ending = _call(pipeline_func, arguments, folder, follower, processes)
    follower.drain()
    failure = follower.failure or ending.missing_output
    if ending.kfp_failure is not None and failure is None:
        reason = _strip_ansi(ending.kfp_failure)
        failure = ky.RUN_FAILED_EARLY.at(
            display_path(folder.log), f"the run failed before a step's cells ran: {reason}; see the log"
        )
    _settle(statuses, failure is None, options.on_update)
    logged = _metrics(ending.outputs) if failure is None else {}
    order = pipeline.config.metrics.names if pipeline.config.metrics else ()
    return RunResult(
        run_dir=folder.run_dir,
        steps=statuses,
        metrics={name: logged[name] for name in order if name in logged},
        ignored=ignored_settings(pipeline),
        succeeded=failure is None,
        failure=failure,
        log_path=folder.log,
        volumes=volumes.notes,
        snapshots=local_volumes.snapshot_folders(folder.snapshots),
        interrupted=ending.interrupted,
    )


def _call(
    pipeline_func: Any,
    arguments: dict[str, KfpValue],
    folder: _RunFolder,
    follower: EventFollower,
    processes: StepProcesses,
) -> _Ending:
    """Call the pipeline function as kfp.local runs it, with the run's environment, log and signals."""
    ending = _Ending()
    # Absolute: a cell may change the working directory.
    environment = {EVENTS_ENV: str(folder.events.absolute()), SNAPSHOTS_ENV: str(folder.snapshots.absolute())}
    try:
        with (
            stopped_by_signals(),
            _environment(environment),
            follower,
            _captured(folder.log),
            supervising(processes),
        ):
            try:
                ending.outputs = pipeline_func(**arguments)
            except RuntimeError as exc:  # kfp.local's way of saying a task failed
                ending.kfp_failure = str(exc)
            except ValueError as exc:
                ending.missing_output = _missing_output(processes, str(exc), follower.log_name)
                if ending.missing_output is None:
                    raise
    except RunInterrupted as stop:
        ending.interrupted = stop.signum
        follower.interrupted(processes.current, stop.signum)
    return ending


def _settle(
    statuses: dict[str, StepStatus], succeeded: bool, on_update: Callable[[StepStatus], None] | None
) -> None:
    """The steps the run left waiting: taken from kfp's cache when it succeeded, else not run."""
    for status in statuses.values():
        if (
            succeeded and status.state == "waiting"
        ):  # kfp took its outputs from the cache: our runtime never ran
            status.state = "cached"
            if on_update:
                on_update(status)
        elif not succeeded and status.state in ("waiting", "running"):
            status.state = "not run"


def _missing_output(processes: StepProcesses, error: str, log_name: str) -> Diagnostic | None:
    """kfp's error for an output that a task it counted as succeeded lacks, naming the step; else None."""
    found = re.search(r"Tried to get output '([^']+)' from task '([^']+)'", error)
    if found is None:
        return None
    port, task = found.groups()
    step = processes.step_of_task(task) or task
    message = (
        f"step '{step}' handed on no output '{port}' though kfp counted it as succeeded"
        " (an entry of kfp's cache from an older kale-yaml?); run again with --no-cache"
    )
    return ky.MISSING_OUTPUT.at(log_name, message)


def imported_modules(source: str) -> set[str]:
    """Top-level modules a cell's code imports (absolute imports only)."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return set()
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module.split(".")[0])
    return found


def _strip_ansi(text: str) -> str:
    return re.sub(r"\x1b\[[0-9;]*m", "", text)


def _metrics(outputs: Any) -> dict[str, float]:
    metadata = getattr(getattr(outputs, "output", None), "metadata", None)
    if metadata is None:
        metadata = getattr(outputs, "metadata", None) or {}
    return {str(k): float(v) for k, v in dict(metadata).items() if isinstance(v, int | float)}


def _load_pipeline(path: Path, function: str) -> Any:
    name = f"_kale_yaml_local_{abs(hash(str(path)))}"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:  # pragma: no cover - a real file always has a spec
        raise RuntimeError(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return getattr(module, function)


@contextlib.contextmanager
def _environment(values: dict[str, str]) -> Iterator[None]:
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@contextlib.contextmanager
def _captured(log_path: Path) -> Iterator[None]:
    """kfp.local prints every step's output and its own logs; they go to run.log, not the terminal."""
    import logging

    root = logging.getLogger()
    with open(log_path, "a", encoding="utf-8") as log:
        saved_handlers, saved_level = root.handlers[:], root.level
        handler = logging.StreamHandler(log)
        try:
            with contextlib.redirect_stdout(log), contextlib.redirect_stderr(log):
                root.handlers = [handler]
                yield
        finally:
            root.handlers, root.level = saved_handlers, saved_level
