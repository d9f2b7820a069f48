"""Where a local run's step reports are: each step's HTML report file, run now or taken from kfp's cache.

kfp.local hands every task's outputs (artifacts with their URIs) back from `execute_single_task`, for a task
it ran and for one it took from its cache (whose report an earlier run wrote); `task_outputs` keeps them while
the run goes on. A task that failed hands back nothing: its report, written before the step failed, is where
kfp.local keeps the task's artifacts, `artifacts/<pipeline>-<stamp>/<task>/<port>`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from kale_yaml.run.local_steps import task_key


@contextlib.contextmanager
def task_outputs() -> Iterator[dict[str, Any]]:
    """Task name -> the outputs kfp.local gave for it, for the tasks done while the block runs."""
    from kfp.local.orchestrator import task_executor

    seen: dict[str, Any] = {}
    original = task_executor.execute_single_task

    def execute(*args: Any, **kwargs: Any) -> Any:
        outputs, status = original(*args, **kwargs)
        seen[str(kwargs.get("task_name", args[0] if args else ""))] = outputs
        return outputs, status

    task_executor.execute_single_task = execute
    try:
        yield seen
    finally:
        task_executor.execute_single_task = original


def find_reports(
    artifacts: Path, outputs: Mapping[str, Any], ports: Mapping[str, tuple[str, str]]
) -> dict[str, Path]:
    """Step name -> its report file, for the steps whose report exists. ports: step -> (function, port)."""
    by_task = {task_key(task): given for task, given in outputs.items()}
    found: dict[str, Path] = {}
    for step, (function, port) in ports.items():
        task = task_key(function)
        uri = getattr((by_task.get(task) or {}).get(port), "uri", None)
        if isinstance(uri, str) and uri:
            path: Path | None = Path(uri.removeprefix("file://"))
        else:
            here = sorted(artifacts.glob(f"*/{task}/{port}"))
            path = here[-1] if here else None
        if path is not None and path.is_file():
            found[step] = path
    return found
