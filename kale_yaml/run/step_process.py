"""One step's process in a local run: its output copied to the run's log, and its end as a container's end.

On a cluster a step is a container, and every process in it ends when its main process does. Locally a step is
a process group of its own (`start_new_session`), and it gets the same end: once the main process has exited,
whatever it left running (a forked child, a `subprocess.Popen` it never waited for) is killed. A child that
inherited the step's stdout keeps the pipe open, so the output is read on a thread of its own that the run
stops waiting for, rather than read until the end of the pipe, which such a child would put off for ever.
"""

from __future__ import annotations

import codecs
import contextlib
import io
import os
import select
import signal
import subprocess
import threading
from types import TracebackType
from typing import IO

# How long a stopped step gets between SIGTERM and SIGKILL.
STOP_GRACE_SECONDS = 5.0
# After the step's main process exited: how long its children may go on writing to the log before its
# process group is killed, and how long the killed group may take to let go of the output pipe.
LEFTOVER_GRACE_SECONDS = 1.0
_POLL_SECONDS = 0.1
_CHUNK = 1 << 16


class StepOutput:
    """Copies a step's output (stdout and stderr, one pipe) to sys.stdout line by line, as it comes.

    Lines are decoded as the text-mode pipe kfp reads does it: UTF-8 with replacement characters, and \\r\\n
    or \\r read as \\n.
    """

    def __init__(self, pipe: IO[bytes]) -> None:
        self._descriptor = pipe.fileno()
        self._decoder = io.IncrementalNewlineDecoder(
            codecs.getincrementaldecoder("utf-8")(errors="replace"), translate=True
        )
        self._pending = ""
        self._at_end = threading.Event()  # every writer has closed the pipe
        self._stop = threading.Event()  # read what the pipe holds now, then stop
        self._thread = threading.Thread(target=self._copy, name="kale-yaml-step-output", daemon=True)

    def __enter__(self) -> StepOutput:
        self._thread.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def wait_for_end(self, seconds: float) -> bool:
        """Whether every process that holds the pipe has closed it, waiting at most `seconds`."""
        return self._at_end.wait(seconds)

    def stop(self) -> None:
        """Copy what is in the pipe now and stop: a process outside the step's group may hold it for ever."""
        self._stop.set()
        self._thread.join()

    def _copy(self) -> None:
        try:
            while True:
                stopping = self._stop.is_set()
                ready, _, _ = select.select([self._descriptor], [], [], 0 if stopping else _POLL_SECONDS)
                if not ready:
                    if stopping:
                        break
                    continue
                chunk = os.read(self._descriptor, _CHUNK)
                if not chunk:
                    self._at_end.set()
                    break
                self._write(self._decoder.decode(chunk))
        except (OSError, ValueError):  # the pipe is gone: nothing more to copy
            pass
        finally:
            self._write(self._decoder.decode(b"", final=True), final=True)

    def _write(self, text: str, *, final: bool = False) -> None:
        lines = (self._pending + text).splitlines(keepends=True)
        self._pending = "" if final or not lines or lines[-1].endswith("\n") else lines.pop()
        for line in lines:
            print(line, end="")


def end_of_step(process: subprocess.Popen[bytes], output: StepOutput) -> int:
    """Wait for the step's main process; then end its process group as a container's end would; its status.

    Its children get LEFTOVER_GRACE_SECONDS to finish writing to the log, then SIGKILL, whether they hold
    the pipe or not (a child may have closed its stdout and still run). The main process is reaped only
    after that: until then its pid cannot be given to another process, so the group's id names no one else.
    """
    _wait_unreaped(process)
    output.wait_for_end(LEFTOVER_GRACE_SECONDS)
    signal_group(process, getattr(signal, "SIGKILL", signal.SIGTERM))
    output.wait_for_end(LEFTOVER_GRACE_SECONDS)
    output.stop()
    return process.wait()


def _wait_unreaped(process: subprocess.Popen[bytes]) -> None:
    if not hasattr(os, "waitid"):  # a platform without it: reap the process; its group's id may be reused
        process.wait()
        return
    with contextlib.suppress(ChildProcessError):  # reaped already: Popen.wait below returns its status
        os.waitid(os.P_PID, process.pid, os.WEXITED | os.WNOWAIT)


def stop(process: subprocess.Popen[bytes]) -> None:
    """End a step and whatever it started: SIGTERM to its process group, then SIGKILL to any survivor."""
    signal_group(process, signal.SIGTERM)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=STOP_GRACE_SECONDS)
    # The shell is gone now; a cell that ignores SIGTERM, or a process it started, may not be.
    signal_group(process, getattr(signal, "SIGKILL", signal.SIGTERM))
    process.wait()


def signal_group(process: subprocess.Popen[bytes], signum: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        if hasattr(os, "killpg"):
            os.killpg(process.pid, signum)
        else:  # no process groups (Windows): the step's own process
            process.send_signal(signum)
