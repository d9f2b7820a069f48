"""Progress for `kale-yaml run`: a step's events as JSON lines, safe from what cells do."""

from __future__ import annotations

import contextlib
import json
import os
import sys
import time
from collections.abc import Iterator
from typing import Any

from kale_yaml.runtime.errors import CellError, StepError

# Taken when the runtime is loaded, before any cell runs: a cell that rebinds json.dumps, os.write or
# time.time, or patches the json module, must not change how progress reaches `kale-yaml run`.
_encode = json.JSONEncoder(ensure_ascii=True, default=repr).encode
_os_open, _os_write, _os_fstat, _os_close, _now = os.open, os.write, os.fstat, os.close, time.time
_EVENTS_FLAGS = os.O_WRONLY | os.O_APPEND | os.O_CREAT | getattr(os, "O_CLOEXEC", 0)


class Progress:
    """Progress for `kale-yaml run`: JSON lines appended to the file KALE_YAML_EVENTS names, if set.

    The file's absolute path, a descriptor on it and stderr are taken before the first cell runs, so a cell
    that clears the environment, changes directory, replaces sys.stdout or rebinds open/print cannot silence
    it. Events: started, cell (each cell as it begins), loading and saving (inputs and outputs), then
    finished or failed; a step that ends without either has died, in the last cell it announced.
    """

    def __init__(self, step: str, notebook: str) -> None:
        target = os.environ.get("KALE_YAML_EVENTS")
        self.step, self.notebook = step, notebook
        self.path = os.path.abspath(target) if target else None
        self.stderr = sys.stderr
        self.descriptor, self.identity = -1, (0, 0)

    def emit(self, event: str, **details: Any) -> None:
        if self.path is None:
            return
        line = (_encode({"step": self.step, "event": event, "time": _now(), **details}) + chr(10)).encode()
        for _attempt in range(2):
            try:
                descriptor = self._open()
                while line:
                    line = line[_os_write(descriptor, line) :]
                return
            except OSError as error:
                problem = error
                self.descriptor = -1  # a cell closed it: open the file again, once
        self.warn(f"kale-yaml: cannot report progress to {self.path}: {problem}")

    def _open(self) -> int:
        if self.descriptor >= 0 and _identity(_os_fstat(self.descriptor)) == self.identity:
            return self.descriptor  # else a cell closed it, and the number may be a file of the cell's now
        descriptor = _os_open(str(self.path), _EVENTS_FLAGS, 0o644)
        self.descriptor, self.identity = descriptor, _identity(_os_fstat(descriptor))
        return descriptor

    def close(self) -> None:
        if self.descriptor >= 0:
            with contextlib.suppress(OSError):
                if _identity(_os_fstat(self.descriptor)) == self.identity:
                    _os_close(self.descriptor)
        self.descriptor = -1

    def warn(self, text: str) -> None:
        with contextlib.suppress(Exception):  # a cell may have closed stderr: the event file still tells
            self.stderr.write(text + chr(10))
            self.stderr.flush()

    def cell_failed(self, report: dict[str, Any]) -> None:
        """The marker line on stderr that a step's log shows where a cell failed (kfp keeps only the log)."""
        self.warn("KALE_YAML_CELL_FAILED " + _encode(report))


def _identity(found: os.stat_result) -> tuple[int, int]:
    return found.st_dev, found.st_ino


@contextlib.contextmanager
def reporting(progress: Progress) -> Iterator[None]:
    """Reports the step's start, then its end: finished, or failed with what stopped it."""
    step, notebook = progress.step, progress.notebook
    progress.emit("started", notebook=notebook)
    try:
        yield
    except CellError as error:
        details = {"notebook": notebook, "cell": error.cell, "line": error.line, "error": error.error}
        progress.emit("failed", **details, traceback=error.traceback_text)
        raise
    except Exception as error:
        progress.emit("failed", notebook=notebook, error=str(error) or type(error).__name__)
        raise
    except BaseException as error:
        # e.g. sys.exit(0) from a value's __reduce__ while saving: an exit before the step's end is a failure,
        # and the process's exit status must say so (kfp would cache a step that exits 0 as succeeded).
        text = summary(error)
        progress.emit("failed", notebook=notebook, error=text)
        raise StepError(f"step {step!r}: {text}") from error
    else:
        progress.emit("finished")
    finally:
        progress.close()


def summary(error: BaseException) -> str:
    """One line for an exception: its type and message."""
    if isinstance(error, SystemExit):
        return f"SystemExit: {error.code} (the code exited before the step's end)"
    return f"{type(error).__name__}: {error}" if str(error) else type(error).__name__
