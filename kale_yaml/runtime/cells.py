"""Cells run as a notebook runs them: in a module __main__, tracebacks start in the cell.

What the cells change in the process's modules stays for the later cells, as in a notebook; the step's
caller, kfp's executor, gets those it writes the step's outputs list with back as they were.
"""

from __future__ import annotations

import ast
import builtins
import contextlib
import inspect
import io
import json
import linecache
import os
import sys
import traceback
import types
from collections.abc import Iterator
from typing import Any

from kale_yaml.runtime.capture import StepCapture
from kale_yaml.runtime.errors import CellError
from kale_yaml.runtime.events import Progress, summary
from kale_yaml.runtime.files import import_library

# Taken when the runtime loads: a cell may rebind them in their modules, and the next cell must still run.
_format_exception, _cached_lines = traceback.format_exception, linecache.cache
# The modules kfp's executor writes the step's outputs list with once the step's function has returned.
_HANDED_BACK = (builtins, os, os.path, io, json)
_FLAGS = ast.PyCF_ALLOW_TOP_LEVEL_AWAIT


@contextlib.contextmanager
def main_module() -> Iterator[dict[str, Any]]:
    """The globals of a fresh module that is __main__ while the cells run, as in a notebook: pickle, dill
    and dataclasses look the cells' classes up there. The previous __main__ comes back afterwards, and so
    does whatever the cells rebound or deleted in builtins, os, os.path, io and json (a cell may set
    `builtins.open = None`, and kfp's executor still has to write the step's outputs list)."""
    kept = [(vars(handed), dict(vars(handed))) for handed in _HANDED_BACK]
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
        for names, earlier in kept:
            for name, value in earlier.items():
                if names.get(name, kept) is not value:  # rebound or deleted; what the cells added stays
                    names[name] = value


def run_cell(
    progress: Progress,
    number: int,
    source: str,
    namespace: dict[str, Any],
    capture: StepCapture | None = None,
) -> None:
    """Run one cell in namespace; a failure becomes a CellError whose traceback starts in the cell.

    With a capture, the cell's outputs are kept, its last expression's value among them."""
    step, notebook = progress.step, progress.notebook
    progress.emit("cell", cell=number)
    filename = f"<{notebook} cell {number}>"
    _cached_lines[filename] = (len(source), None, source.splitlines(True), filename)
    cell = capture.start(number) if capture is not None else None
    try:
        if capture is None:
            _run(compile(source, filename, "exec", flags=_FLAGS, dont_inherit=True), namespace)
        else:
            _run_shown(source, filename, namespace, capture)
    except BaseException as error:  # SystemExit and KeyboardInterrupt too: the cell did not run to its end
        tb = error.__traceback__
        while tb is not None and tb.tb_frame.f_code.co_filename != filename:
            tb = tb.tb_next  # drop this runtime's frames: the traceback starts in the cell
        line = tb.tb_lineno if tb is not None else getattr(error, "lineno", None) or 0
        text = "".join(_format_exception(type(error), error, tb))
        problem = summary(error)
        report = {"step": step, "notebook": notebook, "cell": number, "line": line, "error": problem}
        report["traceback"] = text
        progress.cell_failed(report)
        if capture is not None and cell is not None:
            capture.finish(cell, (type(error).__name__, str(error), text.rstrip(chr(10)).split(chr(10))))
        raise CellError(step, notebook, number, line, text, problem) from None
    if capture is not None and cell is not None:
        capture.finish(cell)


def _run(code: types.CodeType, namespace: dict[str, Any]) -> Any:
    if code.co_flags & inspect.CO_COROUTINE:  # top-level await, as IPython allows
        return import_library("asyncio").run(eval(code, namespace))
    return eval(code, namespace)  # exec for a module's code, the value for an expression's


def _run_shown(source: str, filename: str, namespace: dict[str, Any], capture: StepCapture) -> None:
    """Run the cell and show its last expression's value, as a notebook does: the cell's code but its last
    statement when that is an expression, then the expression (eval gives its value). A cell that awaits
    runs as one piece (two event loops could not share its tasks), its value not shown; so does one too deep
    to compile from its syntax tree."""
    parts = None
    try:
        tree = compile(source, filename, "exec", flags=_FLAGS | ast.PyCF_ONLY_AST, dont_inherit=True)
        last = tree.body[-1] if tree.body else None
        if isinstance(last, ast.Expr) and not _silenced(source, last):
            code = compile(ast.Module(tree.body[:-1], tree.type_ignores), filename, "exec", _FLAGS, True)
            shown = compile(ast.Expression(last.value), filename, "eval", _FLAGS, True)
            parts = None if (code.co_flags | shown.co_flags) & inspect.CO_COROUTINE else (code, shown)
    except (RecursionError, MemoryError):  # Python handles trees less deep than the text it compiles
        parts = None
    if parts is None:  # from the text, as without a report
        _run(compile(source, filename, "exec", flags=_FLAGS, dont_inherit=True), namespace)
        return
    code, shown = parts
    _run(code, namespace)
    value = _run(shown, namespace)
    if value is not None:
        capture.show(value, result=True)


def _silenced(source: str, last: ast.Expr) -> bool:
    """A trailing `;` hides the value, as in a notebook."""
    lines = source.splitlines()
    end = last.end_lineno or last.lineno
    rest = lines[end - 1].encode("utf-8")[last.end_col_offset or 0 :] if end <= len(lines) else b""
    return rest.lstrip().startswith(b";")
