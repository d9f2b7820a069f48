"""A task in a process forked from the warm server: its process group, its log, then kfp's own executor.

What the child does is what kfp's lightweight-component container does (`kfp.dsl.executor_main`): load the
component's module from a file, build `kfp.dsl.executor.Executor` from the executor input and execute it,
which writes the outputs and the executor output file. It then ends without the interpreter's teardown, which
walks every module the warm parent imported: the step's own objects are collected (closing the files its cells
left open), atexit handlers run, standard streams are flushed, and the process exits at once.
"""

from __future__ import annotations

import atexit
import contextlib
import gc
import json
import logging
import os
import signal
import sys
import traceback
from typing import Any, NoReturn

_SIGNALS = ("SIGINT", "SIGTERM", "SIGHUP", "SIGCHLD", "SIGPIPE")
# Taken before any cell runs: a cell may rebind os._exit or gc.collect, and the task must still end.
_exit, _collect, _run_exit_functions = os._exit, gc.collect, atexit._run_exitfuncs


def run_job(job_path: str, server_fds: tuple[int, ...]) -> NoReturn:
    """In the forked child: run the task `job_path` describes and exit with its status."""
    status = 1
    try:
        job = _enter_task(job_path, server_fds)
        status = _execute(job)
    except BaseException:  # the step's own failure is reported by its runtime; this is the log's record
        with contextlib.suppress(Exception):
            traceback.print_exc()
    _leave(status)


def _enter_task(job_path: str, server_fds: tuple[int, ...]) -> dict[str, Any]:
    # A session of its own: the step and whatever it starts are one process group, which the server ends
    # when the step's main process exits (as a container ends), and which a stopped run ends as a whole.
    os.setsid()
    signal.set_wakeup_fd(-1)
    for name in _SIGNALS:
        if hasattr(signal, name):
            signal.signal(getattr(signal, name), signal.SIG_DFL)
    with open(job_path, encoding="utf-8") as handle:
        job: dict[str, Any] = json.load(handle)
    # Opened before the server's descriptors (stdin among them) are closed, so neither lands on 0, 1 or 2.
    null = os.open(os.devnull, os.O_RDONLY)  # a cell that reads input gets EOF instead of waiting for ever
    log = os.open(job["log"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    for descriptor in server_fds:
        if descriptor > 2:
            with contextlib.suppress(OSError):
                os.close(descriptor)
    os.dup2(null, 0)
    os.dup2(log, 1)
    os.dup2(log, 2)
    for descriptor in (null, log):
        if descriptor > 2:
            os.close(descriptor)
    # Only what the step registers runs at its end, not the warm parent's handlers it inherited.
    atexit._clear()
    os.environ.update(job["env"])
    sys.argv = [os.path.join(job["module_dir"], "ephemeral_component.py")]
    return job


def _execute(job: dict[str, Any]) -> int:
    from kfp.dsl import executor, utils

    # As kfp's executor_main: its log lines go to the step's log.
    logging.basicConfig(
        stream=sys.stdout, format="[KFP Executor %(asctime)s %(levelname)s]: %(message)s", level=logging.INFO
    )
    module = utils.load_module(module_name="ephemeral_component", module_directory=job["module_dir"])
    function = getattr(module, job["function"])
    executor.Executor(executor_input=job["executor_input"], function_to_execute=function).execute()
    return 0


def _leave(status: int) -> NoReturn:
    with contextlib.suppress(BaseException):
        _collect()  # the cells' namespace is garbage now: its open files are flushed and closed
    with contextlib.suppress(BaseException):
        _run_exit_functions()
    for stream in (sys.__stdout__, sys.__stderr__, sys.stdout, sys.stderr):
        with contextlib.suppress(BaseException):
            stream.flush()  # type: ignore[union-attr]
    _exit(status)
