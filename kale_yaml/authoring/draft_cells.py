"""What kind of code cell it is, as `init` drafts: one that cannot run in a pipeline step, or one that only
imports and makes process-wide settings (which the prelude can hold)."""

from __future__ import annotations

import ast
import builtins

from kale_yaml.analysis.magics import (
    CellMagicError,
    NestedTooDeeply,
    compile_check,
    executable_source,
    parse_python,
)
from kale_yaml.analysis.process_state import generator_event, import_bindings, qualified, setting_label
from kale_yaml.load.cells import Cell


def cannot_run(cell: Cell) -> str | None:
    """Why a code cell cannot run in a pipeline step, or None when it can."""
    try:
        source, _ = executable_source(cell)
        parse_python(source)
        compile_check(source, f"<cell {cell.number}>")
    except CellMagicError as error:
        return f"cell magic {error.magic_name}"
    except NestedTooDeeply:
        return "nested too deeply for Python to compile"
    except (SyntaxError, ValueError) as error:
        return f"not Python ({getattr(error, 'msg', error)}; IPython-only syntax?)"
    return None


def sets_up_only(cell: Cell, origins: dict[str, str]) -> bool:
    """Whether the cell only imports and makes process-wide settings that read imported names only; its
    imports join `origins` (name -> what was imported), which the prelude's later cells see."""
    try:
        tree = parse_python(executable_source(cell)[0])
    except (CellMagicError, SyntaxError, ValueError):
        return False
    seen = dict(origins)
    found = False
    for statement in tree.body:
        if isinstance(statement, ast.Import | ast.ImportFrom):
            seen.update((bound, origin) for bound, origin, _ in import_bindings(statement))
            found = True
        elif setting_label(statement, seen.get) is not None or _seeds(statement, seen):
            names = {n.id for n in ast.walk(statement) if isinstance(n, ast.Name)}
            if any(name not in seen and not hasattr(builtins, name) for name in names):
                return False
            found = True
        elif not isinstance(statement, ast.Pass):
            return False
    origins.update(seen)
    return found


def _seeds(statement: ast.stmt, origins: dict[str, str]) -> bool:
    """`np.random.seed(0)`: in the prelude, every step starts from the seed, as the notebook does."""
    if not isinstance(statement, ast.Expr) or not isinstance(statement.value, ast.Call):
        return False
    event = generator_event(statement.value, qualified(statement.value.func, origins.get))
    return event is not None and event[1]


def is_import_only(cell: Cell) -> bool:
    try:
        source, _ = executable_source(cell)
        tree = parse_python(source)
    except (CellMagicError, SyntaxError, ValueError):
        return False
    imports = [s for s in tree.body if isinstance(s, ast.Import | ast.ImportFrom)]
    return bool(imports) and all(isinstance(s, ast.Import | ast.ImportFrom | ast.Pass) for s in tree.body)
