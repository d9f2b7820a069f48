"""The pipeline's parameters: `name = literal` lines of the parameter cells, then `parameters.values`, each
checked as KFP would carry it (see parameters.py)."""

from __future__ import annotations

import ast
import keyword
import re
from collections.abc import Callable, Sequence
from typing import Any

from kale_yaml import diagnostics as ky
from kale_yaml.diagnostics import Kind
from kale_yaml.errors import Collector
from kale_yaml.load.cells import Cell, Notebook
from kale_yaml.load.document import Document
from kale_yaml.resolve.model import Parameter, ParameterValue
from kale_yaml.resolve.parameters import annotation_problem, value_problem

# Names the generated pipeline function uses itself; a parameter of the same name would shadow them.
RESERVED_PARAMETER_NAMES = frozenset({"dsl", "kfp", "compiler", "kubernetes"})
_PARAMETER_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")


def read_parameters(
    document: Document, notebook: Notebook, cells: Sequence[int], values: dict[str, Any], errors: Collector
) -> tuple[Parameter, ...]:
    found: dict[str, Parameter] = {}
    lines: dict[str, int] = {}
    for number in cells:
        for name, value, line in _parameter_assignments(notebook.cell(number), notebook, errors):
            found[name] = Parameter(name=name, default=value, type_name=type(value).__name__, cell=number)
            lines[name] = line
    for name, value in values.items():
        issue = value_problem(value)
        if issue is not None:
            errors.add(
                document.at(("parameters", "values", name, *issue.path), ky.PARAMETER_VALUE, issue.message)
            )
            continue
        previous = found.get(name)
        found[name] = Parameter(
            name=name, default=value, type_name=type(value).__name__, cell=previous.cell if previous else None
        )
    for name, parameter in found.items():
        problem = _parameter_name_problem(name)
        if problem is None:
            continue
        kind, message = problem
        if name in values:
            errors.add(document.at(("parameters", "values", name), kind, message))
        else:
            errors.add(kind.at(notebook.display_name, message, cell=parameter.cell, line=lines.get(name)))
    return tuple(found.values())


def _parameter_name_problem(name: str) -> tuple[Kind, str] | None:
    if not _PARAMETER_NAME.match(name) or keyword.iskeyword(name):
        return (
            ky.PARAMETER_NAME,
            f"parameter '{name}' must start with an ASCII letter and use letters, digits and _ (KFP's rule)",
        )
    if name in RESERVED_PARAMETER_NAMES:
        reserved = ", ".join(sorted(RESERVED_PARAMETER_NAMES))
        message = f"parameter name '{name}' is reserved by the generated pipeline ({reserved}); rename it"
        return ky.RESERVED_PARAMETER_NAME, message
    return None


Problem = Callable[[int | None, Kind, str], None]  # a problem at a line of the cell


def _parameter_assignments(
    cell: Cell, notebook: Notebook, errors: Collector
) -> list[tuple[str, ParameterValue, int]]:
    def problem(line: int | None, kind: Kind, message: str) -> None:
        errors.add(kind.at(notebook.display_name, message, cell=cell.number, line=line))

    tree = _parse(cell, problem)
    if tree is None:
        return []
    found = (_assignment(statement, problem) for statement in tree.body)
    return [assignment for assignment in found if assignment is not None]


def _parse(cell: Cell, problem: Problem) -> ast.Module | None:
    try:
        return ast.parse(cell.source)
    except SyntaxError as exc:
        problem(exc.lineno, ky.PARAMETER_CELL_SYNTAX, f"parameter cell does not parse: {exc.msg}")
    except UnicodeEncodeError as exc:  # the notebook's JSON escaped a lone surrogate into the cell
        bad = cell.source[exc.start : exc.end]
        line = cell.source.count("\n", 0, exc.start) + 1
        problem(
            line,
            ky.PARAMETER_CELL_SYNTAX,
            f"parameter cell holds {bad!r}, a lone surrogate UTF-8 cannot encode; remove it",
        )
    except ValueError as exc:  # a NUL byte
        problem(None, ky.PARAMETER_CELL_SYNTAX, f"parameter cell does not parse: {exc}")
    except (RecursionError, MemoryError):  # Python's parser gives up on deep nesting such as 1+1+...+1
        problem(None, ky.PARAMETER_CELL_SYNTAX, "parameter cell is nested too deeply for Python to parse")
    return None


def _assignment(statement: ast.stmt, problem: Problem) -> tuple[str, ParameterValue, int] | None:
    """`name = literal` (or `name: type = literal`) as (name, value, line); None after a problem."""
    target: ast.expr | None = None
    value: ast.expr | None = None
    annotation: str | None = None
    if isinstance(statement, ast.Assign) and len(statement.targets) == 1:
        target, value = statement.targets[0], statement.value
    elif isinstance(statement, ast.AnnAssign) and statement.value is not None:
        target, value = statement.target, statement.value
        annotation = _annotation_name(statement.annotation)
    if not isinstance(target, ast.Name) or value is None:
        problem(
            statement.lineno, ky.PARAMETER_STATEMENT, "a parameter cell may hold only `name = literal` lines"
        )
        return None
    name = target.id
    try:
        literal = ast.literal_eval(value)
    except ValueError:
        problem(
            statement.lineno,
            ky.PARAMETER_NOT_LITERAL,
            f"'{name}' is not set to a literal (a number, string, bool, list or dict)",
        )
        return None
    except TypeError as exc:  # a literal Python cannot build: a list as a dict key or set item
        problem(
            statement.lineno,
            ky.PARAMETER_UNBUILDABLE,
            f"parameter '{name}' cannot be built: {exc} (a list or dict cannot be a dict key or a set"
            " item; a parameter's dict keys are strings)",
        )
        return None
    value_issue = value_problem(literal)
    if value_issue is not None:
        where = f", at {value_issue.subject(name)}" if value_issue.path else ""
        problem(statement.lineno, ky.PARAMETER_VALUE, f"parameter '{name}'{where}: {value_issue.message}")
        return None
    disagreement = annotation_problem(annotation, literal)
    if disagreement is not None:
        problem(statement.lineno, ky.PARAMETER_ANNOTATION, f"parameter '{name}' {disagreement}")
        return None
    return name, literal, statement.lineno


def _annotation_name(annotation: ast.expr) -> str | None:
    """`int` for `int` and `list` for `list[int]`; None for what we do not read (`Optional[int]`, "int")."""
    base = annotation.value if isinstance(annotation, ast.Subscript) else annotation
    return base.id if isinstance(base, ast.Name) else None
