"""The step runtime: notebook semantics in a step, and values handed between steps by type-chosen formats."""

from __future__ import annotations

import errno
import io
import json
import math
import os
import pickle
import socket
import subprocess
import sys
import textwrap
import threading
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dill
import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression

from kale_yaml import runtime
from kale_yaml.render.runtime_code import runtime_function
from kale_yaml.runtime import files, marshal
from kale_yaml.runtime.marshal import load_value

# Every in-process test runs twice: against the runtime's modules, and against the runtime as generated code
# carries it (render/runtime_code.py): one function's text, exec'd alone, called once. Tests in a subprocess
# run the carried runtime only, as a step does.
Runtime = Any  # a namespace of the entry points: run_step, save_value, load_value and the errors


def carried() -> Runtime:
    """The runtime as a step gets it: the generated module's runtime function, exec'd alone and called."""
    function = runtime_function()
    namespace: dict[str, Any] = {"__name__": "ephemeral_component"}
    exec(compile(function.source, "ephemeral_component.py", "exec"), namespace)
    return namespace[function.name]()


def modules() -> Runtime:
    """The runtime's modules, as kale-yaml imports them."""
    return types.SimpleNamespace(**{name: getattr(runtime, name) for name in runtime.__all__})


@pytest.fixture(scope="module", params=["modules", "carried"])
def rt(request: pytest.FixtureRequest) -> Runtime:
    return carried() if request.param == "carried" else modules()


def cells(*sources: str, first: int = 1) -> list[tuple[int, str]]:
    return [(first + i, textwrap.dedent(source)) for i, source in enumerate(sources)]


def step(rt: Runtime, name: str, *sources: str, **kwargs: Any) -> dict[str, object]:
    args: dict[str, Any] = {"parameters": {}, "inputs": {}, "outputs": {}, **kwargs}
    result: dict[str, object] = rt.run_step(step=name, notebook="wine.ipynb", cells=cells(*sources), **args)
    return result


# Run a step the way a generated component does: the runtime function's source exec'd alone and called, in a
# process of its own, where kale_yaml cannot be imported.
RUNNER = f"""
import json, sys
sys.modules["kale_yaml"] = None
runtime = {{"__name__": "ephemeral_component"}}
exec(open(sys.argv[1], encoding="utf-8").read(), runtime)
runtime[{runtime_function().name!r}]().run_step(**json.load(open(sys.argv[2], encoding="utf-8")))
"""


def carried_file(tmp_path: Path) -> Path:
    path = tmp_path / "ephemeral_component.py"
    path.write_text(runtime_function().source, encoding="utf-8")
    return path


def step_in_subprocess(tmp_path: Path, name: str, *sources: str, **kwargs: Any) -> None:
    args = {"step": name, "notebook": "wine.ipynb", "cells": cells(*sources), "parameters": {}, **kwargs}
    args.setdefault("inputs", {})
    args.setdefault("outputs", {})
    spec = tmp_path / f"{name}.json"
    spec.write_text(json.dumps(args), encoding="utf-8")
    command = [sys.executable, "-c", RUNNER, str(carried_file(tmp_path)), str(spec)]
    done = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr


# Round trips per type, and the format each type gets.


def _fitted() -> LogisticRegression:
    return LogisticRegression().fit([[0.0], [1.0], [2.0], [3.0]], [0, 0, 1, 1])


ROUND_TRIPS: list[tuple[str, object, str]] = [
    ("int", 42, "dill"),
    ("dict", {"a": [1, 2.5, "x"], "b": (None, True)}, "dill"),
    ("array", np.arange(12.0).reshape(3, 4), "npy"),
    ("structured array", np.array([(1, 2.0)], dtype=[("a", "i4"), ("b", "f8")]), "npy"),
    ("object array", np.array([{"a": 1}, None], dtype=object), "dill"),
    ("numpy scalar", np.float32(1.5), "dill"),
    ("dataframe", pd.DataFrame({"x": [1, 2], "y": ["a", "b"]}, index=["r", "s"]), "pd.pkl"),
    ("series", pd.Series([1.0, 2.0], name="s"), "pd.pkl"),
    ("estimator", _fitted(), "joblib"),
]


@pytest.mark.parametrize(("value", "fmt"), [r[1:] for r in ROUND_TRIPS], ids=[r[0] for r in ROUND_TRIPS])
def test_round_trip_keeps_value_and_chooses_format_by_type(
    rt: Runtime, tmp_path: Path, value: object, fmt: str
) -> None:
    path = str(tmp_path / "out")
    assert rt.save_value("v", value, path) == fmt
    assert os.listdir(path) == [f"value.{fmt}"]
    loaded = rt.load_value(path)
    assert type(loaded) is type(value)
    if isinstance(value, np.ndarray):
        assert loaded.dtype == value.dtype  # type: ignore[attr-defined]
        assert loaded.tolist() == value.tolist()  # type: ignore[attr-defined]
    elif isinstance(value, pd.DataFrame | pd.Series):
        assert value.equals(loaded)
    elif isinstance(value, LogisticRegression):
        assert isinstance(loaded, LogisticRegression)
        assert loaded.predict([[0.0], [3.0]]).tolist() == value.predict([[0.0], [3.0]]).tolist()
    else:
        assert loaded == value


def test_load_value_accepts_the_value_file_itself(rt: Runtime, tmp_path: Path) -> None:
    rt.save_value("v", [1, 2], str(tmp_path / "out"))
    assert rt.load_value(str(tmp_path / "out" / "value.dill")) == [1, 2]


def test_dill_files_without_notebook_code_are_plain_pickles_that_dill_reads(
    rt: Runtime, tmp_path: Path
) -> None:
    rows = [{"id": i, "name": f"n{i}"} for i in range(100)]
    rt.save_value("rows", rows, str(tmp_path / "rows"))
    with open(tmp_path / "rows" / "value.dill", "rb") as file:
        assert pickle.load(file) == rows
    with open(tmp_path / "rows" / "value.dill", "rb") as file:
        assert dill.load(file) == rows


def test_saving_again_replaces_the_value_file(rt: Runtime, tmp_path: Path) -> None:
    path = str(tmp_path / "out")
    rt.save_value("v", np.zeros(2), path)
    rt.save_value("v", "text", path)
    assert os.listdir(path) == ["value.dill"]
    assert rt.load_value(path) == "text"


def test_load_value_names_a_path_without_a_value(rt: Runtime, tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(rt.StepError, match="expected one value"):
        rt.load_value(str(tmp_path / "empty"))


def test_pickle_based_formats_fall_back_to_dill_when_the_value_holds_notebook_code(
    rt: Runtime, tmp_path: Path
) -> None:
    ns = step(
        rt,
        "train",
        """
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import FunctionTransformer
        from sklearn.linear_model import LinearRegression
        import numpy as np
        import pandas as pd

        def double(x):
            return x * 2

        class Tag:
            pass

        model = make_pipeline(FunctionTransformer(double), LinearRegression())
        model.fit(np.array([[1.0], [2.0]]), [2.0, 4.0])
        frame = pd.DataFrame({"tag": [Tag(), Tag()]})
        mixed = pd.DataFrame({"name": ["a", "b", "c"], "fn": ["x", double, "y"]})
        plain = pd.DataFrame({"name": ["a", "b", None], "n": [1, 2, 3]})
        """,
    )
    assert rt.save_value("model", ns["model"], str(tmp_path / "model")) == "dill"
    assert rt.save_value("frame", ns["frame"], str(tmp_path / "frame")) == "dill"
    # A notebook function among strings is still found; a column of plain values is not walked for it.
    assert rt.save_value("mixed", ns["mixed"], str(tmp_path / "mixed")) == "dill"
    assert rt.save_value("plain", ns["plain"], str(tmp_path / "plain")) == "pd.pkl"


# Notebook semantics inside a step.


def test_cells_run_with_module_semantics(rt: Runtime) -> None:
    ns = step(
        rt,
        "prep",
        """
        from math import *
        from dataclasses import dataclass, field
        import functools
        counter = 0

        def bump():
            global counter
            counter += 1
        """,
        """
        @dataclass
        class Point:
            x: float
            tags: list[str] = field(default_factory=list)

        @functools.lru_cache
        def root(n):
            return sqrt(n)

        bump(); bump()
        p = Point(root(16))
        assert __name__ == "__main__"
        import sys, pickle
        assert sys.modules["__main__"].Point is Point
        assert pickle.loads(pickle.dumps(p)) == p
        """,
    )
    assert ns["counter"] == 2
    assert ns["pi"] == math.pi
    assert repr(ns["p"]) == "Point(x=4.0, tags=[])"


def test_parameters_are_globals_before_inputs_and_cells(rt: Runtime, tmp_path: Path) -> None:
    rt.save_value("rows", [1, 2, 3], str(tmp_path / "rows"))
    inputs = {"rows": str(tmp_path / "rows")}
    ns = step(rt, "load", "total = sum(rows) * seed", parameters={"seed": 7}, inputs=inputs)
    assert ns["total"] == 42


def test_top_level_await_runs_as_in_ipython(rt: Runtime) -> None:
    ns = step(rt, "fetch", "import asyncio\nawait asyncio.sleep(0)\nfetched = True")
    assert ns["fetched"] is True


def test_main_module_is_restored_even_when_a_cell_fails(rt: Runtime) -> None:
    main = sys.modules["__main__"]
    with pytest.raises(rt.CellError):
        step(rt, "boom", "1 / 0")
    assert sys.modules["__main__"] is main


def test_cells_do_not_inherit_the_runtimes_future_imports(rt: Runtime) -> None:
    ns = step(rt, "types", "def f(x: int) -> int: return x\nhint = f.__annotations__['x']")
    assert ns["hint"] is int


# Values between steps.


def test_in_place_changes_reach_later_steps(rt: Runtime, tmp_path: Path) -> None:
    a, b = str(tmp_path / "a"), str(tmp_path / "b")
    step(rt, "make", "items = [1]", outputs={"items": a})
    step(rt, "grow", "items.append(2)", inputs={"items": a}, outputs={"items": b})
    assert step(rt, "use", "n = len(items)", inputs={"items": b})["n"] == 2


def test_notebook_code_round_trips_between_steps_in_process(rt: Runtime, tmp_path: Path) -> None:
    names = ["f", "square", "add3", "Point", "p", "Counter", "c"]
    paths = {name: str(tmp_path / name) for name in names}
    step(rt, "define", DEFINE, outputs=paths)
    ns = step(rt, "use", USE, inputs=paths)
    assert ns["checked"] is True


DEFINE = """
from dataclasses import dataclass
k = 1

def f(x):
    return x + k

square = lambda x: x * x

def make_adder(n):
    def add(x):
        return x + n
    return add

add3 = make_adder(3)

@dataclass
class Point:
    x: int
    y: int

class Counter:
    def __init__(self):
        self.n = 0
    def bump(self):
        self.n += k
        return self

p = Point(1, 2)
c = Counter().bump()
"""

USE = """
k = 100  # functions and methods from an earlier step see this step's globals, as in a notebook
assert f(1) == 101, f(1)
assert square(4) == 16 and add3(4) == 7
assert isinstance(p, Point) and p == Point(1, 2), (type(p), Point)
assert type(c) is Counter and c.n == 1 and c.bump().n == 101
assert f.__globals__ is globals()
checked = True
"""


def test_notebook_code_round_trips_between_separate_processes(tmp_path: Path) -> None:
    names = ["f", "square", "add3", "Point", "p", "Counter", "c", "model"]
    first = {name: str(tmp_path / "a" / name) for name in names}
    second = {name: str(tmp_path / "b" / name) for name in names}
    model = """
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import FunctionTransformer
    from sklearn.linear_model import LinearRegression
    import numpy as np
    def scale(x):
        return x * k
    model = make_pipeline(FunctionTransformer(scale), LinearRegression())
    model.fit(np.array([[1.0], [2.0]]), [1.0, 2.0])
    """
    step_in_subprocess(tmp_path, "define", DEFINE, model, outputs=first)
    # a middle step that only passes them on, then a step that uses them: three processes
    step_in_subprocess(tmp_path, "carry", "k = 5", inputs=first, outputs=second)
    use_model = "import numpy as np\nk = 1\nassert np.allclose(model.predict([[3.0]]), [3.0])\n"
    step_in_subprocess(tmp_path, "use", USE + use_model, inputs=second)


PRELUDE = """
import enum
import functools
from dataclasses import dataclass

class Color(enum.Enum):
    RED = 1

@dataclass
class Config:
    rate: float

@functools.lru_cache
def halve(x):
    return x / 2
"""


def test_prelude_classes_and_functions_travel_by_name_between_processes(tmp_path: Path) -> None:
    names = ["red", "config", "helpers", "frame"]
    paths = {name: str(tmp_path / name) for name in names}
    define = """
    import pandas as pd
    red = Color.RED
    config = Config(0.5)
    helpers = {"halve": halve}
    frame = pd.DataFrame({"config": [Config(1.0)]})
    """
    step_in_subprocess(tmp_path, "define", PRELUDE, define, outputs=paths, prelude=1)
    assert os.listdir(paths["frame"]) == ["value.pd.pkl"]  # no notebook code inside: the fast format
    use = """
    assert red is Color.RED
    assert type(config) is Config and config == Config(0.5)
    assert helpers["halve"] is halve
    assert frame.config[0] == Config(1.0)
    """
    step_in_subprocess(tmp_path, "use", PRELUDE, use, inputs=paths, prelude=1)


def test_prelude_runs_before_inputs_are_loaded(rt: Runtime, tmp_path: Path) -> None:
    rt.save_value("rows", [1], str(tmp_path / "rows"))
    inputs = {"rows": str(tmp_path / "rows")}
    ns = step(rt, "s", "seen = 'rows' in globals()", "n = len(rows)", prelude=1, inputs=inputs)
    assert ns["seen"] is False and ns["n"] == 1


def test_a_class_redefined_in_a_later_step_is_a_different_class(rt: Runtime, tmp_path: Path) -> None:
    step(rt, "a", "class Box:\n    pass\nbox = Box()", outputs={"box": str(tmp_path / "box")})
    step(rt, "b", "class Box:\n    size = 2", outputs={"Box": str(tmp_path / "Box")})
    inputs = {"box": str(tmp_path / "box"), "Box": str(tmp_path / "Box")}
    ns = step(rt, "c", "same = isinstance(box, Box)", inputs=inputs)
    assert ns["same"] is False  # as in the notebook: box was made by the first definition


def test_a_class_dill_cannot_pickle_by_value_fails_when_saved_not_when_loaded(
    rt: Runtime, tmp_path: Path
) -> None:
    with pytest.raises(rt.UnserializableValueError, match="define the class in the prelude"):
        step(
            rt,
            "a",
            "import enum\nclass Color(enum.Enum):\n    RED = 1\nred = Color.RED",
            outputs={"red": str(tmp_path)},
        )
    assert not os.listdir(tmp_path)


def test_modules_travel_by_name(rt: Runtime, tmp_path: Path) -> None:
    rt.save_value("np", np, str(tmp_path / "np"))
    assert rt.load_value(str(tmp_path / "np")) is np


def test_an_input_that_cannot_be_loaded_names_the_variable(rt: Runtime, tmp_path: Path) -> None:
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "value.dill").write_bytes(b"not a pickle")
    with pytest.raises(rt.StepError, match="step 'use': cannot load variable 'x' from"):
        step(rt, "use", "y = x", inputs={"x": str(tmp_path / "x")})


def test_a_failing_later_step_in_a_subprocess_reports_the_cell(tmp_path: Path) -> None:
    with pytest.raises(AssertionError, match=r"KALE_YAML_CELL_FAILED .*\"cell\": 1, \"line\": 2"):
        step_in_subprocess(tmp_path, "bad", "x = 1\nx / 0")


def test_a_prelude_that_breaks_open_and_os_does_not_stop_inputs_loading_or_outputs_saving(
    tmp_path: Path,
) -> None:
    """The runtime's file functions were taken when it loaded: the step's cells keep what the prelude did."""
    (tmp_path / "saved").mkdir()
    step_in_subprocess(
        tmp_path / "saved",
        "first",
        "class Box:\n    pass\nbox = Box()\nrows = [1, 2]",
        outputs={"box": str(tmp_path / "box"), "rows": str(tmp_path / "rows")},
    )
    breaks = """
    import builtins, io, os, tempfile, shutil
    builtins.open = io.open = tempfile.mkdtemp = shutil.rmtree = None
    os.makedirs = os.replace = os.listdir = os.path.isdir = os.path.join = None
    """
    step_in_subprocess(
        tmp_path,
        "second",
        breaks,
        "assert open is None and os.replace is None\ntotal = sum(rows)\nsame = type(box).__name__",
        prelude=1,
        inputs={"box": str(tmp_path / "box"), "rows": str(tmp_path / "rows")},
        outputs={"total": str(tmp_path / "total"), "same": str(tmp_path / "deep" / "same")},
    )
    assert load_value(str(tmp_path / "total")) == 3
    assert load_value(str(tmp_path / "deep" / "same")) == "Box"


@pytest.mark.parametrize("path", ["/a/b", "/a", "/", "a", "a/b", "a/b/", "/a//b", "//a", "", "./x", "../y/z"])
def test_the_runtimes_own_path_functions_agree_with_os_path(path: str) -> None:
    assert files.parent_folder(path) == os.path.dirname(path)
    assert files.file_name(path) == os.path.basename(path)
    if path:
        assert files.join_path(path, "value.dill") == os.path.join(path, "value.dill")


def test_the_runtimes_own_folder_functions_make_and_remove_folders(tmp_path: Path) -> None:
    deep = tmp_path / "a" / "b" / "c"
    files.make_folders(str(deep))
    files.make_folders(str(deep))  # already there: nothing to do
    assert files.is_folder(str(deep)) and not files.is_folder(str(tmp_path / "nothing"))
    (deep / "file").write_text("x")
    (tmp_path / "a" / "link").symlink_to(tmp_path)  # a link is removed, not followed
    scratch = files.scratch_folder(str(tmp_path), ".saving-")
    assert Path(scratch).parent == tmp_path and Path(scratch).name.startswith(".saving-")
    assert scratch != files.scratch_folder(str(tmp_path), ".saving-")
    files.remove_tree(str(tmp_path / "a"))
    assert not (tmp_path / "a").exists() and tmp_path.is_dir()
    (tmp_path / "file").write_text("x")
    with pytest.raises(FileExistsError):
        files.make_folders(str(tmp_path / "file"))


# Values that cannot travel.


def _generator() -> Any:
    return (i for i in range(3))


@pytest.mark.parametrize(
    ("make", "type_name", "advice"),
    [
        (_generator, "a generator", "e.g. list(...)"),
        (lambda: open(__file__), "an open file", "open it again"),  # noqa: SIM115
        (socket.socket, "a socket", "list it under 'skip'"),
        (lambda: {"rows": _generator()}, "a dict", "cannot pickle 'generator' object"),
    ],
    ids=["generator", "open file", "socket", "dict holding a generator"],
)
def test_unserializable_values_name_step_variable_and_type_and_leave_no_file(
    rt: Runtime, tmp_path: Path, make: Any, type_name: str, advice: str
) -> None:
    value = make()
    out = tmp_path / "rows"
    try:
        with pytest.raises(rt.UnserializableValueError) as caught:
            rt.save_value("rows", value, str(out), step="load")
    finally:
        if hasattr(value, "close"):
            value.close()
    message = str(caught.value)
    assert message.startswith(f"step 'load': variable 'rows' ({type_name}) cannot be passed to a later step:")
    assert advice in message
    assert not out.exists()


def test_locks_travel_as_new_locks_as_dill_makes_them(rt: Runtime, tmp_path: Path) -> None:
    rt.save_value("guarded", {"lock": threading.Lock(), "n": 1}, str(tmp_path / "guarded"))
    loaded: Any = rt.load_value(str(tmp_path / "guarded"))
    with loaded["lock"]:
        assert loaded["n"] == 1


def test_unserializable_output_fails_the_step(rt: Runtime, tmp_path: Path) -> None:
    with pytest.raises(rt.UnserializableValueError, match=r"step 'load': variable 'rows' \(a generator\)"):
        step(rt, "load", "rows = (i for i in range(3))", outputs={"rows": str(tmp_path / "rows")})
    assert not (tmp_path / "rows").exists()


def test_open_files_inside_values_are_refused_but_in_memory_buffers_travel(
    rt: Runtime, tmp_path: Path
) -> None:
    with open(__file__) as handle, pytest.raises(rt.UnserializableValueError, match="open file"):
        rt.save_value("files", [handle], str(tmp_path / "files"))
    rt.save_value("buffer", io.BytesIO(b"abc"), str(tmp_path / "buffer"))
    assert rt.load_value(str(tmp_path / "buffer")).getvalue() == b"abc"


def test_missing_output_names_the_variable(rt: Runtime, tmp_path: Path) -> None:
    with pytest.raises(rt.StepError, match="step 'load': variable 'rows' is not defined"):
        step(rt, "load", "x = 1", outputs={"rows": str(tmp_path / "rows")})


# Failing cells.


def test_failing_cell_reports_step_cell_line_and_traceback(
    rt: Runtime, capsys: pytest.CaptureFixture[str]
) -> None:
    source = "def ratio(a, b):\n    return a / b\n"
    with pytest.raises(rt.CellError) as caught:
        rt.run_step(
            step="train",
            notebook="wine.ipynb",
            cells=[(4, source), (7, "x = 1\ny = 2\nz = ratio(x, 0)\n")],
            parameters={},
            inputs={},
            outputs={},
        )
    error = caught.value
    assert (error.step, error.cell, error.line) == ("train", 7, 3)
    text = str(error)
    summary = "step 'train' failed in wine.ipynb cell 7, line 3: ZeroDivisionError: division by zero"
    assert text.splitlines()[0] == summary
    assert 'File "<wine.ipynb cell 7>", line 3, in <module>' in text
    assert 'File "<wine.ipynb cell 4>", line 2, in ratio' in text
    assert "return a / b" in text  # the cell's source shows in the traceback
    assert "run_step" not in text and '.py"' not in text  # no frame of the runtime's, nor of any module
    marker = "KALE_YAML_CELL_FAILED "
    markers = [line for line in capsys.readouterr().err.splitlines() if line.startswith(marker)]
    assert len(markers) == 1
    report = json.loads(markers[0].removeprefix(marker))
    assert {k: report[k] for k in ("step", "cell", "line", "error")} == {
        "step": "train",
        "cell": 7,
        "line": 3,
        "error": "ZeroDivisionError: division by zero",
    }


def test_syntax_error_reports_its_line(rt: Runtime) -> None:
    with pytest.raises(rt.CellError) as caught:
        step(rt, "parse", "x = 1\ny = (\n")
    assert (caught.value.cell, caught.value.line) == (1, 2)
    assert "SyntaxError" in str(caught.value).splitlines()[0]


# Metrics.


class FakeMetrics:
    def __init__(self, path: str) -> None:
        self.logged: dict[str, float] = {}
        self.path = path

    def log_metric(self, name: str, value: float) -> None:
        assert type(value) is float
        self.logged[name] = value


def test_metrics_are_logged_as_floats_and_written_to_the_artifact(rt: Runtime, tmp_path: Path) -> None:
    metrics = FakeMetrics(str(tmp_path / "metrics"))
    step(
        rt,
        "evaluate",
        "import numpy as np\naccuracy = np.float64(0.75)\nf1 = 1\nn = np.int64(3)",
        metrics=metrics,
        metric_names=["accuracy", "f1", "n"],
    )
    assert metrics.logged == {"accuracy": 0.75, "f1": 1.0, "n": 3.0}
    assert json.loads((tmp_path / "metrics").read_text(encoding="utf-8")) == metrics.logged


@pytest.mark.parametrize(
    ("source", "problem"),
    [("x = 1", "'accuracy' is not defined"), ("accuracy = 'high'", "'accuracy' is a str, not a number")],
)
def test_missing_or_non_numeric_metric_is_an_error(
    rt: Runtime, source: str, problem: str, tmp_path: Path
) -> None:
    with pytest.raises(rt.MetricError, match=f"step 'evaluate': metric {problem}"):
        step(rt, "evaluate", source, metrics=FakeMetrics(str(tmp_path / "m")), metric_names=["accuracy"])


# The runtime as generated code carries it: one function, exec'd alone (its text: test_runtime_code.py).


def test_the_carried_runtime_works_exec_d_into_a_fresh_namespace(tmp_path: Path) -> None:
    namespace: dict[str, Any] = {}
    exec(compile(runtime_function().source, "ephemeral_component.py", "exec"), namespace)
    assert [name for name in namespace if name != "__builtins__"] == [runtime_function().name]
    carried = namespace[runtime_function().name]()
    carried.save_value("a", np.ones(3), str(tmp_path / "a"))
    ns = carried.run_step(
        step="s",
        notebook="n.ipynb",
        cells=[(1, "b = a.sum()")],
        parameters={},
        inputs={"a": str(tmp_path / "a")},
        outputs={"b": str(tmp_path / "b")},
    )
    assert ns["b"] == 3.0
    assert carried.load_value(str(tmp_path / "b")) == 3.0


def test_the_carried_runtime_imports_only_the_standard_library_and_dill(tmp_path: Path) -> None:
    code = (
        "import sys; before = set(sys.modules); sys.modules['kale_yaml'] = None; runtime = {};"
        f"exec(open({str(carried_file(tmp_path))!r}).read(), runtime);"
        f"runtime[{runtime_function().name!r}]();"
        "print(sorted(m for m in set(sys.modules) - before if m.split('.')[0] in"
        " ('numpy', 'pandas', 'sklearn', 'joblib', 'torch', 'keras', 'tensorflow', 'kfp')))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


# Optional libraries.


def test_torch_values_round_trip(rt: Runtime, tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    model = torch.nn.Linear(2, 1)
    assert rt.save_value("model", model, str(tmp_path / "model")) == "pt"
    loaded: Any = rt.load_value(str(tmp_path / "model"))
    assert torch.equal(loaded.weight, model.weight)
    assert rt.save_value("t", torch.ones(3), str(tmp_path / "t")) == "pt"


def test_keras_models_round_trip(rt: Runtime, tmp_path: Path) -> None:
    keras = pytest.importorskip("keras")
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    assert rt.save_value("model", model, str(tmp_path / "model")) == "keras"
    loaded: Any = rt.load_value(str(tmp_path / "model"))
    assert loaded.count_params() == model.count_params()


# How a step reports its progress and its end to `kale-yaml run`, whatever its cells do.


def _events(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def _run_in_subprocess(tmp_path: Path, *sources: str, **kwargs: Any) -> subprocess.CompletedProcess[str]:
    args = {"step": "s", "notebook": "nb.ipynb", "cells": cells(*sources), "parameters": {}, "inputs": {}}
    args.update({"outputs": {}, **kwargs})
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps(args), encoding="utf-8")
    command = [sys.executable, "-c", RUNNER, str(carried_file(tmp_path)), str(spec)]
    return subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=120)


def test_progress_survives_what_cells_do_to_the_process(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    events = tmp_path / "events.jsonl"
    monkeypatch.setenv("KALE_YAML_EVENTS", str(events))
    hostile = """
    import builtins, json, os, sys, time
    os.environ.clear()
    os.chdir("/")
    json.dumps = json.JSONEncoder.encode = os.write = time.time = None
    builtins.open = builtins.print = None
    sys.stdout = sys.stderr = None
    os.closerange(3, 1024)  # the runtime's descriptor on the events file too
    """
    reuse = "import os as _os\nnumbers = [_os.open(_os.devnull, _os.O_WRONLY) for _ in range(8)]"
    done = _run_in_subprocess(tmp_path, hostile, reuse)
    assert done.returncode == 0, done.stderr
    kinds = [(e["event"], e.get("cell")) for e in _events(events)]
    assert kinds == [("started", None), ("cell", 1), ("cell", 2), ("saving", None), ("finished", None)]


@pytest.mark.parametrize(
    ("source", "error"),
    [
        ("import sys\nsys.exit(0)", "SystemExit: 0 (the code exited before the step's end)"),
        ("raise SystemExit(3)", "SystemExit: 3 (the code exited before the step's end)"),
        ("raise KeyboardInterrupt", "KeyboardInterrupt"),
    ],
    ids=["sys.exit(0)", "SystemExit(3)", "KeyboardInterrupt"],
)
def test_a_cell_that_exits_fails_the_step_with_a_non_zero_status(
    source: str, error: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    events = tmp_path / "events.jsonl"
    monkeypatch.setenv("KALE_YAML_EVENTS", str(events))
    done = _run_in_subprocess(tmp_path, "x = 1", source, outputs={"x": str(tmp_path / "x")})
    assert done.returncode != 0  # else kfp would count the step as succeeded and cache its missing outputs
    failed = _events(events)[-1]
    assert {k: failed[k] for k in ("event", "cell", "line", "error")} == {
        "event": "failed",
        "cell": 2,
        "line": source.count("\n") + 1,
        "error": error,
    }
    assert not (tmp_path / "x").exists()


def test_an_exit_while_saving_an_output_fails_the_step(rt: Runtime) -> None:
    source = "class Bye:\n    def __reduce__(self):\n        raise SystemExit(0)\nbye = Bye()"
    with pytest.raises(rt.StepError, match=r"step 'save': SystemExit: 0"):
        step(rt, "save", source, outputs={"bye": "/nonexistent/never-written"})


# A full disk.


class _FullDisk:
    """A file whose writes fail as they do when the disk is full."""

    def __init__(self, handle: Any) -> None:
        self.handle = handle

    def write(self, data: bytes) -> int:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    def __getattr__(self, name: str) -> Any:
        return getattr(self.handle, name)

    def __enter__(self) -> _FullDisk:
        return self

    def __exit__(self, *exc: object) -> None:
        self.handle.close()


def test_a_full_disk_names_the_variable_and_step_being_saved(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def full_disk_open(file: Any, mode: str = "r", *args: Any, **kwargs: Any) -> Any:
        handle = open(file, mode, *args, **kwargs)  # noqa: SIM115 - closed by _FullDisk
        return _FullDisk(handle) if "w" in mode else handle

    monkeypatch.setattr(marshal, "open_file", full_disk_open)  # the runtime's own `open`, bound at its load
    events = tmp_path / "events.jsonl"
    monkeypatch.setenv("KALE_YAML_EVENTS", str(events))
    out = tmp_path / "rows"
    with pytest.raises(
        runtime.StepError
    ) as caught:  # the modules only: the carried runtime has no `open_file` to patch
        step(modules(), "load", "rows = list(range(10))", outputs={"rows": str(out)})
    message = f"step 'load': cannot save variable 'rows' to {out}: No space left on device"
    assert str(caught.value) == message
    assert _events(events)[-1]["error"] == message
    assert not out.exists()


@pytest.fixture
def tiny_disk(tmp_path: Path) -> Iterator[Path]:
    """A 64 KiB tmpfs; skipped where this user may not mount one."""
    folder = tmp_path / "tiny"
    folder.mkdir()
    try:
        mounted = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(folder)], capture_output=True, timeout=30
        )
    except (OSError, subprocess.TimeoutExpired) as error:
        pytest.skip(f"cannot mount a tmpfs here: {error}")
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode(errors='replace').strip()}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", str(folder)], capture_output=True, timeout=30)


def test_a_really_full_disk_names_the_variable_and_leaves_no_partial_value(
    rt: Runtime, tiny_disk: Path
) -> None:
    out = tiny_disk / "blob"
    with pytest.raises(
        rt.StepError, match=r"^step 'load': cannot save variable 'blob' to .*: No space left on device$"
    ):
        rt.save_value("blob", os.urandom(1 << 20), str(out), step="load")
    assert not out.exists()
