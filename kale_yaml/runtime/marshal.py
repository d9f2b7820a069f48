"""The kale-yaml step runtime: runs a step's notebook cells and hands variables to later steps.

Every generated component carries this file's source and exec()s it, so it imports only the standard
library and dill; NumPy, pandas, scikit-learn (joblib), PyTorch and Keras are imported only for their values.
"""

from __future__ import annotations

import ast
import builtins
import contextlib
import importlib
import inspect
import io
import json
import linecache
import os
import pickle
import shutil
import sys
import tempfile
import time
import traceback
import types
import warnings
from collections.abc import Iterable, Iterator
from typing import Any

import dill


class StepError(Exception):
    """A step could not run or could not hand on its variables."""


class CellError(StepError):
    """A notebook cell raised; str() names the step, cell and line, then shows the notebook's traceback."""

    def __init__(self, step: str, notebook: str, cell: int, line: int, traceback_text: str, error: str = ""):
        super().__init__(step, notebook, cell, line, traceback_text, error)
        self.step, self.notebook, self.cell, self.line = step, notebook, cell, line
        self.traceback_text = traceback_text
        self.error = error or traceback_text.strip().rpartition(chr(10))[2]

    def __str__(self) -> str:
        where = f"{self.notebook} cell {self.cell}, line {self.line}"
        return f"step {self.step!r} failed in {where}: {self.error}" + chr(10) + self.traceback_text


class UnserializableValueError(StepError):
    """A variable that a later step reads cannot be written as an artifact."""

    def __init__(self, step: str, name: str, type_name: str, hint: str):
        super().__init__(step, name, type_name, hint)
        self.step, self.name, self.type_name, self.hint = step, name, type_name, hint

    def __str__(self) -> str:
        article = "an" if self.type_name[:1] in "aeiou" else "a"
        where = f"step {self.step!r}: " if self.step else ""
        what = f"variable {self.name!r} ({article} {self.type_name})"
        return f"{where}{what} cannot be passed to a later step: {self.hint}"


class MetricError(StepError):
    """A variable listed under metrics is missing or not a number."""


def run_step(
    *,
    step: str,
    notebook: str,
    cells: list[tuple[int, str]],
    parameters: dict[str, object],
    inputs: dict[str, str],
    outputs: dict[str, str],
    metrics: Any = None,
    metric_names: Iterable[str] = (),
    prelude: int = 0,
) -> dict[str, object]:
    """Run cells in a fresh __main__ module holding parameters and inputs; log metrics; save outputs.

    The first `prelude` cells run before the inputs are loaded; the classes and functions they define travel
    by name, so every step (which runs the prelude too) shares one definition of each, as the notebook does.
    """
    progress = _Progress(step, notebook)
    with _reporting(progress):
        module = types.ModuleType("__main__")
        namespace: dict[str, Any] = module.__dict__
        namespace["__builtins__"] = builtins
        original_main = sys.modules.get("__main__")
        sys.modules["__main__"] = (
            module  # as in a notebook: pickle, dill and dataclasses look classes up here
        )
        _reset()
        try:
            namespace.update(parameters)
            for number, source in cells[:prelude]:
                _run_cell(progress, number, source, namespace)
            for name, value in namespace.items():
                if _top(value) == "__main__" and getattr(value, "__qualname__", None) == name:
                    _prelude[id(value)] = value
            if inputs:
                progress.emit("loading")
            for name, path in inputs.items():
                try:
                    namespace[name] = load_value(path)
                except Exception as error:
                    problem = f"cannot load variable {name!r} from {path}: {type(error).__name__}: {error}"
                    raise StepError(f"step {step!r}: {problem}") from error
            for number, source in cells[prelude:]:
                _run_cell(progress, number, source, namespace)
            progress.emit("saving")
            logged = {name: _metric(step, name, namespace) for name in metric_names}
            if metrics is not None and logged:
                for name, value in logged.items():
                    metrics.log_metric(name, value)
                # A file at the artifact's path as well: the values are readable there, and kfp's local
                # cache treats an artifact without a file as missing.
                os.makedirs(os.path.dirname(metrics.path) or ".", exist_ok=True)
                with open(metrics.path, "w", encoding="utf-8") as handle:
                    json.dump(logged, handle, indent=2, sort_keys=True)
            for name, path in outputs.items():
                if name not in namespace:
                    raise StepError(
                        f"step {step!r}: variable {name!r} is not defined after the step's cells ran"
                    )
                save_value(name, namespace[name], path, step=step)
        finally:
            if original_main is None:
                del sys.modules["__main__"]
            else:
                sys.modules["__main__"] = original_main
            _reset()
        return namespace


# Taken when the runtime is loaded, before any cell runs: a cell that rebinds json.dumps, os.write or
# time.time, or patches the json module, must not change how progress reaches `kale-yaml run`.
_encode = json.JSONEncoder(ensure_ascii=True, default=repr).encode
_os_open, _os_write, _os_fstat, _now = os.open, os.write, os.fstat, time.time
_EVENTS_FLAGS = os.O_WRONLY | os.O_APPEND | os.O_CREAT | getattr(os, "O_CLOEXEC", 0)


class _Progress:
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
                    os.close(self.descriptor)
        self.descriptor = -1

    def warn(self, text: str) -> None:
        with contextlib.suppress(Exception):  # a cell may have closed stderr: the event file still tells
            self.stderr.write(text + chr(10))
            self.stderr.flush()


def _identity(found: os.stat_result) -> tuple[int, int]:
    return found.st_dev, found.st_ino


@contextlib.contextmanager
def _reporting(progress: _Progress) -> Iterator[None]:
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
        summary = _summary(error)
        progress.emit("failed", notebook=notebook, error=summary)
        raise StepError(f"step {step!r}: {summary}") from error
    else:
        progress.emit("finished")
    finally:
        progress.close()


def _summary(error: BaseException) -> str:
    if isinstance(error, SystemExit):
        return f"SystemExit: {error.code} (the code exited before the step's end)"
    return f"{type(error).__name__}: {error}" if str(error) else type(error).__name__


def _run_cell(progress: _Progress, number: int, source: str, namespace: dict[str, Any]) -> None:
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
        summary = _summary(error)
        report = {"step": step, "notebook": notebook, "cell": number, "line": line, "error": summary}
        report["traceback"] = text
        progress.warn("KALE_YAML_CELL_FAILED " + _encode(report))
        raise CellError(step, notebook, number, line, text, summary) from None


def _metric(step: str, name: str, namespace: dict[str, Any]) -> float:
    value = namespace.get(name)
    try:
        if name in namespace and not isinstance(value, (str, bytes)):
            return float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        pass
    problem = f"is a {type(value).__name__}, not a number" if name in namespace else "is not defined"
    raise MetricError(f"step {step!r}: metric {name!r} {problem} after the step's cells ran")


def save_value(name: str, value: object, path: str, *, step: str = "") -> str:
    """Write value into directory path as one file value.FORMAT; return FORMAT (npy, pd.pkl, ..., dill)."""
    try:
        return _save(name, value, path, step)
    except OSError as error:  # e.g. the disk is full: say which variable could not be written
        where = f"step {step!r}: " if step else ""
        problem = f"cannot save variable {name!r} to {path}: {error.strerror or error}"
        raise StepError(where + problem) from error


def _save(name: str, value: object, path: str, step: str) -> str:
    created = not os.path.isdir(path)
    os.makedirs(path, exist_ok=True)
    scratch = tempfile.mkdtemp(prefix=".saving-", dir=path)
    error: Exception | None = None
    try:
        for fmt in dict.fromkeys((_format(value), "dill")):
            try:
                _write(fmt, value, os.path.join(scratch, "value." + fmt))
            except OSError:
                raise
            except Exception as failure:
                error = failure  # a native format refused (try dill) or dill did (give up)
                continue
            for old in os.listdir(path):
                if old.startswith("value."):
                    os.remove(os.path.join(path, old))
            os.replace(os.path.join(scratch, "value." + fmt), os.path.join(path, "value." + fmt))
            return fmt
        raise _unserializable(step, name, value, error)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
        if created and not os.listdir(path):
            os.rmdir(path)


def load_value(path: str) -> object:
    """Read back what save_value wrote to path (the directory, or the value file itself)."""
    if os.path.isdir(path):
        found = sorted(f for f in os.listdir(path) if f.startswith("value."))
        if len(found) != 1:
            raise StepError(f"{path}: expected one value.* file, found {found or 'none'}")
        path = os.path.join(path, found[0])
    fmt = os.path.basename(path).partition(".")[2]
    if fmt == "npy":
        return _lib("numpy").load(path, allow_pickle=False)
    if fmt == "pd.pkl":
        return _lib("pandas").read_pickle(path)
    if fmt == "joblib":
        return _lib("joblib").load(path)
    if fmt == "pt":
        torch = _lib("torch")
        return torch.load(path, map_location=None if torch.cuda.is_available() else "cpu", weights_only=False)
    if fmt == "keras":
        return _lib("keras").models.load_model(path)
    with open(path, "rb") as file:
        return _Unpickler(file).load()


def _lib(name: str) -> Any:
    return importlib.import_module(name)


def _top(obj: object) -> str:
    """The top-level package that defines obj (a class or function)."""
    return str(getattr(obj, "__module__", None) or "").split(".")[0]


def _format(value: Any) -> str:
    """The format for value, chosen by its type's module and class names (nothing is imported to decide)."""
    cls = type(value)
    bases = {(_top(c), c.__name__) for c in cls.__mro__}
    if cls.__module__ == "__main__":
        return "dill"
    if cls.__module__ == "numpy" and cls.__name__ == "ndarray":
        return "dill" if value.dtype.hasobject else "npy"
    if bases & {("keras", "Model"), ("tf_keras", "Model"), ("tensorflow", "Model")}:
        return "keras"
    fmt = "dill"
    if ("pandas", "NDFrame") in bases:
        fmt = "pd.pkl"
    elif ("sklearn", "BaseEstimator") in bases:
        fmt = "joblib"
    elif bases & {("torch", "Module"), ("torch", "Tensor")}:
        fmt = "pt"
    # These formats pickle notebook functions and classes by name, which a later step could not resolve.
    return "dill" if fmt != "dill" and _refers_to_notebook(value) else fmt


def _write(fmt: str, value: Any, file: str) -> None:
    if fmt == "keras":
        value.save(file)
        return
    with open(file, "wb") as out:
        if fmt == "npy":
            _lib("numpy").save(out, value, allow_pickle=False)
        elif fmt == "pd.pkl":
            value.to_pickle(out)
        elif fmt == "joblib":
            _lib("joblib").dump(value, out)
        elif fmt == "pt":
            _lib("torch").save(value, out)
        else:
            try:  # the C pickler is much faster, and dill reads what it writes
                _Checked(out).dump(value)
                return
            except Exception:
                out.seek(0)
                out.truncate()
            _Pickler(out).dump(value)


def _unserializable(step: str, name: str, value: object, error: Exception | None) -> UnserializableValueError:
    type_name = "class" if isinstance(value, type) else type(value).__name__
    advice = "compute it in the step that uses it, list it under 'skip', or convert it"
    if _is_open_file(value):
        type_name, advice = "open file", advice + " (e.g. keep its file name and open it again)"
    elif hasattr(value, "__next__"):
        advice += " (e.g. list(...))"
    elif isinstance(error, dill.PicklingWarning):
        advice = "define the class in the prelude: classes defined there travel by name"
    if error is not None and type_name not in str(error):  # the culprit is inside the value: name it
        advice = f"{error}; {advice}"
    return UnserializableValueError(step, name, type_name, advice)


def _is_open_file(value: object) -> bool:
    return isinstance(value, io.IOBase) and not isinstance(value, (io.BytesIO, io.StringIO))


class _NotebookRef(Exception):
    """The value refers to a class or function defined in the notebook (module __main__)."""


_ATOMIC = {str, int, float, bool, bytes, type(None)}


class _Checked(pickle.Pickler):
    """The C pickler, refusing anything the notebook defined; leaves=True: only a check, skipping arrays."""

    def __init__(self, file: Any, leaves: bool = False):
        super().__init__(file, protocol=5)
        self.leaves = leaves

    def reducer_override(self, obj: Any) -> Any:
        cls = type(obj)
        owner = obj if isinstance(obj, (type, types.FunctionType)) else cls
        if owner.__module__ == "__main__" and not _by_name(owner):
            raise _NotebookRef
        array = cls.__name__ in ("ndarray", "Tensor", "Parameter") and _top(cls) in ("numpy", "torch")
        if self.leaves and array and not getattr(obj.dtype, "hasobject", False):
            return (int, ())  # only checking: no need to go through the numbers
        if self.leaves and array and cls.__name__ == "ndarray" and set(map(type, obj.ravel())) <= _ATOMIC:
            return (int, ())  # e.g. a column of strings: plain values cannot hold notebook code
        return NotImplemented


def _refers_to_notebook(value: object) -> bool:
    try:
        _Checked(types.SimpleNamespace(write=len), leaves=True).dump(value)
    except _NotebookRef:
        return True
    except Exception:
        pass  # not for this check to decide: the format's own serializer will tell
    return False


# A class or function the prelude defined travels by name. Any other notebook class travels by value, tagged
# with a token; in a step, all values tagged alike load as one class object, so instances saved apart from
# their class still satisfy isinstance() and ==.
_prelude: dict[int, object] = {}  # id -> class or function
_classes: dict[str, type] = {}  # token -> class
_tokens: dict[int, tuple[type, str]] = {}  # id(class) -> (class, token)
_pickling: list[type] = []  # the classes being pickled by value right now: pickled inline within themselves


def _reset() -> None:
    _prelude.clear()
    _classes.clear()
    _tokens.clear()


def _by_name(obj: Any) -> bool:
    return id(obj) in _prelude and getattr(sys.modules["__main__"], obj.__qualname__, None) is obj


class _Pickler(dill.Pickler):  # type: ignore[misc]
    """dill, with notebook classes as (token, pickle); refuses open files (dill would reopen them)."""

    def __init__(self, file: Any):
        super().__init__(file, protocol=5, byref=False, recurse=False)
        self.ids: dict[int, tuple[str, bytes]] = {}

    def dump(self, obj: Any) -> None:
        with warnings.catch_warnings():  # dill warns where it pickles a class by a name no step can resolve
            warnings.simplefilter("error", dill.PicklingWarning)
            super().dump(obj)

    def persistent_id(self, obj: Any) -> str | tuple[str, bytes] | None:
        if _is_open_file(obj):
            raise TypeError("cannot pickle an open file")
        if _by_name(obj):
            return str(obj.__qualname__)
        if not isinstance(obj, type) or obj.__module__ != "__main__" or obj in _pickling:
            return None
        if id(obj) not in self.ids:
            token = _tokens.setdefault(id(obj), (obj, os.urandom(12).hex()))[1]
            _pickling.append(obj)
            try:
                blob = io.BytesIO()
                _Pickler(blob).dump(obj)
            finally:
                _pickling.pop()
            self.ids[id(obj)] = (token, blob.getvalue())
        return self.ids[id(obj)]


class _Unpickler(dill.Unpickler):  # type: ignore[misc]
    def __init__(self, file: Any):
        super().__init__(file, ignore=True)

    def persistent_load(self, pid: str | tuple[str, bytes]) -> Any:
        if isinstance(pid, str):
            return getattr(sys.modules["__main__"], pid)
        token, blob = pid
        if token not in _classes:
            cls = _Unpickler(io.BytesIO(blob)).load()
            _classes[token], _tokens[id(cls)] = cls, (cls, token)
        return _classes[token]
