"""How `kale-yaml run` follows its steps: the runtime's events, each step's process, and stopping a run.

kfp.local starts each step with `subprocess_task_handler.run_local_subprocess` and keeps only whether it
exited 0. For the run we put `StepProcesses.run` in its place, which starts the same command and knows more:
- which step a process is (kfp's `--function_to_execute` argument), and its exit code or signal;
- a step has succeeded only when its runtime reported "finished". A process that exits 0 without that
  (os._exit(0), a signal handler's exit, ...) is reported to kfp as failed, so kfp neither caches nor hands
  on the outputs it never wrote: a cache entry exists only for a step that finished;
- every step runs in a process group of its own, which ends with the step's main process, as a container
  does (step_process.py), and which a stopped run ends: no step, nor a child it left, outlives the run;
- a step whose process cannot be started (its command too long for the system, no `sh`) fails, named.
"""

from __future__ import annotations

import contextlib
import errno
import itertools
import json
import os
import re
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

from kale_yaml import diagnostics as ky
from kale_yaml.diagnostics import Kind
from kale_yaml.errors import Diagnostic
from kale_yaml.run.step_process import StepOutput, end_of_step, stop

# What a step that died was doing, by the runtime's last event.
_DOING = {
    "cell": " during this cell",
    "loading": " while loading its inputs,",
    "saving": " while saving its outputs,",
}


@dataclass
class StepStatus:
    name: str
    state: str = "waiting"  # waiting | running | done | cached | failed | interrupted | not run
    seconds: float | None = None
    started: float | None = None


class RunInterrupted(BaseException):
    """SIGINT, SIGTERM or SIGHUP reached `kale-yaml run`. A BaseException, as KeyboardInterrupt is, so no
    `except Exception` on its way out of kfp stops it."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


@contextlib.contextmanager
def stopped_by_signals() -> Iterator[None]:
    """While the run goes on, the first SIGINT, SIGTERM or SIGHUP raises RunInterrupted in the main thread.

    A signal sent to `kale-yaml` alone (not its group) would otherwise end it and leave its steps running.
    Later signals are ignored, so that stopping the steps is not itself cut short.
    """
    if threading.current_thread() is not threading.main_thread():
        yield  # Python delivers signals to the main thread only: whoever runs us there handles them
        return
    fired = False

    def stop(signum: int, frame: FrameType | None) -> None:
        nonlocal fired
        if not fired:
            fired = True
            raise RunInterrupted(signum)

    saved: dict[int, Any] = {}
    for name in ("SIGINT", "SIGTERM", "SIGHUP"):
        if hasattr(signal, name):
            number = getattr(signal, name)
            saved[number] = signal.signal(number, stop)
    try:
        yield
    finally:
        for number, handler in saved.items():
            signal.signal(number, signal.SIG_DFL if handler is None else handler)


def signal_name(signum: int) -> str:
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"


def why_not_started(error: OSError) -> str:
    """Why the system refused to start a process, in words."""
    if error.errno == errno.E2BIG:
        return (
            "its command and environment are larger than this system lets a process start with"
            f" ({error.strerror})"
        )
    return f"cannot run {error.filename!r}: {error.strerror}" if error.filename else str(error)


def exit_text(returncode: int) -> str:
    """A step's exit status in words. The step's Python runs under `sh`, which reports a child killed by
    signal N as exit status 128+N."""
    signum = -returncode if returncode < 0 else returncode - 128
    if returncode < 0 or (returncode > 128 and signum in signal.valid_signals()):
        return f"killed by signal {signal_name(signum)}"
    return f"exit code {returncode}"


def task_key(name: str) -> str:
    """A function or task name as kfp names a task ('s2_step' is task 's2-step')."""
    return re.sub(r"[^0-9a-z]+", "-", name.lower()).strip("-")


class EventFollower:
    """Reads the runtime's events while the run goes on, reports step changes, and decides each step's end."""

    def __init__(
        self,
        path: Path,
        statuses: dict[str, StepStatus],
        on_update: Callable[[StepStatus], None] | None,
        log_name: str,
    ) -> None:
        self.path = path
        self.statuses = statuses
        self.on_update = on_update
        self.log_name = log_name
        self.failure: Diagnostic | None = None
        self.notebooks: dict[str, str] = {}  # step -> notebook, from its "started" event
        self.cells: dict[str, int] = {}  # step -> the cell it announced last
        self.phases: dict[str, str] = {}  # step -> "cell", "loading" or "saving"
        self.step_logs: dict[str, str] = {}  # step -> its own log, where a runner keeps one per step
        # kfp.local names no step when a process ends; with one step at a time the running one is it. A runner
        # that knows which task ended (and runs several at once) turns that guess off.
        self.guesses_step = True
        self._offset = 0
        self._lock = threading.Lock()  # the follower's thread and the step processes' ends both drain
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._follow, name="kale-yaml-events", daemon=True)

    def __enter__(self) -> EventFollower:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _follow(self) -> None:
        while not self._stop.wait(0.1):
            self.drain()

    def drain(self) -> None:
        with self._lock, open(self.path, encoding="utf-8") as events:
            events.seek(self._offset)
            while True:
                line = events.readline()
                if not line.endswith("\n"):
                    break
                self._offset += len(line.encode("utf-8"))
                self._handle(json.loads(line))

    def ended(self, step: str | None, returncode: int) -> int:
        """A step's process has exited: the exit status kfp should see (non-zero unless it finished)."""
        self.drain()
        with self._lock:
            name = step if step in self.statuses else self._guess()
            if name is None:
                return returncode  # not a step: a snapshot task (its failure has an event of its own)
            status = self.statuses[name]
            if status.state == "failed":
                return returncode or 1
            if status.state == "done" and returncode == 0:
                return 0
            self._fail(status, self._ended_early(status, returncode))
            return returncode or 1

    def not_started(self, step: str | None, error: OSError) -> int:
        """A step's process could not be started: the exit status kfp should see (non-zero)."""
        with self._lock:
            name = step if step in self.statuses else None
            who = "a task of the run" if name is None else f"step '{name}'"
            message = f"{who} could not start: {why_not_started(error)}"
            failure = ky.STEP_NOT_STARTED.at(self._log(name), message)
            print(f"kale-yaml: {failure.message}")  # the run's log: kfp's own report of the task follows
            if name is None:
                self._set_failure(failure)
            else:
                self._fail(self.statuses[name], failure)
            return 1

    def task_failed(self, task: str, returncode: int, log: str) -> None:
        """A task that is not a step (a snapshot) ended badly; its own event, when it sent one, says more."""
        self.drain()
        with self._lock:
            message = f"task '{task}' of the run ended with {exit_text(returncode)}; see its log"
            self._set_failure(ky.STEP_ENDED_EARLY.at(log, message))

    def missing_outputs(self, step: str | None, ports: list[str]) -> None:
        """A task whose process ended well left outputs unwritten."""
        with self._lock:
            name = step if step in self.statuses else None
            who = "a task of the run" if name is None else f"step '{name}'"
            message = f"{who} ended without writing its outputs {', '.join(ports)}; see the log"
            failure = ky.MISSING_OUTPUT.at(self._log(name), message)
            if name is None:
                self._set_failure(failure)
            else:
                self._fail(self.statuses[name], failure)

    def _log(self, step: str | None) -> str:
        return self.step_logs.get(step or "", self.log_name)

    def interrupted(self, step: str | None, signum: int) -> None:
        """The run was stopped by signum while step (None: no step) ran."""
        self.drain()
        with self._lock:
            name = step if step in self.statuses else self._guess()
            what = f"the run was stopped by {signal_name(signum)}"
            if name is None:
                self._set_failure(ky.RUN_INTERRUPTED.at(self.log_name, what))
                return
            status = self.statuses[name]
            message = f"{what} while step '{name}' ran; the step was stopped"
            self._set_failure(self._located(ky.RUN_INTERRUPTED, name, message))
            self._change(status, "interrupted", time.time())

    def _guess(self) -> str | None:
        return self._running() if self.guesses_step else None

    def _running(self) -> str | None:
        running = [status.name for status in self.statuses.values() if status.state == "running"]
        return running[0] if len(running) == 1 else None

    def _ended_early(self, status: StepStatus, returncode: int) -> Diagnostic:
        name, how = status.name, exit_text(returncode)
        if status.state == "done":
            message = f"step '{name}' finished its cells, then its process ended with {how}; see the log"
            return ky.STEP_ENDED_EARLY.at(self._log(name), message)
        if status.state == "waiting":
            message = f"step '{name}' ended before its cells ran: {how}; see the log"
            return ky.STEP_ENDED_EARLY.at(self._log(name), message)
        doing = _DOING.get(self.phases.get(name, ""), "")
        return self._located(
            ky.STEP_ENDED_EARLY, name, f"step '{name}' ended{doing} without finishing: {how}"
        )

    def _located(self, kind: Kind, step: str, message: str) -> Diagnostic:
        """At the step's current cell when it is running one, else in its notebook (else the run's log)."""
        notebook = self.notebooks.get(step)
        if notebook is None:
            return kind.at(self._log(step), message)
        cell = self.cells.get(step) if self.phases.get(step) == "cell" else None
        return kind.at(notebook, message, cell=cell)

    def _handle(self, event: dict[str, Any]) -> None:
        kind = event.get("event")
        if kind == "snapshot_failed":
            folder, volume = str(event.get("folder")), event.get("volume")
            when = "after the run" if folder == "after_run" else f"before step '{folder}'"
            message = f"the snapshot of volume '{volume}' {when} failed: {event.get('error', '')}"
            self._set_failure(ky.SNAPSHOT_FAILED.at(str(event.get("path", "")), message))
            return
        status = self.statuses.get(str(event.get("step")))
        if status is None:
            return
        name = status.name
        if kind == "started":
            self.notebooks[name] = str(event.get("notebook", ""))
            status.started = float(event["time"])
            self._change(status, "running")
        elif kind == "cell":
            self.cells[name], self.phases[name] = int(event["cell"]), "cell"
        elif kind in ("loading", "saving"):
            self.phases[name] = str(kind)
        elif kind == "finished":
            self._change(status, "done", float(event["time"]))
        elif kind == "failed":
            error = str(event.get("error", "")).removeprefix(f"step '{name}': ")
            message = f"step '{name}' failed: {error}\n{event.get('traceback', '')}".rstrip()
            notebook, cell, line = str(event.get("notebook", "")), event.get("cell"), event.get("line")
            self._set_failure(ky.STEP_FAILED.at(notebook, message, cell=cell, line=line))
            self._change(status, "failed", float(event["time"]))

    def _fail(self, status: StepStatus, failure: Diagnostic) -> None:
        self._set_failure(failure)
        self._change(status, "failed", time.time())

    def _set_failure(self, failure: Diagnostic) -> None:
        if self.failure is None:  # the first failure caused the rest
            self.failure = failure

    def _change(self, status: StepStatus, state: str, when: float | None = None) -> None:
        status.state = state
        if when is not None and status.started is not None:
            status.seconds = when - status.started
        if self.on_update:
            self.on_update(status)


class StepProcesses:
    """Runs kfp.local's step subprocesses in its place (see the module's docstring)."""

    def __init__(self, follower: EventFollower, steps_by_function: dict[str, str]) -> None:
        self.follower = follower
        self.steps = {task_key(function): step for function, step in steps_by_function.items()}
        self.current: str | None = None  # the step whose process runs now

    def run(self, full_command: list[str], env_vars: dict[str, str] | None = None) -> int:
        """kfp's run_local_subprocess: the step's output goes to stdout (the run's log); its exit status."""
        function = _argument(full_command, "--function_to_execute")
        step = self.steps.get(task_key(function)) if function else None
        environment = {**os.environ, **(env_vars or {})}
        try:
            process = subprocess.Popen(
                full_command,
                stdin=subprocess.DEVNULL,  # a cell that reads input gets EOF instead of waiting for ever
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                env=environment,
                start_new_session=True,  # its own process group: ending the step ends what it started
            )
        except OSError as error:
            return self.follower.not_started(step, error)
        assert process.stdout is not None  # stdout=PIPE
        with process, StepOutput(process.stdout) as output:
            self.current = step
            try:
                returncode = end_of_step(process, output)
            except BaseException:
                stop(process)
                raise
            finally:
                output.stop()
                print("\n")
        self.current = None
        return self.follower.ended(step, returncode)

    def step_of_task(self, task: str) -> str | None:
        return self.steps.get(task_key(task))


@contextlib.contextmanager
def supervising(processes: StepProcesses) -> Iterator[None]:
    """kfp.local runs its step subprocesses through processes.run while the block runs."""
    from kfp.local import subprocess_task_handler

    original = subprocess_task_handler.run_local_subprocess
    subprocess_task_handler.run_local_subprocess = processes.run
    try:
        yield
    finally:
        subprocess_task_handler.run_local_subprocess = original


def _argument(command: list[str], flag: str) -> str | None:
    for name, value in itertools.pairwise(command):
        if name == flag:
            return value
    return None
