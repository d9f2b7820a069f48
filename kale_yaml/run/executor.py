"""kale-yaml's own local executor: the compiled local variant's DAG, warm forked steps, parallel, own cache.

It schedules the tasks of the compiled spec itself, starting every task whose upstream tasks are done, up to
`jobs` at once. Each task runs in a process forked from the warm server (warm_server.py), which imported the
notebook's modules once, and goes through kfp's own executor with the executor input kfp.local would build for
it (kfp.local's own helpers build it), so what runs here is what runs in a container. A task's outputs are
read back from its executor output file. Caching, `--from` and `--only` are step_cache.py's entries.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kale_yaml.load.paths import display_path
from kale_yaml.run.local_steps import EventFollower, RunInterrupted, StepStatus
from kale_yaml.run.server_process import ServerProcess
from kale_yaml.run.spec_tasks import SpecPlan, Task, Upstream, task_root
from kale_yaml.run.step_cache import Entry, Output, StepCache, content_hash, entry_key, place

_READ_SECONDS = 0.2


@dataclass
class Schedule:
    """What this run does with each task."""

    run: set[str]  # tasks to run (or take from the cache when `use_cache`)
    forced: set[str]  # tasks to run whatever the cache holds
    # Tasks whose outputs come from their last successful run (`--from`, `--only`): that run's entry, None for
    # a task that has no outputs.
    reuse: dict[str, Entry | None]
    use_cache: bool = True
    write_cache: bool = True


@dataclass
class TaskRecord:
    state: str = "waiting"  # waiting | running | done | cached | failed | skipped
    outputs: dict[str, Any] = field(default_factory=dict)  # port -> dsl.Artifact or parameter value
    key: str | None = None


@dataclass
class ExecutorSetup:
    plan: SpecPlan
    arguments: dict[str, Any]  # the pipeline's parameter values
    artifacts: Path  # kfp's pipeline root for this run
    tasks_dir: Path  # one folder per task: its module, job and log
    cache: StepCache
    steps: dict[str, str]  # task -> step name (snapshot tasks are not steps)
    statuses: dict[str, StepStatus]  # by step name
    on_update: Callable[[StepStatus], None] | None
    jobs: int


class Executor:
    def __init__(
        self, setup: ExecutorSetup, schedule: Schedule, follower: EventFollower, server: ServerProcess
    ) -> None:
        self.setup, self.schedule, self.follower, self.server = setup, schedule, follower, server
        follower.guesses_step = False  # every ending names its task: parallel steps are never guessed
        self.records = {name: TaskRecord() for name in setup.plan.tasks}
        stamp = time.strftime("%Y-%m-%d-%H-%M-%S")
        self.resource = f"{setup.plan.name}-{stamp}"
        self.executor_inputs: dict[str, Any] = {}  # task -> its ExecutorInput message
        self.running: dict[str, int] = {}  # task -> pid
        self.failed = False

    # -- the run -------------------------------------------------------------------------------------------
    def execute(self) -> None:
        for name in self.setup.plan.tasks:
            if name not in self.schedule.run and name not in self.schedule.reuse:
                self.records[name].state = "skipped"
        for name, entry in self.schedule.reuse.items():
            self._reuse(name, entry)
        try:
            self._loop()
        except RunInterrupted as stop:
            self.server.stop()
            stopped: list[str | None] = [self.setup.steps[t] for t in self.running if t in self.setup.steps]
            for step in stopped or [None]:
                self.follower.interrupted(step, stop.signum)
            raise

    def _loop(self) -> None:
        while True:
            if not self.failed:
                self._start_ready()
            if not self.running:
                return
            for message in self.server.read(_READ_SECONDS):
                if "started" in message:
                    self.running[str(message["started"])] = int(message["pid"])
                elif "ended" in message:
                    self._ended(str(message["ended"]), int(message["status"]))
            # The warm parent died (killed from outside): end what it left, as it would.
            if self.server.closed:
                for name, pid in list(self.running.items()):
                    if pid:
                        with contextlib.suppress(ProcessLookupError, PermissionError):
                            os.killpg(pid, signal.SIGKILL)
                    self._ended(name, -signal.SIGKILL)

    def _start_ready(self) -> None:
        progress = True
        while progress:
            progress = False
            for name, task in self.setup.plan.tasks.items():
                record = self.records[name]
                if record.state != "waiting" or not self._inputs_ready(task):
                    continue
                if self._from_cache(task):
                    progress = True  # what waited for it may be ready now
                    continue
                if len(self.running) >= self.setup.jobs:
                    return
                self._launch(task)

    def _inputs_ready(self, task: Task) -> bool:
        return all(self.records[u].state in ("done", "cached") for u in task.upstream)

    # -- a task's inputs and cache -------------------------------------------------------------------------
    def _arguments(self, task: Task) -> dict[str, Any]:
        arguments: dict[str, Any] = {}
        for port, value in task.parameters.items():
            if isinstance(value, Upstream):
                source = self.setup.arguments if not value.task else self.records[value.task].outputs
                arguments[port] = source[value.key]
            else:
                arguments[port] = value
        for port, upstream in task.artifacts.items():
            arguments[port] = self.records[upstream.task].outputs[upstream.key]
        return arguments

    def _key(self, task: Task, arguments: dict[str, Any]) -> str:
        component = json.dumps(
            {
                "spec": task.component,
                "source": task.source,
                "function": task.function,
                "env": task.env,
            },
            sort_keys=True,
        )
        parameters = {p: v for p, v in arguments.items() if p not in task.artifacts}
        artifacts = {
            port: (artifact.schema_title, content_hash(Path(artifact.uri), artifact.metadata))
            for port, artifact in arguments.items()
            if port in task.artifacts
        }
        return entry_key(component, parameters, artifacts)

    def _from_cache(self, task: Task) -> bool:
        """Take the task's outputs from the cache when an entry matches; whether it did."""
        record = self.records[task.name]
        if record.key is not None:
            return False  # looked up already: it waits for a free slot, and its inputs cannot change
        record.key = self._key(task, self._arguments(task))
        if not (task.cache and self.schedule.use_cache) or task.name in self.schedule.forced:
            return False
        entry = self.setup.cache.find(record.key)
        if entry is None or set(entry.outputs) != task.output_ports:
            return False
        self._take(task, entry, "cached")
        self.setup.cache.remember(task.name, record.key)  # the latest run's values, for --from and debug
        return True

    def _reuse(self, name: str, entry: Entry | None) -> None:
        if entry is None:  # a task with nothing to hand on (plan_schedule refused a missing entry)
            self.records[name].state = "done"
            return
        self._take(self.setup.plan.tasks[name], entry, "cached")

    def _take(self, task: Task, entry: Entry, state: str) -> None:
        root = Path(task_root(self.setup.artifacts, self.resource, task.name))
        outputs: dict[str, Any] = {}
        for port, output in entry.outputs.items():
            if output.schema_title is None:
                outputs[port] = output.value
                continue
            place(entry, port, root / port)
            outputs[port] = ArtifactRef(port, output.schema_title, str(root / port), output.metadata)
        record = self.records[task.name]
        record.outputs, record.state = outputs, state
        step = self.setup.steps.get(task.name)
        if step is not None:
            status = self.setup.statuses[step]
            status.state = "cached"
            if self.setup.on_update:
                self.setup.on_update(status)

    # -- running a task ------------------------------------------------------------------------------------
    def _launch(self, task: Task) -> None:
        from kfp.local import executor_input_utils

        self.server.ensure_ready()
        root = task_root(self.setup.artifacts, self.resource, task.name)
        component = task.component_message()
        arguments = {port: _as_kfp(value) for port, value in self._arguments(task).items()}
        executor_input = executor_input_utils.construct_executor_input(
            component_spec=component, arguments=arguments, task_root=root, block_input_artifact=False
        )
        self.executor_inputs[task.name] = executor_input
        folder = self.setup.tasks_dir / task.name
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "ephemeral_component.py").write_text(task.source, encoding="utf-8")
        job = {
            "module_dir": str(folder.absolute()),
            "function": task.function,
            "executor_input": executor_input_utils.executor_input_to_dict(executor_input, component),
            "env": task.env,
            "log": str((folder / "log.txt").absolute()),
        }
        step = self.setup.steps.get(task.name)
        if step is not None:
            self.follower.step_logs[step] = display_path(folder / "log.txt")
        job_path = folder / "job.json"
        job_path.write_text(json.dumps(job), encoding="utf-8")
        self.records[task.name].state = "running"
        self.running[task.name] = 0
        if not self.server.send_run(task.name, job_path):  # the warm parent is gone: _loop ends the task
            self.server.closed = True

    def _ended(self, name: str, returncode: int) -> None:
        from kfp.local import executor_output_utils

        self.running.pop(name, None)
        task, record = self.setup.plan.tasks[name], self.records[name]
        step = self.setup.steps.get(name)
        status = self.follower.ended(step, returncode)
        if status != 0 and step is None:
            log = display_path(self.setup.tasks_dir / name / "log.txt")
            self.follower.task_failed(name, status, log)
        if status == 0:
            produced = executor_output_utils.get_outputs_for_task(
                self.executor_inputs[name], task.component_message()
            )
            outputs = {port: _as_ref(value) for port, value in produced.items()}
            missing = task.output_ports - set(outputs)
            missing |= {p for p, a in outputs.items() if isinstance(a, ArtifactRef) and not a.exists()}
            if not missing:
                record.outputs, record.state = outputs, "done"
                self._store(task, record)
                return
            self.follower.missing_outputs(step, sorted(missing))
        record.outputs, record.state = self._written_pages(task), "failed"
        self.failed = True

    def _written_pages(self, task: Task) -> dict[str, Any]:
        """The HTML pages a failed task wrote before it failed (its report shows where): kept for the run's
        report, never for the cache or a later task."""
        root = Path(task_root(self.setup.artifacts, self.resource, task.name))
        artifacts = task.component.get("outputDefinitions", {}).get("artifacts", {})
        pages = {}
        for port, spec in artifacts.items():
            title = spec.get("artifactType", {}).get("schemaTitle", "")
            if title == "system.HTML" and (root / port).is_file():
                pages[port] = ArtifactRef(port, title, str(root / port), {})
        return pages

    def _store(self, task: Task, record: TaskRecord) -> None:
        """Keep a finished task's outputs. Also for `cache: false`, which only keeps them from being taken for
        a later run: `--from`, `--only` and `debug` take the last successful run's values from here."""
        if not self.schedule.write_cache or record.key is None:
            return
        produced: dict[str, tuple[Path | None, Output]] = {}
        for port, value in record.outputs.items():
            if isinstance(value, ArtifactRef):
                produced[port] = (Path(value.uri), Output(value.schema_title, value.metadata))
            else:
                produced[port] = (None, Output(None, {}, value))
        self.setup.cache.store(record.key, task.name, produced)


@dataclass(frozen=True)
class ArtifactRef:
    """An artifact a task produced or took from the cache, as plain data: kfp's class is made only to hand it
    to a task that runs, so a run whose steps all come from the cache needs no kfp."""

    name: str
    schema_title: str
    uri: str  # a local path, as kfp.local's URIs are
    metadata: dict[str, Any]

    def exists(self) -> bool:
        return os.path.exists(self.uri)


def _as_kfp(value: Any) -> Any:
    if not isinstance(value, ArtifactRef):
        return value
    from kfp.dsl.executor import create_artifact_instance

    runtime_artifact = {
        "name": value.name,
        "type": {"schemaTitle": value.schema_title},
        "uri": value.uri,
        "metadata": value.metadata,
    }
    return create_artifact_instance(runtime_artifact)


def _as_ref(value: Any) -> Any:
    """kfp's artifact as plain data (a parameter's value stays as it is)."""
    uri = getattr(value, "uri", None)
    if uri is None or not hasattr(value, "schema_title"):
        return value
    return ArtifactRef(str(value.name), str(value.schema_title), str(uri), dict(value.metadata))
