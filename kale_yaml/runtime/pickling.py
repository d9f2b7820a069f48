"""Pickling notebook code: what the prelude defined by name, other classes by value.

A class or function the prelude defined travels by name. Any other notebook class travels by value, tagged
with a token; in a step, all values tagged alike load as one class object, so instances saved apart from
their class still satisfy isinstance() and ==.
"""

from __future__ import annotations

import contextlib
import io
import pickle
import sys
import types
import warnings
from collections.abc import Iterator
from typing import Any

import dill

from kale_yaml.runtime.files import random_bytes

# The state of one step, emptied when it starts and ends.
_prelude: dict[int, object] = {}  # id -> class or function
_classes: dict[str, type] = {}  # token -> class
_tokens: dict[int, tuple[type, str]] = {}  # id(class) -> (class, token)
_pickling: list[type] = []  # the classes being pickled by value right now: pickled inline within themselves
_ATOMIC = {str, int, float, bool, bytes, type(None)}
# Taken when the runtime loads, as files.py takes its functions: a cell may rebind them in their modules.
_IOBase, _BytesIO, _StringIO = io.IOBase, io.BytesIO, io.StringIO
_catch_warnings, _simple_filter = warnings.catch_warnings, warnings.simplefilter


@contextlib.contextmanager
def pickling_session() -> Iterator[None]:
    """One step's run: nothing a previous step defined is taken for the prelude's or for a known class."""
    _reset()
    try:
        yield
    finally:
        _reset()


def _reset() -> None:
    _prelude.clear()
    _classes.clear()
    _tokens.clear()


def remember_prelude(namespace: dict[str, Any]) -> None:
    """Call after the prelude ran: its classes and functions will travel by name."""
    for name, value in namespace.items():
        if top_package(value) == "__main__" and getattr(value, "__qualname__", None) == name:
            _prelude[id(value)] = value


def top_package(obj: object) -> str:
    """The top-level package that defines obj (a class or function)."""
    return str(getattr(obj, "__module__", None) or "").split(".")[0]


def is_open_file(value: object) -> bool:
    return isinstance(value, _IOBase) and not isinstance(value, (_BytesIO, _StringIO))


def _by_name(obj: Any) -> bool:
    return id(obj) in _prelude and getattr(sys.modules["__main__"], obj.__qualname__, None) is obj


class _NotebookRef(Exception):
    """The value refers to a class or function defined in the notebook (module __main__)."""


class FastPickler(pickle.Pickler):
    """The C pickler, refusing anything the notebook defined; leaves=True: only a check, skipping arrays."""

    def __init__(self, file: Any, leaves: bool = False):
        super().__init__(file, protocol=5)
        self.leaves = leaves

    def reducer_override(self, obj: Any) -> Any:
        cls = type(obj)
        owner = obj if isinstance(obj, (type, types.FunctionType)) else cls
        if owner.__module__ == "__main__" and not _by_name(owner):
            raise _NotebookRef
        array = cls.__name__ in ("ndarray", "Tensor", "Parameter") and top_package(cls) in ("numpy", "torch")
        if self.leaves and array and not getattr(obj.dtype, "hasobject", False):
            return (int, ())  # only checking: no need to go through the numbers
        if self.leaves and array and cls.__name__ == "ndarray" and set(map(type, obj.ravel())) <= _ATOMIC:
            return (int, ())  # e.g. a column of strings: plain values cannot hold notebook code
        return NotImplemented


def refers_to_notebook(value: object) -> bool:
    """Whether value holds a class or function of the notebook's that cannot travel by name."""
    try:
        FastPickler(types.SimpleNamespace(write=len), leaves=True).dump(value)
    except _NotebookRef:
        return True
    except Exception:
        pass  # not for this check to decide: the format's own serializer will tell
    return False


class NotebookPickler(dill.Pickler):  # type: ignore[misc]
    """dill, with notebook classes as (token, pickle); refuses open files (dill would reopen them)."""

    def __init__(self, file: Any):
        super().__init__(file, protocol=5, byref=False, recurse=False)
        self.ids: dict[int, tuple[str, bytes]] = {}

    def dump(self, obj: Any) -> None:
        with _catch_warnings():  # dill warns where it pickles a class by a name no step can resolve
            _simple_filter("error", dill.PicklingWarning)
            super().dump(obj)

    def persistent_id(self, obj: Any) -> str | tuple[str, bytes] | None:
        if is_open_file(obj):
            raise TypeError("cannot pickle an open file")
        if _by_name(obj):
            return str(obj.__qualname__)
        if not isinstance(obj, type) or obj.__module__ != "__main__" or obj in _pickling:
            return None
        if id(obj) not in self.ids:
            token = _tokens.setdefault(id(obj), (obj, random_bytes(12).hex()))[1]
            _pickling.append(obj)
            try:
                blob = _BytesIO()
                NotebookPickler(blob).dump(obj)
            finally:
                _pickling.pop()
            self.ids[id(obj)] = (token, blob.getvalue())
        return self.ids[id(obj)]


class NotebookUnpickler(dill.Unpickler):  # type: ignore[misc]
    def __init__(self, file: Any):
        super().__init__(file, ignore=True)

    def persistent_load(self, pid: str | tuple[str, bytes]) -> Any:
        if isinstance(pid, str):
            return getattr(sys.modules["__main__"], pid)
        token, blob = pid
        if token not in _classes:
            cls = NotebookUnpickler(_BytesIO(blob)).load()
            _classes[token], _tokens[id(cls)] = cls, (cls, token)
        return _classes[token]
