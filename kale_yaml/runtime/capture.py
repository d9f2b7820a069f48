"""What a step's cells show, captured per cell as a notebook keeps it: streams, displayed values, figures.

While a cell runs, sys.stdout and sys.stderr write through to the step's own streams (its log) and into the
cell's outputs, unless a cell replaced them (in a notebook that hides the cell's prints too). `display()` is
a builtin, as IPython makes it. matplotlib runs headless (MPLBACKEND=agg, inherited by child processes), and
pyplot, once imported, draws with an Agg backend of ours whose show() keeps the open figures as PNG and
closes them, as inline matplotlib does; figures still open when a cell ends are kept and closed the same way.
"""

from __future__ import annotations

import builtins
import contextlib
import importlib.util
import os
import sys
import types
from collections.abc import Iterator
from typing import Any

from kale_yaml.runtime.files import import_library
from kale_yaml.runtime.outputs import CellOutputs
from kale_yaml.runtime.shown import close_figure, figure_png, mime_bundle, open_figures, plain_text

# Taken when the runtime loads: a cell may rebind them in their modules.
_sys, _environ, _builtin_names, _meta_path = sys, os.environ, vars(builtins), sys.meta_path
_find_spec, _Module = importlib.util.find_spec, types.ModuleType
_BACKEND = "_kale_yaml_inline"  # our backend's module, as matplotlib finds it: module://_kale_yaml_inline
_STREAMS = ("stdout", "stderr")


class _Tee:
    """sys.stdout or sys.stderr while a cell runs: text goes to the stream, and into the cell's outputs."""

    def __init__(self, target: Any, name: str, capture: StepCapture) -> None:
        self._target, self._name, self._capture = target, name, capture

    def write(self, text: Any) -> Any:
        written = self._target.write(text)  # first: what the stream refuses, the cell sees refused
        cell = self._capture.current
        if cell is not None and isinstance(text, str):
            cell.write(self._name, text)
        return written

    def writelines(self, lines: Any) -> None:
        for line in lines:
            self.write(line)

    def flush(self) -> Any:
        return self._target.flush()

    def __getattr__(self, name: str) -> Any:  # fileno, isatty, encoding, buffer, ...: the stream's own
        if name in ("_target", "_name", "_capture"):  # not set yet (a copy): no endless lookup
            raise AttributeError(name)
        return getattr(self._target, name)


class StepCapture:
    """The outputs of a step's cells, in the order they ran."""

    def __init__(self) -> None:
        self.cells: list[CellOutputs] = []
        self.current: CellOutputs | None = None
        self.streams = {name: getattr(_sys, name) for name in _STREAMS}  # the step's own, taken first
        self.tees: dict[str, _Tee] = {}
        self.figures_shown: set[int] = set()
        self.switched = False  # pyplot draws with our backend: once, so that a cell may choose another

    def start(self, number: int) -> CellOutputs:
        cell = CellOutputs(number, len(self.cells) + 1)
        self.cells.append(cell)
        self.current, self.tees, self.figures_shown = cell, {}, set()
        for name, stream in self.streams.items():
            if stream is not None and getattr(_sys, name, None) is stream:
                self.tees[name] = _Tee(stream, name, self)
                setattr(_sys, name, self.tees[name])
        _use_our_backend()
        return cell

    def finish(self, cell: CellOutputs, error: tuple[str, str, list[str]] | None = None) -> None:
        """The cell ended: its streams back, the tails of long streams, its open figures, then its error."""
        for name, tee in self.tees.items():
            if getattr(_sys, name, None) is tee:
                setattr(_sys, name, self.streams[name])
        self.tees = {}
        cell.close()
        self.show_figures()
        if error is not None:
            cell.error(*error)
        self.current = None

    def show(self, value: object, result: bool = False) -> None:
        """A value displayed in the current cell (result: the cell's last expression)."""
        cell = self.current
        if cell is None:
            return
        try:
            data, metadata = mime_bundle(value)
        except Exception as error:  # e.g. savefig of a figure that cannot be drawn: the cell goes on
            data, metadata = {"text/plain": f"[kale-yaml: cannot show the value: {plain_text(error)}]"}, {}
        if type(value).__name__ == "Figure":
            self.figures_shown.add(id(value))
        cell.show(data, metadata, result)

    def show_figures(self, *args: Any, **kwargs: Any) -> None:
        """pyplot.show() in our backend, and the end of a cell: every open figure as PNG, then closed."""
        for figure in open_figures():
            try:
                if id(figure) not in self.figures_shown and self.current is not None:
                    png = figure_png(figure)
                    data = {"text/plain": plain_text(figure), **({"image/png": png} if png else {})}
                    self.current.show(data, {})
            except Exception as error:
                if self.current is not None:
                    self.current.write("stderr", f"[kale-yaml: cannot draw a figure: {plain_text(error)}]\n")
            finally:
                close_figure(figure)

    def display(self, *values: Any, raw: bool = False, **_options: Any) -> None:
        """`display()` as IPython's: each value shown in the cell's outputs (raw: values are mime dicts)."""
        for value in values:
            if raw and isinstance(value, dict) and self.current is not None:
                self.current.show({str(k): v for k, v in value.items()}, {})
            else:
                self.show(value)

    def records(self) -> list[dict[str, Any]]:
        return [cell.record() for cell in self.cells]


def _print_display(*values: Any, **_options: Any) -> None:
    """`display()` when the step keeps no report: each value printed, as IPython does outside a notebook."""
    print(*values)


_active: list[StepCapture] = []  # the step capturing now: what our backend's show() reports to


def _backend_show(*args: Any, **kwargs: Any) -> None:
    if _active:
        _active[-1].show_figures()
    else:
        for figure in open_figures():
            close_figure(figure)


def _use_our_backend() -> None:
    """Once the cells imported pyplot, it draws with our backend (unless a cell chose another one later)."""
    pyplot = _sys.modules.get("matplotlib.pyplot")
    backend = "module://" + _BACKEND
    if pyplot is None or not _active or _active[-1].switched:
        return
    _active[-1].switched = True
    try:
        # Our backend is Agg with another show(): its canvas and manager are Agg's.
        agg, module = import_library("matplotlib.backends.backend_agg"), _backend_module()
        module.FigureCanvas, module.FigureManager = agg.FigureCanvas, agg.FigureManager
        pyplot.switch_backend(backend)
    except Exception:
        pass  # a backend matplotlib cannot leave: figures are still kept when the cell ends


def _backend_module() -> Any:
    return _sys.modules[_BACKEND]


@contextlib.contextmanager
def capturing(capture: StepCapture | None) -> Iterator[None]:
    """While a step runs: `display()` a builtin, matplotlib headless and, when capturing, drawing inline."""
    saved_backend = _environ.get("MPLBACKEND")
    _environ["MPLBACKEND"] = "agg"
    display = capture.display if capture is not None else _print_display
    added = "display" not in _builtin_names
    if added:
        _builtin_names["display"] = display
    hook = _PyplotHook()
    if capture is not None:
        backend = _sys.modules.get(_BACKEND) or _Module(_BACKEND)
        backend.show = _backend_show  # type: ignore[attr-defined]
        _sys.modules[_BACKEND] = backend
        _active.append(capture)
        _meta_path.insert(0, hook)
    try:
        yield
    finally:
        if hook in _meta_path:
            _meta_path.remove(hook)
        if capture is not None and capture in _active:
            _active.remove(capture)
        if added and _builtin_names.get("display") is display:
            del _builtin_names["display"]
        if saved_backend is None:
            _environ.pop("MPLBACKEND", None)
        else:
            _environ["MPLBACKEND"] = saved_backend


class _PyplotHook:
    """A finder on sys.meta_path for one module, matplotlib.pyplot: once a cell imported it, it draws
    with our backend, so that a plt.show() in the very cell that imported pyplot is kept in its place."""

    def __init__(self) -> None:
        self.finding = False

    def find_spec(self, name: str, path: Any = None, target: Any = None) -> Any:
        if name != "matplotlib.pyplot" or self.finding:
            return None
        self.finding = True
        try:
            spec: Any = _find_spec(name)
        finally:
            self.finding = False
        if spec is None or spec.loader is None:
            return None
        spec.loader = _PyplotLoader(spec.loader)
        return spec


class _PyplotLoader:
    def __init__(self, loader: Any) -> None:
        self.loader = loader

    def create_module(self, spec: Any) -> Any:
        return self.loader.create_module(spec)

    def exec_module(self, module: Any) -> None:
        self.loader.exec_module(module)
        _use_our_backend()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.loader, name)
