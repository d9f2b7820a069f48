"""`kale-yaml run` with kale-yaml's own executor: compile the local variant, plan the run, execute it."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kale_yaml import diagnostics as ky
from kale_yaml.errors import Diagnostic, RunError
from kale_yaml.load.paths import display_path
from kale_yaml.plan.project import Project
from kale_yaml.render.build_stamp import compiler_versions
from kale_yaml.render.view import PipelineView
from kale_yaml.resolve.parameters import KfpValue
from kale_yaml.run.executor import ArtifactRef, Executor, ExecutorSetup, Schedule
from kale_yaml.run.local_steps import EventFollower, RunInterrupted, stopped_by_signals, task_key
from kale_yaml.run.preload import modules_to_preload
from kale_yaml.run.run_folder import RunFolder, captured, load_pipeline
from kale_yaml.run.server_process import ServerGone, ServerProcess
from kale_yaml.run.spec_tasks import SpecPlan, read_spec
from kale_yaml.run.step_cache import StepCache
from kale_yaml.suggest import did_you_mean


@dataclass
class Selection:
    """What part of the pipeline to run: all of it, `--from STEP` (it and what follows) or `--only STEP`."""

    from_step: str | None = None
    only_step: str | None = None
    use_cache: bool = True


@dataclass
class WarmEnding:
    metrics: dict[str, float] = field(default_factory=dict)
    failure: Diagnostic | None = None
    interrupted: int | None = None
    reports: dict[str, Path] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def compile_spec(view: PipelineView, folder: RunFolder, source: str) -> SpecPlan:
    """The local variant's pipeline spec as kfp compiles it, kept in `.kale/cache/specs/` by a hash of the
    variant's code and kfp's version, so that a run of unchanged code needs no kfp in this process. It is
    taken from the pipeline function itself (kfp builds it when the function is decorated) as JSON: writing
    YAML is most of the time kfp's compiler takes, in pyyaml's pure-Python emitter."""
    memo = spec_memo(folder.cache, source)
    try:
        document = json.loads(memo.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        from google.protobuf import json_format

        with captured(folder.log):
            pipeline_func: Any = load_pipeline(folder.module, view.function)
            document = json_format.MessageToDict(pipeline_func.pipeline_spec)
        with contextlib.suppress(OSError):  # a memo: the run goes on without it
            memo.parent.mkdir(parents=True, exist_ok=True)
            staging = memo.with_suffix(".tmp")
            staging.write_text(json.dumps(document, sort_keys=True), encoding="utf-8")
            os.replace(staging, memo)
    folder.spec.write_text(json.dumps(document, indent=1, sort_keys=True), encoding="utf-8")
    return read_spec(document)


def spec_memo(cache: Path, source: str) -> Path:
    digest = hashlib.sha256(source.encode("utf-8"))
    for version in compiler_versions():
        digest.update(version.encode())
    return cache / "specs" / f"{digest.hexdigest()}.json"


def start_server(project: Project, folder: RunFolder, preload: bool) -> tuple[ServerProcess, str | None]:
    """The warm parent, started as early as the run knows what to import: importing the notebook's modules
    then overlaps building and compiling. With a note when it imports none of them, saying why."""
    pipeline = project.pipeline
    sources = [source for _, source in pipeline.prelude_sources]
    sources += [source for step in pipeline.steps for _, source in step.sources]
    step_envs = [dict(s.config.cluster.env.value if s.config.cluster.env else ()) for s in pipeline.steps]
    modules, note = modules_to_preload(sources, step_envs, [project.sidecar.parent, Path.cwd()], preload)
    common_env = step_envs[0] if step_envs and note is None else {}
    return ServerProcess(modules, {**folder.environment(), **common_env}, folder.log), note


def run_warm(
    project: Project,
    view: PipelineView,
    folder: RunFolder,
    arguments: dict[str, KfpValue],
    follower: EventFollower,
    selection: Selection,
    jobs: int,
    server: ServerProcess,
    note: str | None,
) -> WarmEnding:
    plan = compile_spec(view, folder, folder.module.read_text(encoding="utf-8"))
    steps = {task_key(step.function): step.step.name for step in view.steps}
    cache = StepCache(folder.cache, plan.name)
    schedule = plan_schedule(plan, steps, cache, selection, project.config.where.file)
    setup = ExecutorSetup(
        plan=plan,
        arguments={**plan.defaults, **arguments},
        artifacts=folder.artifacts,
        tasks_dir=folder.tasks,
        cache=cache,
        steps=steps,
        statuses=follower.statuses,
        on_update=follower.on_update,
        jobs=max(1, jobs),
    )
    executor = Executor(setup, schedule, follower, server)
    ending = WarmEnding(notes=[note] if note else [])
    try:
        with stopped_by_signals(), follower:
            executor.execute()
    except RunInterrupted as stop:
        ending.interrupted = stop.signum
    except ServerGone:
        message = "the run's warm parent process ended before any step started; see the log"
        ending.failure = ky.RUN_FAILED_EARLY.at(display_path(folder.log), message)
    follower.drain()
    ending.failure = follower.failure or ending.failure
    for port, upstream in plan.outputs.items():
        value = executor.records[upstream.task].outputs.get(upstream.key)
        if port and value is not None and ending.failure is None:
            ending.metrics = {
                str(k): float(v) for k, v in dict(value.metadata).items() if isinstance(v, int | float)
            }
    for task, record in executor.records.items():
        step = steps.get(task)
        if step is None:
            continue
        if record.state == "skipped":
            follower.statuses[step].state = "skipped"
        for value in record.outputs.values():
            if isinstance(value, ArtifactRef) and value.schema_title == "system.HTML" and value.exists():
                ending.reports[step] = Path(value.uri)
    return ending


def plan_schedule(
    plan: SpecPlan, steps: dict[str, str], cache: StepCache, selection: Selection, sidecar: str
) -> Schedule:
    """The tasks to run and those whose outputs come from their last successful run; a located error when one
    of those has none, or when the step named is not one."""
    everything = set(plan.tasks)
    named = selection.from_step or selection.only_step
    if named is None:
        return Schedule(run=everything, forced=set(), reuse={}, use_cache=selection.use_cache)
    by_step = {step: task for task, step in steps.items()}
    task = by_step.get(named)
    if task is None:
        known = ", ".join(sorted(by_step)) or "none"
        flag = "--from" if selection.from_step else "--only"
        message = f"{flag} {named}: no such step{did_you_mean(named, by_step)}; steps: {known}"
        raise RunError([ky.UNKNOWN_RUN_STEP.at(sidecar, message)])
    run = plan.downstream({task}) if selection.from_step else {task}
    reuse = {}
    missing, changed = [], []
    for name in sorted(plan.upstream_of(run), key=lambda t: steps.get(t, t)):
        wanted = plan.tasks[name].output_ports
        entry = reuse[name] = cache.last_success(name) if wanted else None
        if wanted and entry is None:
            missing.append(steps.get(name, name))
        elif entry is not None and not wanted <= set(entry.outputs):
            changed.append(steps.get(name, name))
    problems = []
    if missing:
        names = ", ".join(f"'{name}'" for name in missing)
        message = (
            f"step '{named}' needs values from {names}, which never ran to the end here;"
            " run the pipeline once without --from/--only"
        )
        problems.append(ky.NO_EARLIER_RUN.at(sidecar, message))
    if changed:
        names = ", ".join(f"'{name}'" for name in changed)
        message = (
            f"step '{named}' needs values that {names} did not hand on in its last run (the step changed"
            f" since); run --from {changed[0]}"
        )
        problems.append(ky.NO_EARLIER_RUN.at(sidecar, message))
    if problems:
        raise RunError(problems)
    return Schedule(run=run, forced=run, reuse=reuse, use_cache=selection.use_cache)


def _has_outputs(plan: SpecPlan, task: str) -> bool:
    return bool(plan.tasks[task].output_ports)

