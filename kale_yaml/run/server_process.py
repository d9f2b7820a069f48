"""The executor's side of the warm server (warm_server.py): start it, send it tasks, read what it says.

The server is started as soon as the run knows which modules to import, so that importing them overlaps
rendering and compiling; the executor waits for it only when the first task must run, and a run whose every
step comes from the cache stops it without waiting.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

from kale_yaml import diagnostics as ky
from kale_yaml.errors import RunError
from kale_yaml.load.paths import display_path
from kale_yaml.run.local_steps import why_not_started

SERVER_MODULE = "kale_yaml.run.warm_server"
_CHUNK = 1 << 16


class ServerGone(Exception):
    """The warm server ended before it was ready: its log says why."""


class ServerProcess:
    def __init__(self, preload: list[str], environment: dict[str, str], log: Path) -> None:
        with open(log, "ab") as log_file:
            try:
                self.process = subprocess.Popen(
                    [sys.executable, "-m", SERVER_MODULE, json.dumps(preload)],
                    stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE,
                    stderr=log_file,
                    env={**os.environ, **environment, "_KFP_RUNTIME": "true"},
                    start_new_session=True,  # Ctrl-C reaches kale-yaml, which stops the server's tasks itself
                )
            except OSError as error:
                why = why_not_started(error)
                message = f"the run's warm parent process (which starts every step) could not start: {why}"
                raise RunError([ky.STEP_NOT_STARTED.at(display_path(log), message)]) from None
        assert self.process.stdin is not None and self.process.stdout is not None
        self.commands = self.process.stdin
        self.descriptor = self.process.stdout.fileno()
        self.pending = b""
        self.closed = False
        self.ready: dict[str, Any] | None = None
        self.early: list[dict[str, Any]] = []  # what came with the ready message

    def ensure_ready(self) -> dict[str, Any]:
        while self.ready is None:
            if self.closed:
                raise ServerGone()
            for message in self.read(0.2):
                if "ready" in message and self.ready is None:
                    self.ready = message
                else:
                    self.early.append(message)
        return self.ready

    def send_run(self, task: str, job: Path) -> bool:
        """Ask for the task to be forked; False when the server is gone (killed from outside)."""
        try:
            self.commands.write((json.dumps({"run": task, "job": str(job.absolute())}) + "\n").encode())
            self.commands.flush()
        except (OSError, ValueError):
            return False
        return True

    def read(self, seconds: float) -> list[dict[str, Any]]:
        """The messages that arrive within `seconds` (fewer when the server has ended)."""
        if self.early:
            found, self.early = self.early, []
            return found
        if self.closed:
            return []
        ready, _, _ = select.select([self.descriptor], [], [], seconds)
        if ready:
            chunk = os.read(self.descriptor, _CHUNK)
            if not chunk:
                self.closed = True
            self.pending += chunk
        lines = self.pending.split(b"\n")
        self.pending = lines.pop()
        return [json.loads(line) for line in lines if line.strip()]

    def stop(self) -> list[dict[str, Any]]:
        """Ask the server to end every task and itself; the messages it sent until it ended. A server that is
        still importing has started no task: it is killed rather than waited for."""
        if self.ready is None and self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.process.pid, signal.SIGKILL)
        try:
            self.commands.write(b'{"stop": true}\n')
            self.commands.close()
        except (OSError, ValueError):
            pass  # the server is gone, or was told already
        found: list[dict[str, Any]] = []
        while not self.closed:
            found += self.read(0.2)
        self.process.stdout.close()  # type: ignore[union-attr]
        self.process.wait()
        return found
