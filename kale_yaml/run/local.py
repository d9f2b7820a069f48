"""`kale-yaml run` on this machine: the generated pipeline's local variant, run by kale-yaml's own executor.

The default executor (executor.py, warm_runner.py) runs the compiled local variant's DAG itself: parallel
steps forked from a warm parent that imported the notebook's modules once, each through kfp's own executor,
with a cache keyed by code, parameters and input content. `--runner kfp` runs the same variant with kfp's own
local runner instead (kfp_runner.py). Both follow the steps through the runtime's events (local_steps.py).
Volumes are their mount paths as they are on this machine (local_volumes.py); snapshots are folder copies
under .kale/snapshots/RUN/, made by a small component of the local variant that runs in the pipeline's order.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from kale_yaml import diagnostics as ky
from kale_yaml.errors import Diagnostic, RunError
from kale_yaml.load.paths import DEFAULT_OUTPUT_DIR, display_path
from kale_yaml.plan.dag import Pipeline
from kale_yaml.plan.project import Project
from kale_yaml.render.generate import render
from kale_yaml.render.view import PipelineView, pipeline_view
from kale_yaml.resolve.cluster import CLUSTER_ONLY
from kale_yaml.resolve.parameters import parse_params, pipeline_arguments
from kale_yaml.run import local_volumes
from kale_yaml.run.environment import missing_packages
from kale_yaml.run.kfp_runner import metrics_of, run_with_kfp, settle_cached
from kale_yaml.run.local_reports import find_reports
from kale_yaml.run.local_steps import EventFollower, StepStatus
from kale_yaml.run.run_folder import new_run_folder
from kale_yaml.run.server_process import ServerProcess
from kale_yaml.run.warm_runner import Selection, run_warm, start_server


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
    reports: dict[str, Path] = field(default_factory=dict)  # step -> its HTML report artifact
    notes: list[str] = field(default_factory=list)  # how the run ran here (preloading, ...)


@dataclass
class RunOptions:
    params: dict[str, str] = field(default_factory=dict)
    use_cache: bool = True
    on_update: Callable[[StepStatus], None] | None = None
    runner: str = "kale"  # kale: kale-yaml's own executor; kfp: kfp.local
    jobs: int = field(default_factory=lambda: os.cpu_count() or 1)
    preload: bool = True
    from_step: str | None = None
    only_step: str | None = None


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


class LocalRun:
    """A run on this machine, started before the build so that its warm parent's imports overlap it.

    `start_local_run` checks the parameters and the environment, makes the run's folder and starts the warm
    parent; `execute` runs the pipeline; `close` ends a run that never executed (a failed build)."""

    def __init__(self, project: Project, options: RunOptions) -> None:
        pipeline = project.pipeline
        self.project, self.options = project, options
        self.arguments = pipeline_arguments(parse_params(pipeline.config.parameters, options.params))
        missing = missing_packages(pipeline)
        if missing:
            message = (
                f"this environment lacks {', '.join(missing)};"
                " install them (kale-yaml installs nothing into your environment)"
            )
            raise RunError([ky.MISSING_PACKAGES.at(project.config.where.file, message)])
        if options.runner == "kfp" and (options.from_step or options.only_step):
            message = "--from and --only need kale-yaml's own executor; leave out --runner kfp"
            raise RunError([ky.UNKNOWN_RUN_STEP.at(project.config.where.file, message)])
        self.volumes = local_volumes.prepare(project.config)
        self.kale_dir = kale_dir = project.sidecar.parent / DEFAULT_OUTPUT_DIR
        made = [p for p in (kale_dir, kale_dir / "runs") if not p.exists()]
        self.folder = new_run_folder(project)
        self.made = [*made, self.folder.run_dir]  # taken back when the run ends before it executes
        self.server: ServerProcess | None = None
        self.note: str | None = None
        try:
            if options.runner == "kale":
                self.server, self.note = start_server(project, self.folder, options.preload)
        except BaseException:
            self.close()
            raise

    def execute(self, view: PipelineView | None = None) -> RunResult:
        """Run the pipeline. `view` is the one `build` rendered, when it did: the local variant is rendered
        from it rather than from a new one."""
        made, self.made = self.made, []
        try:
            view = view or pipeline_view(self.project)
            self.folder.module.write_text(render(view, local=True), encoding="utf-8")
            return self._execute(view, self.volumes)
        except RunError:
            self.made = made  # refused before any step ran (--from without values): no run folder stays
            raise
        finally:
            self.close()

    def close(self) -> None:
        """End the warm parent and the volumes' preparation; a run that never executed leaves no folder."""
        if self.server is not None:
            self.server.stop()
            self.server = None
        self.volumes.cleanup()
        for folder in reversed(self.made):
            if folder == self.kale_dir:
                with contextlib.suppress(OSError):  # `.kale/` itself only when nothing else was put there
                    folder.rmdir()
            else:
                shutil.rmtree(folder, ignore_errors=True)
        self.made = []

    def _execute(self, view: PipelineView, volumes: local_volumes.LocalVolumes) -> RunResult:
        project, options, folder = self.project, self.options, self.folder
        pipeline = project.pipeline
        statuses = {step.name: StepStatus(step.name) for step in pipeline.steps}
        follower = EventFollower(folder.events, statuses, options.on_update, display_path(folder.log))
        result = RunResult(
            run_dir=folder.run_dir,
            steps=statuses,
            metrics={},
            ignored=ignored_settings(pipeline),
            succeeded=False,
            log_path=folder.log,
            volumes=volumes.notes,
        )
        if self.server is None:
            kfp_ending = run_with_kfp(view, folder, self.arguments, follower, options.use_cache)
            result.failure = follower.failure or kfp_ending.failure
            result.interrupted = kfp_ending.interrupted
            settle_cached(statuses, result.failure is None, options.on_update)
            logged = metrics_of(kfp_ending.outputs) if result.failure is None else {}
            ports = {s.step.name: (s.function, s.report_port) for s in view.steps if s.report_port}
            result.reports = find_reports(folder.artifacts, kfp_ending.task_outputs, ports)
        else:
            selection = Selection(options.from_step, options.only_step, options.use_cache)
            ending = run_warm(
                project, view, folder, self.arguments, follower, selection, options.jobs, self.server,
                self.note,
            )
            result.failure, result.interrupted = ending.failure, ending.interrupted
            logged, result.reports, result.notes = ending.metrics, ending.reports, ending.notes
        _settle(statuses, result.failure is None and result.interrupted is None)
        order = pipeline.config.metrics.names if pipeline.config.metrics else ()
        result.metrics = {name: logged[name] for name in order if name in logged}
        result.succeeded = result.failure is None and result.interrupted is None
        result.snapshots = local_volumes.snapshot_folders(folder.snapshots)
        return result


def start_local_run(project: Project, options: RunOptions) -> LocalRun:
    return LocalRun(project, options)


def run_local(project: Project, options: RunOptions, view: PipelineView | None = None) -> RunResult:
    """Run the pipeline here (start_local_run, then execute)."""
    return start_local_run(project, options).execute(view)


def _settle(statuses: dict[str, StepStatus], succeeded: bool) -> None:
    """Steps a failed or stopped run never started are not run."""
    if not succeeded:
        for status in statuses.values():
            if status.state in ("waiting", "running"):
                status.state = "not run"
