"""Cells run as a notebook runs them: in a module __main__, tracebacks start in the cell."""

from __future__ import annotations

import ast
import builtins
import contextlib
import importlib
import inspect
import linecache
import sys
import traceback
import types
from collections.abc import Iterator
from typing import Any

from kale_yaml.runtime.errors import CellError
from kale_yaml.runtime.events import Progress, summary


@contextlib.contextmanager
def main_module() -> Iterator[dict[str, Any]]:
    """The globals of a fresh module that is __main__ while the cells run, as in a notebook: pickle, dill
    and dataclasses look the cells' classes up there. The previous __main__ comes back afterwards."""
    module = types.ModuleType("__main__")
    namespace: dict[str, Any] = module.__dict__
    namespace["__builtins__"] = builtins
    original_main = sys.modules.get("__main__")
    sys.modules["__main__"] = module
    try:
        yield namespace
    finally:
        if original_main is None:
            del sys.modules["__main__"]
        else:
            sys.modules["__main__"] = original_main


def run_cell(progress: Progress, number: int, source: str, namespace: dict[str, Any]) -> None:
    """Run one cell in namespace; a failure becomes a CellError whose traceback starts in the cell."""
    step, notebook = progress.step, progress.notebook
    progress.emit("cell", cell=number)
    filename = f"<{notebook} cell {number}>"
    linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
    try:
        code = compile(source, filename, "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT, dont_inherit=True)
        if code.co_flags & inspect.CO_COROUTINE:  # top-level await, as IPython allows
            importlib.import_module("asyncio").run(eval(code, namespace))
        else:
            exec(code, namespace)
    except BaseException as error:  # SystemExit and KeyboardInterrupt too: the cell did not run to its end
        tb = error.__traceback__
        while tb is not None and tb.tb_frame.f_code.co_filename != filename:
            tb = tb.tb_next  # drop this runtime's frames: the traceback starts in the cell
        line = tb.tb_lineno if tb is not None else getattr(error, "lineno", None) or 0
        text = "".join(traceback.format_exception(type(error), error, tb))
        problem = summary(error)
        report = {"step": step, "notebook": notebook, "cell": number, "line": line, "error": problem}
        report["traceback"] = text
        progress.cell_failed(report)
        raise CellError(step, notebook, number, line, text, problem) from None
