"""`kale-yaml run --runner kfp`: the local variant executed by kfp's own local runner, kfp.local.

kfp.local runs each step as a subprocess of the current Python (SubprocessRunner without a venv), one at a
time, so nothing is installed; its file cache re-uses a step whose generated code, image and inputs are
unchanged. local_steps.py follows the runtime's events, runs each step's process in kfp's place and stops the
steps when the run is stopped. It stays as the reference the default executor is checked against.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from kale_yaml import diagnostics as ky
from kale_yaml.errors import Diagnostic
from kale_yaml.load.paths import display_path
from kale_yaml.render.view import PipelineView
from kale_yaml.resolve.parameters import KfpValue
from kale_yaml.run.local_reports import task_outputs
from kale_yaml.run.local_steps import (
    EventFollower,
    RunInterrupted,
    StepProcesses,
    StepStatus,
    stopped_by_signals,
    supervising,
)
from kale_yaml.run.run_folder import RunFolder, captured, environment, load_pipeline


@dataclass
class KfpEnding:
    """How kfp.local's call of the pipeline function ended."""

    outputs: Any = None
    task_outputs: dict[str, Any] = field(default_factory=dict)  # kfp.local's outputs of each task done
    failure: Diagnostic | None = None
    interrupted: int | None = None  # the signal that stopped the run


def run_with_kfp(
    view: PipelineView,
    folder: RunFolder,
    arguments: dict[str, KfpValue],
    follower: EventFollower,
    use_cache: bool,
) -> KfpEnding:
    from kfp import local

    pipeline_func: Any = load_pipeline(folder.module, view.function)
    local.init(
        runner=local.SubprocessRunner(use_venv=False),
        pipeline_root=str(folder.artifacts),
        raise_on_error=True,
        enable_caching=use_cache,
        cache_root=str(folder.kale_dir / "kfp-cache"),
    )
    processes = StepProcesses(follower, {step.function: step.step.name for step in view.steps})
    ending = KfpEnding()
    kfp_failure: str | None = None
    try:
        with (
            stopped_by_signals(),
            environment(folder.environment()),
            follower,
            captured(folder.log),
            supervising(processes),
            task_outputs() as ending.task_outputs,
        ):
            try:
                ending.outputs = pipeline_func(**arguments)
            except RuntimeError as exc:  # kfp.local's way of saying a task failed
                kfp_failure = str(exc)
            except ValueError as exc:
                ending.failure = _missing_output(processes, str(exc), follower.log_name)
                if ending.failure is None:
                    raise
    except RunInterrupted as stop:
        ending.interrupted = stop.signum
        follower.interrupted(processes.current, stop.signum)
    follower.drain()
    if kfp_failure is not None and follower.failure is None and ending.failure is None:
        reason = re.sub(r"\x1b\[[0-9;]*m", "", kfp_failure)
        ending.failure = ky.RUN_FAILED_EARLY.at(
            display_path(folder.log), f"the run failed before a step's cells ran: {reason}; see the log"
        )
    return ending


def settle_cached(
    statuses: dict[str, StepStatus], succeeded: bool, on_update: Callable[[StepStatus], None] | None
) -> None:
    """The steps kfp.local left waiting: taken from its cache when the run succeeded, else not run."""
    for status in statuses.values():
        # Left waiting in a run that succeeded: kfp took its outputs from its cache; our runtime never ran.
        if succeeded and status.state == "waiting":
            status.state = "cached"
            if on_update:
                on_update(status)


def metrics_of(outputs: Any) -> dict[str, float]:
    metadata = getattr(getattr(outputs, "output", None), "metadata", None)
    if metadata is None:
        metadata = getattr(outputs, "metadata", None) or {}
    return {str(k): float(v) for k, v in dict(metadata).items() if isinstance(v, int | float)}


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
