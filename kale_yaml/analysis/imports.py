"""The modules a piece of code imports, where, and whether it copes without them.

Every `import a.b` and `from a.b import c` counts, at any depth: in functions, classes, branches. An import
inside `try:` whose handlers catch ImportError (or a base of it) is optional: the code runs without it, so a
missing module there is no error. Relative imports (`from . import x`) are left out: a notebook is no package.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass

_CATCHES_IMPORT_ERROR = frozenset({"ImportError", "ModuleNotFoundError", "Exception", "BaseException"})


@dataclass(frozen=True)
class Import:
    module: str  # as written, absolute: "sklearn.linear_model"
    names: tuple[str, ...]  # `from module import names` (each may be a submodule); () for `import module`
    cell: int  # the notebook cell, or 0 in a module file of the notebook's folder
    line: int
    optional: bool  # inside a `try:` that catches ImportError
    file: str = ""  # the module file it is in (as messages show it), when not in a cell

    @property
    def top(self) -> str:
        """The top-level module, the one Python looks up on sys.path: `sklearn`."""
        return self.module.split(".")[0]

    def dotted(self) -> list[str]:
        """The modules this import may load, the most specific first (for namespace packages)."""
        candidates = [f"{self.module}.{name}" for name in self.names if name != "*"]
        parts = self.module.split(".")
        candidates += [".".join(parts[:n]) for n in range(len(parts), 0, -1)]
        return candidates


def code_imports(source: str, cell: int = 0, file: str = "") -> list[Import]:
    """The imports of `source` in the order written; [] when it is not Python (analysis reports that)."""
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return []
    optional: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Try | ast.TryStar) and any(_catches_import_error(h) for h in node.handlers):
            optional.update(id(inner) for statement in node.body for inner in ast.walk(statement))
    found: list[Import] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                found.append(Import(alias.name, (), cell, node.lineno, id(node) in optional, file))
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = tuple(alias.name for alias in node.names)
            found.append(Import(node.module, names, cell, node.lineno, id(node) in optional, file))
    return sorted(found, key=lambda i: (i.line, i.module))


def imported_modules(source: str) -> set[str]:
    """Top-level modules a cell's code imports (absolute imports only)."""
    return {found.top for found in code_imports(source)}


def _catches_import_error(handler: ast.ExceptHandler) -> bool:
    if handler.type is None:
        return True
    kinds = handler.type.elts if isinstance(handler.type, ast.Tuple) else [handler.type]
    return any(isinstance(k, ast.Name) and k.id in _CATCHES_IMPORT_ERROR for k in kinds) or any(
        isinstance(k, ast.Attribute) and k.attr in _CATCHES_IMPORT_ERROR for k in kinds
    )
