"""The warm parent of a local run's steps: imports the notebook's modules once, then forks a process per task.

Started by the executor as `python -m kale_yaml.run.warm_server PRELOAD_JSON` in the run's environment. It
is single-threaded, so forking it is safe. It speaks JSON lines. On stdin it reads `{"run": ID, "job": PATH}`
(fork a task) and `{"stop": true}` (end every running task: SIGTERM to its group, SIGKILL after a grace
period, then exit); stdin's end means stop too. On stdout it writes `{"ready": ..., "failed": ...}` once the
modules are imported, then `{"started": ID, "pid": PID}` and `{"ended": ID, "status": STATUS}` (a returncode
as subprocess gives it: negative for a signal). A task's main process is reaped as soon as it ends; whatever
it left running in its group is killed then, as the end of a container kills it.
"""

from __future__ import annotations

import contextlib
import gc
import json
import os
import select
import signal
import sys
import time
from typing import Any

from kale_yaml.run.task_child import run_job

STOP_GRACE_SECONDS = 5.0
_CHUNK = 1 << 16


class WarmServer:
    def __init__(self, commands: int, replies: int) -> None:
        self.commands, self.replies = commands, replies
        self.running: dict[int, str] = {}  # pid -> task id
        self.pending = b""
        self.wake_read, wake_write = os.pipe()
        os.set_blocking(wake_write, False)
        signal.set_wakeup_fd(wake_write)
        signal.signal(signal.SIGCHLD, lambda signum, frame: None)
        self.own_fds = (commands, replies, self.wake_read, wake_write)

    def reply(self, **message: Any) -> None:
        data = (json.dumps(message) + "\n").encode()
        while data:
            data = data[os.write(self.replies, data) :]

    def serve(self) -> None:
        while True:
            ready, _, _ = select.select([self.commands, self.wake_read], [], [])
            if self.wake_read in ready:
                with contextlib.suppress(BlockingIOError):
                    os.read(self.wake_read, _CHUNK)
            self.reap()
            if self.commands in ready and not self.read_commands():
                self.stop()
                return

    def read_commands(self) -> bool:
        """Handle what arrived; False when the executor asked to stop or went away."""
        chunk = os.read(self.commands, _CHUNK)
        if not chunk:
            return False
        self.pending += chunk
        while b"\n" in self.pending:
            line, self.pending = self.pending.split(b"\n", 1)
            command = json.loads(line)
            if command.get("stop"):
                return False
            self.fork(str(command["run"]), str(command["job"]))
        return True

    def fork(self, task: str, job: str) -> None:
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:
            run_job(job, self.own_fds)
        self.running[pid] = task
        self.reply(started=task, pid=pid)

    def reap(self) -> None:
        while self.running:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            task = self.running.pop(pid, None)
            _kill_group(pid, signal.SIGKILL)
            if task is not None:
                self.reply(ended=task, status=_returncode(status))

    def stop(self) -> None:
        for pid in self.running:
            _kill_group(pid, signal.SIGTERM)
        deadline = time.monotonic() + STOP_GRACE_SECONDS
        while self.running and time.monotonic() < deadline:
            self.reap()
            time.sleep(0.05)
        for pid in self.running:
            _kill_group(pid, signal.SIGKILL)
        while self.running:
            self.reap()
            time.sleep(0.01)


def _kill_group(pid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signum)


def _returncode(status: int) -> int:
    if os.WIFSIGNALED(status):
        return -os.WTERMSIG(status)
    return os.WEXITSTATUS(status)


def preload(modules: list[str]) -> tuple[list[str], list[str]]:
    """Import what every step would import; a module that fails here fails again, located, in its step."""
    imported, failed = [], []
    import dill  # noqa: F401  the runtime's pickler
    from kfp.dsl import executor, utils  # noqa: F401  what every task runs through

    for name in modules:
        try:
            __import__(name)
        except BaseException:
            failed.append(name)
        else:
            imported.append(name)
    return imported, failed


def main() -> None:
    # Signals reach the run's executor, which stops the server with a command; the server itself must not die
    # first and leave its children unmanaged.
    for name in ("SIGINT", "SIGHUP"):
        signal.signal(getattr(signal, name), signal.SIG_IGN)
    commands, replies = sys.stdin.fileno(), os.dup(sys.stdout.fileno())
    # Nothing but replies may reach the executor's pipe: a preloaded module's prints go to the log.
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    imported, failed = preload(json.loads(sys.argv[1]) if len(sys.argv) > 1 else [])
    gc.collect()
    gc.freeze()  # the children leave the parent's objects alone: no copy-on-write from the collector
    server = WarmServer(commands, replies)
    server.reply(ready=imported, failed=failed)
    server.serve()


if __name__ == "__main__":
    main()
