"""The step runtime as generated code carries it: kale_yaml/runtime/'s modules as the body of one function.

kfp's `@dsl.component(additional_funcs=[f])` copies the source of a module-level function `f` into the step's
command; only functions travel, not classes, imports or module-level code. So the runtime becomes one
function, `_kale_yaml_runtime()`, defined once in the generated module: its body holds the runtime modules in
dependency order and returns their entry points (the runtime package's `__all__`) as a namespace. A step
calls it once: `_kale_yaml_runtime().run_step(...)`.

The modules are changed as text, so that their comments and layout stay:
- dropped: module docstrings (the first line becomes a heading comment), `from __future__` imports, and
  imports of other runtime modules, whose names the same function defines;
- parameter and return annotations removed: the generated module has no `from __future__ import
  annotations` (kfp reads the components' real annotations), so Python would evaluate them in the step's
  image, whose Python may be older than kale-yaml's;
- indented into the function.
What would mean something else inside a function is refused (a kale-yaml bug, found by the tests): a `global`
statement, a name defined by two modules, an import of anything but the standard library and dill, an
annotation in a class body, and a multi-line string other than a docstring (indenting would change it).
"""

from __future__ import annotations

import ast
import graphlib
import re
import sys
import textwrap
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import cache

from kale_yaml.resources import runtime_modules

FUNCTION = "_kale_yaml_runtime"
PACKAGE = "kale_yaml.runtime"
_IMPORTABLE = frozenset(sys.stdlib_module_names) | {"dill"}
_INDENT = "    "
_WIDTH = 110  # the generated code's line length, as kale-yaml's own


@dataclass(frozen=True)
class RuntimeFunction:
    """The runtime as generated code defines it: `def NAME(): ...` (source ends with a newline)."""

    name: str
    source: str


@cache
def runtime_function() -> RuntimeFunction:
    """The runtime function built from kale_yaml/runtime/, once per process."""
    modules = runtime_modules()
    package = ast.parse(modules.pop("__init__"))
    return RuntimeFunction(FUNCTION, build_function(FUNCTION, modules, _entry_points(package)))


def _entry_points(package: ast.Module) -> list[str]:
    for node in package.body:
        if isinstance(node, ast.Assign) and [ast.unparse(target) for target in node.targets] == ["__all__"]:
            return [str(name) for name in ast.literal_eval(node.value)]
    raise ValueError(f"{PACKAGE} has no __all__: the runtime's entry points are not declared")


@dataclass(frozen=True)
class _Module:
    name: str
    text: str  # annotations stripped
    tree: ast.Module

    @property
    def uses(self) -> dict[str, list[str]]:
        """The other runtime modules this one imports from, and the names it takes from each."""
        return {
            node.module.removeprefix(PACKAGE + "."): [alias.name for alias in node.names]
            for node in self.tree.body
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith(PACKAGE + ".")
        }


def build_function(name: str, modules: Mapping[str, str], entry_points: Sequence[str]) -> str:
    """The function `name` whose body holds `modules` (module name -> source) and returns `entry_points`."""
    parsed = {module: _parse(module, source) for module, source in modules.items()}
    order = _dependency_order(parsed)
    bindings = _bindings([parsed[module] for module in order])
    for module in parsed.values():
        for used, names in module.uses.items():
            missing = [n for n in names if bindings.get(n) != f"defined in {used}"]
            if missing:
                problem = f"imports {missing} from {used}, which does not define them"
                raise ValueError(f"runtime/{module.name}.py {problem}")
    if bindings.get("types") != "import types":
        raise ValueError("the runtime must `import types`: its function returns a types.SimpleNamespace")
    for entry in entry_points:
        if not bindings.get(entry, "").startswith("defined in "):
            raise ValueError(f"entry point {entry!r} is defined by no runtime module")
    summary = textwrap.fill(
        "The kale-yaml step runtime (kale_yaml/runtime/ as one function): runs a step's cells as a notebook "
        "would and moves variables in and out as artifacts. Every step carries it (additional_funcs), so a "
        f"step's image needs no kale-yaml. Returns {', '.join(entry_points)}.",
        width=_WIDTH - len(_INDENT),
    )
    quotes = '"""'
    head = f"def {name}():\n{textwrap.indent(quotes + summary + quotes, _INDENT)}\n"
    sections = [_section(parsed[module]) for module in order]
    returned = "".join(f"{_INDENT * 2}{entry}={entry},\n" for entry in entry_points)
    tail = f"{_INDENT}return types.SimpleNamespace(\n{returned}{_INDENT})\n"
    body = "\n\n\n".join(textwrap.indent(section, _INDENT) for section in sections)
    function = f"{head}\n{body}\n\n{tail}"
    expected = sum((_strings(module.tree) for module in parsed.values()), Counter[str]())
    if _strings(ast.parse(function)) != expected:
        raise ValueError("indenting the runtime changed a string: use no multi-line string but docstrings")
    return function


def _parse(name: str, source: str) -> _Module:
    text = strip_annotations(source)
    tree = ast.parse(text)
    for node in ast.walk(tree):
        problem = _problem(node, tree)
        if problem:
            raise ValueError(f"runtime/{name}.py, line {getattr(node, 'lineno', '?')}: {problem}")
    return _Module(name, text, tree)


def _problem(node: ast.AST, tree: ast.Module) -> str | None:
    """What in node would read differently once the module is the body of a function."""
    if isinstance(node, ast.Global):
        return "a `global` statement would name the generated module's globals, not the runtime's"
    if isinstance(node, ast.ClassDef) and any(isinstance(s, ast.AnnAssign) for s in node.body):
        return "an annotation in a class body would be evaluated in the step"
    if isinstance(node, ast.Import):
        foreign = [a.name for a in node.names if a.name.split(".")[0] not in _IMPORTABLE]
        if foreign:
            return f"imports {foreign}: the runtime imports only the standard library and dill"
        return None
    if not isinstance(node, ast.ImportFrom) or node.module == "__future__":
        return None
    module = node.module or ""
    if node.level or module == PACKAGE:
        return "import names from a runtime module: `from kale_yaml.runtime.MODULE import NAME`"
    if module.startswith(PACKAGE + "."):
        if node not in tree.body or any(alias.asname for alias in node.names):
            return "imports of runtime modules must be at the top level and without `as`"
        return None
    if module.split(".")[0] not in _IMPORTABLE:
        return f"imports {module}: the runtime imports only the standard library and dill"
    return None


def _dependency_order(modules: Mapping[str, _Module]) -> list[str]:
    graph = {name: sorted(modules[name].uses) for name in sorted(modules)}
    unknown = sorted({used for uses in graph.values() for used in uses} - set(modules))
    if unknown:
        raise ValueError(f"the runtime imports modules it does not have: {unknown}")
    try:
        return list(graphlib.TopologicalSorter(graph).static_order())
    except graphlib.CycleError as error:
        raise ValueError(f"runtime modules import each other in a cycle: {error.args[1]}") from error


def _bindings(modules: Iterable[_Module]) -> dict[str, str]:
    """Each name the modules bind at their top level -> `defined in MODULE`, or the import that binds it.

    One function holds them all, so a name may be bound by one module only, or by the same import in several.
    """
    bindings: dict[str, str] = {}
    for module in modules:
        for name, binding in _top_level(module):
            if bindings.setdefault(name, binding) != binding:
                problem = f"binds {name!r}, which is {bindings[name]} already"
                raise ValueError(f"runtime/{module.name}.py {problem}")
    return bindings


def _top_level(module: _Module) -> Iterable[tuple[str, str]]:
    own = f"defined in {module.name}"
    for node in module.tree.body:
        if isinstance(node, ast.Import):
            for alias in node.names:
                imported = alias.name if alias.asname else alias.name.split(".")[0]
                yield alias.asname or imported, f"import {imported}"
        elif isinstance(node, ast.ImportFrom):
            if node.module != "__future__" and not (node.module or "").startswith(PACKAGE + "."):
                yield from ((a.asname or a.name, f"from {node.module} import {a.name}") for a in node.names)
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            yield node.name, own
        else:
            names = [n for n in ast.walk(node) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store)]
            yield from ((name.id, own) for name in names)


def _section(module: _Module) -> str:
    """The module's text as it reads in the function (not yet indented): a heading comment, then its code."""
    dropped: set[int] = set()
    body = module.tree.body
    docstring = ast.get_docstring(module.tree, clean=True)
    for index, node in enumerate(body):
        is_docstring = index == 0 and docstring is not None
        is_import = isinstance(node, ast.ImportFrom) and (
            node.module == "__future__" or (node.module or "").startswith(PACKAGE + ".")
        )
        if is_docstring or is_import:
            dropped.update(range(node.lineno, (node.end_lineno or node.lineno) + 1))
    lines = [line for number, line in enumerate(module.text.splitlines(), 1) if number not in dropped]
    # One blank line between definitions, as in any function (PEP 8's two are for a module's top level).
    code = re.sub(r"\n{3,}", "\n\n", "\n".join(lines).strip("\n"))
    heading = f"runtime/{module.name}.py" + (f": {docstring.splitlines()[0]}" if docstring else "")
    comment = textwrap.fill(heading, width=_WIDTH - len(_INDENT), initial_indent="# ", subsequent_indent="# ")
    return f"{comment}\n\n{code}"


def _strings(tree: ast.AST) -> Counter[str]:
    """The string constants in tree, docstrings left out."""
    docstrings = {
        id(node.body[0].value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef)
        and node.body
        and isinstance(node.body[0], ast.Expr)
        and isinstance(node.body[0].value, ast.Constant)
    }
    return Counter(
        node.value
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings
    )


def strip_annotations(source: str) -> str:
    """source without the annotations of parameters and returns; every other character stays as it is.

    `name: T = default` becomes `name=default`. Variables' annotations stay: Python never evaluates those of
    local variables, and a module's top level becomes the function's locals.
    """
    starts = [0]
    for line in source.splitlines(keepends=True):
        starts.append(starts[-1] + len(line))

    def offset(line: int, column: int) -> int:  # ast columns count UTF-8 bytes
        text = source[starts[line - 1] : starts[line]]
        return starts[line - 1] + len(text.encode("utf-8")[:column].decode("utf-8"))

    def start(node: ast.expr | ast.arg) -> int:
        return offset(node.lineno, node.col_offset)

    def end(node: ast.expr) -> int:
        return offset(node.end_lineno or node.lineno, node.end_col_offset or 0)

    cuts: list[tuple[int, int, str]] = []
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            continue
        arguments = node.args
        for argument in [
            *arguments.posonlyargs,
            *arguments.args,
            *arguments.kwonlyargs,
            *filter(None, (arguments.vararg, arguments.kwarg)),
        ]:
            if argument.annotation is None:
                continue
            last = end(argument.annotation)
            equals = re.match(r"[ \t]*=[ \t]*", source[last:])  # a default follows: `name=default`
            cut = (start(argument) + len(argument.arg), last + (equals.end() if equals else 0))
            cuts.append((*cut, "=" if equals else ""))
        if node.returns is not None:
            arrow = source.rindex("->", 0, start(node.returns))
            cuts.append((len(source[:arrow].rstrip(" \t")), end(node.returns), ""))
    for first, last, replacement in sorted(cuts, reverse=True):
        source = source[:first] + replacement + source[last:]
    return source
