"""Values between steps: one file per variable, its format chosen by the value's type.

NumPy arrays as .npy, pandas objects as pickles of their own, scikit-learn estimators with joblib, PyTorch
with torch.save, Keras models as .keras, anything else with dill; those libraries are imported only to read
or write their values. Files are made and moved with the functions files.py took when the runtime loaded, so
that what a cell does to builtins.open or the os module cannot stop a step from saving or loading values.
"""

from __future__ import annotations

from typing import Any

import dill

from kale_yaml.runtime.errors import StepError, UnserializableValueError
from kale_yaml.runtime.files import (
    file_name,
    import_library,
    is_folder,
    join_path,
    list_folder,
    make_folders,
    open_file,
    remove_file,
    remove_folder,
    remove_tree,
    replace_file,
    scratch_folder,
)
from kale_yaml.runtime.pickling import (
    FastPickler,
    NotebookPickler,
    NotebookUnpickler,
    is_open_file,
    refers_to_notebook,
    top_package,
)


def save_value(name: str, value: object, path: str, *, step: str = "") -> str:
    """Write value into directory path as one file value.FORMAT; return FORMAT (npy, pd.pkl, ..., dill)."""
    try:
        return _save(name, value, path, step)
    except OSError as error:  # e.g. the disk is full: say which variable could not be written
        where = f"step {step!r}: " if step else ""
        problem = f"cannot save variable {name!r} to {path}: {error.strerror or error}"
        raise StepError(where + problem) from error


def _save(name: str, value: object, path: str, step: str) -> str:
    created = not is_folder(path)
    make_folders(path)
    scratch = scratch_folder(path, ".saving-")
    error: Exception | None = None
    try:
        for fmt in dict.fromkeys((_format(value), "dill")):
            try:
                _write(fmt, value, join_path(scratch, "value." + fmt))
            except OSError:
                raise
            except Exception as failure:
                error = failure  # a native format refused (try dill) or dill did (give up)
                continue
            for old in list_folder(path):
                if old.startswith("value."):
                    remove_file(join_path(path, old))
            replace_file(join_path(scratch, "value." + fmt), join_path(path, "value." + fmt))
            return fmt
        raise _unserializable(step, name, value, error)
    finally:
        remove_tree(scratch)
        if created and not list_folder(path):
            remove_folder(path)


def load_value(path: str) -> object:
    """Read back what save_value wrote to path (the directory, or the value file itself)."""
    if is_folder(path):
        found = sorted(f for f in list_folder(path) if f.startswith("value."))
        if len(found) != 1:
            raise StepError(f"{path}: expected one value.* file, found {found or 'none'}")
        path = join_path(path, found[0])
    fmt = file_name(path).partition(".")[2]
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
    with open_file(path, "rb") as file:
        return NotebookUnpickler(file).load()


def _lib(name: str) -> Any:
    return import_library(name)


def _format(value: Any) -> str:
    """The format for value, chosen by its type's module and class names (nothing is imported to decide)."""
    cls = type(value)
    bases = {(top_package(c), c.__name__) for c in cls.__mro__}
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
    return "dill" if fmt != "dill" and refers_to_notebook(value) else fmt


def _write(fmt: str, value: Any, file: str) -> None:
    if fmt == "keras":
        value.save(file)
        return
    with open_file(file, "wb") as out:
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
                FastPickler(out).dump(value)
                return
            except Exception:
                out.seek(0)
                out.truncate()
            NotebookPickler(out).dump(value)


def _unserializable(step: str, name: str, value: object, error: Exception | None) -> UnserializableValueError:
    type_name = "class" if isinstance(value, type) else type(value).__name__
    advice = "compute it in the step that uses it, list it under 'skip', or convert it"
    if is_open_file(value):
        type_name, advice = "open file", advice + " (e.g. keep its file name and open it again)"
    elif hasattr(value, "__next__"):
        advice += " (e.g. list(...))"
    elif isinstance(error, dill.PicklingWarning):
        advice = "define the class in the prelude: classes defined there travel by name"
    if error is not None and type_name not in str(error):  # the culprit is inside the value: name it
        advice = f"{error}; {advice}"
    return UnserializableValueError(step, name, type_name, advice)
