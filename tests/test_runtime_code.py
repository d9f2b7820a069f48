"""The runtime function generated code defines once: kale_yaml/runtime/'s modules, unchanged but for what a
function body needs, and a refusal for anything that would mean something else there."""

from __future__ import annotations

import ast
import inspect
import re
import textwrap
from typing import Any

import pytest

from kale_yaml import runtime
from kale_yaml.render.runtime_code import FUNCTION, build_function, runtime_function, strip_annotations
from kale_yaml.resources import runtime_modules

ENTRY = ["run_step"]
TYPES = "import types\n"


def _comparable(tree: ast.AST) -> ast.AST:
    """tree without parameter and return annotations, its docstrings as inspect.cleandoc reads them."""
    for node in ast.walk(tree):
        if isinstance(node, ast.arg):
            node.annotation = None
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            node.returns = None
        body = getattr(node, "body", None)
        if isinstance(body, list) and body and isinstance(body[0], ast.Expr):
            value = body[0].value
            if isinstance(value, ast.Constant) and isinstance(value.value, str):
                value.value = inspect.cleandoc(value.value)
    return tree


def _carried_statements(module: str) -> list[ast.stmt]:
    """What the function carries of a module: all but its docstring, `__future__` and runtime imports."""
    tree = ast.parse(runtime_modules()[module])
    return [
        node
        for index, node in enumerate(tree.body)
        if not (index == 0 and ast.get_docstring(tree) is not None)
        and not (
            isinstance(node, ast.ImportFrom) and (node.module or "").startswith(("__future__", "kale_yaml"))
        )
    ]


def test_the_function_holds_every_runtime_module_unchanged_in_dependency_order() -> None:
    source = runtime_function().source
    (function,) = ast.parse(source).body
    assert isinstance(function, ast.FunctionDef) and function.name == FUNCTION
    order = re.findall(r"^    # runtime/(\w+)\.py", source, flags=re.M)
    assert sorted(order) == sorted(set(runtime_modules()) - {"__init__"})
    expected = [statement for module in order for statement in _carried_statements(module)]
    carried = function.body[1:-1]  # between its docstring and the return of the entry points
    assert [ast.dump(_comparable(s)) for s in carried] == [ast.dump(_comparable(s)) for s in expected]
    seen: set[str] = set()
    for module in order:  # each module after the runtime modules it imports
        imported = re.findall(
            r"^from kale_yaml\.runtime\.(\w+) import", runtime_modules()[module], flags=re.M
        )
        assert set(imported) <= seen, module
        seen.add(module)


def test_the_function_returns_the_runtime_packages_entry_points() -> None:
    returned = ast.parse(runtime_function().source).body[0]
    assert isinstance(returned, ast.FunctionDef)
    last = returned.body[-1]
    assert isinstance(last, ast.Return) and isinstance(last.value, ast.Call)
    assert [keyword.arg for keyword in last.value.keywords] == runtime.__all__
    assert {"run_step", "save_value", "load_value", "StepError"} <= set(runtime.__all__)


def test_the_function_has_no_annotation_a_def_would_evaluate() -> None:
    for node in ast.walk(ast.parse(runtime_function().source)):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            assert node.returns is None, node.name
            arguments = node.args
            every = [*arguments.posonlyargs, *arguments.args, *arguments.kwonlyargs]
            every += [a for a in (arguments.vararg, arguments.kwarg) if a is not None]
            assert all(a.annotation is None for a in every), node.name


def test_the_function_is_built_once_per_process() -> None:
    assert runtime_function() is runtime_function()


def test_stripping_annotations_keeps_every_other_character() -> None:
    source = textwrap.dedent(
        """\
        def f(a: int, b: dict[str, "X"] = {},  # a comment stays
              *args: str, c: bool = True, d: "é" = "ü", **kw: object) -> list[int]:
            local: int = 1  # never evaluated: stays
            return [a]


        async def g(x: int, /, y: int=2) -> None: ...
        lam = lambda q: q
        """
    )
    assert strip_annotations(source) == textwrap.dedent(
        """\
        def f(a, b={},  # a comment stays
              *args, c=True, d="ü", **kw):
            local: int = 1  # never evaluated: stays
            return [a]


        async def g(x, /, y=2): ...
        lam = lambda q: q
        """
    )


def test_one_import_in_several_modules_is_one_binding() -> None:
    function = build_function(
        "f", {"a": TYPES + "import os\ndef run_step(): pass\n", "b": TYPES + "import os\n"}, ENTRY
    )
    namespace: dict[str, Any] = {}
    exec(function, namespace)
    assert callable(namespace["f"]().run_step)


@pytest.mark.parametrize(
    ("modules", "problem"),
    [
        (
            {"a": TYPES + "n = 0\ndef run_step():\n    global n\n"},
            "runtime/a.py, line 4: a `global` statement would name the generated module's globals",
        ),
        (
            {"a": TYPES + 'TEXT = """one\ntwo"""\ndef run_step(): pass\n'},
            "indenting the runtime changed a string: use no multi-line string but docstrings",
        ),
        (
            {"a": TYPES + "def run_step(): pass\n", "b": "def run_step(): pass\n"},
            "runtime/b.py binds 'run_step', which is defined in a already",
        ),
        (
            {"a": TYPES + "import numpy\ndef run_step(): pass\n"},
            "runtime/a.py, line 2: imports ['numpy']: the runtime imports only the standard library and dill",
        ),
        (
            {"a": TYPES + "def run_step():\n    from pandas import DataFrame\n"},
            "runtime/a.py, line 3: imports pandas: the runtime imports only the standard library and dill",
        ),
        (
            {"a": TYPES + "from kale_yaml.runtime.b import x as y\n", "b": "x = 1\ndef run_step(): pass\n"},
            "imports of runtime modules must be at the top level and without `as`",
        ),
        (
            {"a": TYPES + "from kale_yaml.runtime import b\n", "b": "def run_step(): pass\n"},
            "import names from a runtime module",
        ),
        (
            {
                "a": TYPES + "from kale_yaml.runtime.b import x\n",
                "b": "from kale_yaml.runtime.a import run_step\n",
            },
            "runtime modules import each other in a cycle",
        ),
        (
            {"a": TYPES + "from kale_yaml.runtime.c import x\ndef run_step(): pass\n"},
            "the runtime imports modules it does not have: ['c']",
        ),
        (
            {"a": TYPES + "from kale_yaml.runtime.b import y\ndef run_step(): pass\n", "b": "x = 1\n"},
            "runtime/a.py imports ['y'] from b, which does not define them",
        ),
        (
            {"a": TYPES + "class C:\n    size: int = 1\ndef run_step(): pass\n"},
            "runtime/a.py, line 2: an annotation in a class body would be evaluated in the step",
        ),
        ({"a": "def run_step(): pass\n"}, "the runtime must `import types`"),
        ({"a": TYPES + "def other(): pass\n"}, "entry point 'run_step' is defined by no runtime module"),
    ],
    ids=[
        "global",
        "multi-line string",
        "a name in two modules",
        "a foreign import",
        "a foreign import in a function",
        "a runtime import with as",
        "a runtime module imported whole",
        "a cycle",
        "an unknown module",
        "a name the module lacks",
        "a class annotation",
        "no types",
        "no entry point",
    ],
)
def test_what_would_read_differently_inside_a_function_is_refused(
    modules: dict[str, str], problem: str
) -> None:
    with pytest.raises(ValueError) as caught:
        build_function("f", modules, ENTRY)
    assert problem in str(caught.value)
