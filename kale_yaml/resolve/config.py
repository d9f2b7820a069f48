"""From a schema-checked sidecar and its notebook to a `Config`: every code cell owned exactly once."""

from __future__ import annotations

import ast
import keyword
import re
from collections.abc import Sequence
from typing import Any

from kale_yaml.errors import Collector, Diagnostic, NotebookError
from kale_yaml.load.cells import Cell, Notebook
from kale_yaml.load.document import Document, KeyPath
from kale_yaml.resolve.model import Config, Metrics, Parameter, ParameterValue, StepConfig
from kale_yaml.resolve.parameters import annotation_problem, value_problem
from kale_yaml.resolve.selectors import SelectorContext, first_cell, is_open_from, select
from kale_yaml.suggest import did_you_mean

DEFAULT_IMAGE = "python:3.11-slim"
# Names the generated pipeline function uses itself; a parameter of the same name would shadow them.
RESERVED_PARAMETER_NAMES = frozenset({"dsl", "kfp", "compiler", "kubernetes"})
# Analysis names the providers of a value "prelude" and "parameter"; a step cannot share those names.
RESERVED_STEP_NAMES = frozenset({"prelude", "parameter"})
_PARAMETER_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")
# Keys of a step that only matter on a cluster; carried as written into StepConfig.settings.
CLUSTER_KEYS = (
    "resources",
    "retries",
    "timeout",
    "env",
    "secrets",
    "volumes",
    "node_selector",
    "tolerations",
    "labels",
    "annotations",
)


def resolve(document: Document, notebook: Notebook) -> Config:
    """Raises `NotebookError` with every selector, parameter and ownership problem at once."""
    data: dict[str, Any] = document.data
    errors = Collector()
    ctx = SelectorContext(document, notebook, errors)
    pipeline: dict[str, Any] = data["pipeline"]

    parameter_cells: tuple[int, ...] = ()
    raw_parameters: dict[str, Any] = data.get("parameters") or {}
    if "cells" in raw_parameters:
        parameter_cells = _code(select(raw_parameters["cells"], ("parameters", "cells"), ctx), notebook)
    prelude = _code(select(data["prelude"], ("prelude",), ctx), notebook) if "prelude" in data else ()
    skipped = _code(select(data["skip"], ("skip",), ctx), notebook) if "skip" in data else ()
    skip_set = set(skipped)
    parameter_cells = tuple(n for n in parameter_cells if n not in skip_set)
    prelude = tuple(n for n in prelude if n not in skip_set)
    parameters = _parameters(document, notebook, parameter_cells, raw_parameters.get("values") or {}, errors)

    steps = _steps(data["steps"], pipeline, ctx, skip_set)
    _check_names(document, steps, data, errors)
    _check_ownership(document, notebook, parameter_cells, prelude, skip_set, steps, errors)
    _check_notebook_order(document, steps, errors)
    errors.raise_if_any(NotebookError)

    metrics = None
    if "metrics" in data:
        metrics = Metrics(step=data["metrics"]["step"], names=tuple(data["metrics"]["names"]))
    return Config(
        document=document,
        notebook=notebook,
        name=pipeline["name"],
        description=pipeline.get("description"),
        experiment=pipeline.get("experiment"),
        parameters=parameters,
        parameter_cells=parameter_cells,
        prelude=prelude,
        skipped=tuple(sorted(skip_set)),
        steps=tuple(steps),
        metrics=metrics,
        volumes=tuple(data.get("volumes") or ()),
        snapshots=tuple(data.get("snapshots") or ()),
    )


def _code(numbers: Sequence[int], notebook: Notebook) -> tuple[int, ...]:
    return tuple(n for n in numbers if notebook.cell(n).cell_type == "code")


def _steps(
    raw_steps: list[dict[str, Any]], pipeline: dict[str, Any], ctx: SelectorContext, skip_set: set[int]
) -> list[StepConfig]:
    starts = [first_cell(step["cells"], ("steps", i, "cells"), ctx) for i, step in enumerate(raw_steps)]
    steps: list[StepConfig] = []
    for index, raw in enumerate(raw_steps):
        path: KeyPath = ("steps", index, "cells")
        open_end = None
        if is_open_from(raw["cells"]):
            later = [s for s in starts[index + 1 :] if s is not None]
            open_end = later[0] - 1 if later else None
        selected = select(raw["cells"], path, ctx, open_end)
        code = [n for n in selected if ctx.notebook.cell(n).cell_type == "code"]
        if selected and not code:
            what = f"cell {selected[0]}" if len(selected) == 1 else f"cells {_span(selected)}"
            ctx.error(
                path, f"selects only markdown or raw cells ({what}); a step needs at least one code cell"
            )
        elif code and all(n in skip_set for n in code):
            listed = ", ".join(str(n) for n in code)
            ctx.error(
                path, f"every code cell it selects ({listed}) is under 'skip'; the step would run nothing"
            )
        settings = {key: raw[key] for key in CLUSTER_KEYS if key in raw}
        steps.append(
            StepConfig(
                name=raw["name"],
                index=index,
                cells=tuple(n for n in code if n not in skip_set),
                after=tuple(raw.get("after") or ()),
                inputs=tuple(raw["inputs"]) if "inputs" in raw else None,
                outputs=tuple(raw["outputs"]) if "outputs" in raw else None,
                image=raw.get("image") or pipeline.get("image") or DEFAULT_IMAGE,
                # A step's packages add to the pipeline's: a step that needs xgboost still needs pandas.
                packages=tuple(
                    dict.fromkeys([*(pipeline.get("packages") or ()), *(raw.get("packages") or ())])
                ),
                cache=bool(raw.get("cache", pipeline.get("cache", True))),
                settings=settings,
            )
        )
    return steps


def _check_notebook_order(document: Document, steps: list[StepConfig], errors: Collector) -> None:
    """A step runs all its cells before the next step starts, so the steps' cells must follow the notebook's
    order: a step whose cells come before, or between, an earlier-listed step's cells would see other values
    than the notebook does. Cells that two steps claim are reported as overlaps and left out here."""
    owners: dict[int, int] = {}
    for step in steps:
        for number in step.cells:
            owners[number] = owners.get(number, 0) + 1
    earlier: list[tuple[StepConfig, tuple[int, ...]]] = []
    for step in steps:
        cells = tuple(n for n in step.cells if owners[n] == 1)
        if not cells:
            continue
        for other, other_cells in earlier:
            if cells[0] > other_cells[-1]:
                continue
            where = ("steps", step.index, "cells")
            inside = next((n for n in cells if other_cells[0] < n < other_cells[-1]), None)
            if cells[-1] < other_cells[0]:
                message = (
                    f"step '{step.name}' (cells {_runs(cells)}) is listed after step '{other.name}'"
                    f" (cells {_runs(other_cells)}) but comes before it in the notebook; list steps in"
                    " notebook order"
                )
            elif inside is not None:
                message = (
                    f"cell {inside} of step '{step.name}' lies between cells {other_cells[0]} and"
                    f" {other_cells[-1]} of step '{other.name}'; the pipeline runs a step's cells together,"
                    f" so the notebook's order would be lost: split '{other.name}' or move the cell"
                )
            else:
                message = (
                    f"step '{other.name}' (cells {_runs(other_cells)}) lies between cells {cells[0]} and"
                    f" {cells[-1]} of step '{step.name}'; the pipeline runs a step's cells together,"
                    f" so the notebook's order would be lost: split '{step.name}' or move the cells"
                )
            errors.add(document.diagnostic(where, message))
            break
        earlier.append((step, cells))


def _runs(numbers: Sequence[int]) -> str:
    """`3-5, 9`: the numbers as runs of consecutive cells."""
    runs: list[list[int]] = []
    for n in numbers:
        if runs and n == runs[-1][-1] + 1:
            runs[-1].append(n)
        else:
            runs.append([n])
    return ", ".join(_span(run) for run in runs)


def _span(numbers: Sequence[int]) -> str:
    return f"{numbers[0]}-{numbers[-1]}" if len(numbers) > 1 else str(numbers[0])


def _check_names(
    document: Document, steps: list[StepConfig], data: dict[str, Any], errors: Collector
) -> None:
    names = [s.name for s in steps]
    seen: dict[str, int] = {}
    for step in steps:
        if step.name in RESERVED_STEP_NAMES:
            errors.add(
                document.diagnostic(
                    ("steps", step.index, "name"), f"step name '{step.name}' is reserved; choose another name"
                )
            )
        if step.name in seen:
            errors.add(
                document.diagnostic(
                    ("steps", step.index, "name"),
                    f"step name '{step.name}' is already used by steps[{seen[step.name]}]",
                )
            )
        seen.setdefault(step.name, step.index)
    for step in steps:
        for i, other in enumerate(step.after):
            if other == step.name:
                errors.add(
                    document.diagnostic(("steps", step.index, "after", i), "a step cannot run after itself")
                )
            elif other not in seen:
                errors.add(
                    document.diagnostic(
                        ("steps", step.index, "after", i),
                        f"no step named '{other}'{did_you_mean(other, names)}",
                    )
                )
    metrics = data.get("metrics")
    if metrics and metrics["step"] not in seen:
        errors.add(
            document.diagnostic(
                ("metrics", "step"),
                f"no step named '{metrics['step']}'{did_you_mean(metrics['step'], names)}",
            )
        )
    volume_names = [v["name"] for v in data.get("volumes") or ()]
    for i, name in enumerate(volume_names):
        if name in volume_names[:i]:
            errors.add(document.diagnostic(("volumes", i, "name"), f"volume name '{name}' is declared twice"))
    for step in steps:
        for i, volume in enumerate(step.settings.get("volumes") or ()):
            if volume not in volume_names:
                errors.add(
                    document.diagnostic(
                        ("steps", step.index, "volumes", i),
                        f"no volume named '{volume}'{did_you_mean(volume, volume_names)}",
                    )
                )
    for i, snapshot in enumerate(data.get("snapshots") or ()):
        name = snapshot["volume"]
        if name not in volume_names:
            errors.add(
                document.diagnostic(
                    ("snapshots", i, "volume"),
                    f"no volume named '{name}'{did_you_mean(name, volume_names)}",
                )
            )


def _check_ownership(
    document: Document,
    notebook: Notebook,
    parameter_cells: Sequence[int],
    prelude: Sequence[int],
    skip_set: set[int],
    steps: list[StepConfig],
    errors: Collector,
) -> None:
    selectors_failed = bool(errors.errors)
    owners: dict[int, list[tuple[str, KeyPath]]] = {}
    for n in parameter_cells:
        owners.setdefault(n, []).append(("parameters", ("parameters", "cells")))
    for n in prelude:
        owners.setdefault(n, []).append(("the prelude", ("prelude",)))
    for step in steps:
        for n in step.cells:
            owners.setdefault(n, []).append((f"step '{step.name}'", ("steps", step.index, "cells")))
    for cell in notebook.cells:
        if cell.cell_type != "code" or cell.number in skip_set:
            continue
        claims = owners.get(cell.number, [])
        if len(claims) > 1:
            (first, _), (second, path) = claims[0], claims[1]
            message = f"{cell.describe()} belongs to both {first} and {second}; a code cell has one owner"
            errors.add(document.diagnostic(path, message))
        elif not claims and not cell.is_blank and not selectors_failed:
            # When a selector failed, the cells it meant to select would be reported here a second time.
            errors.add(
                Diagnostic(
                    file=notebook.display_name,
                    cell=cell.number,
                    message=f"this code cell{cell.describe().removeprefix(f'cell {cell.number}')} belongs to"
                    " no step; add it to a step's cells, the prelude or skip",
                )
            )


def _parameters(
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
            errors.add(document.diagnostic(("parameters", "values", name, *issue.path), issue.message))
            continue
        previous = found.get(name)
        found[name] = Parameter(
            name=name, default=value, type_name=type(value).__name__, cell=previous.cell if previous else None
        )
    for name, parameter in found.items():
        problem = _parameter_name_problem(name)
        if problem is None:
            continue
        if name in values:
            errors.add(document.diagnostic(("parameters", "values", name), problem))
        else:
            errors.add(
                Diagnostic(
                    file=notebook.display_name, cell=parameter.cell, line=lines.get(name), message=problem
                )
            )
    return tuple(found.values())


def _parameter_name_problem(name: str) -> str | None:
    if not _PARAMETER_NAME.match(name) or keyword.iskeyword(name):
        return (
            f"parameter '{name}' must start with an ASCII letter and use letters, digits and _ (KFP's rule)"
        )
    if name in RESERVED_PARAMETER_NAMES:
        reserved = ", ".join(sorted(RESERVED_PARAMETER_NAMES))
        return f"parameter name '{name}' is reserved by the generated pipeline ({reserved}); rename it"
    return None


def _parameter_assignments(
    cell: Cell, notebook: Notebook, errors: Collector
) -> list[tuple[str, ParameterValue, int]]:
    def problem(line: int | None, message: str) -> None:
        errors.add(Diagnostic(file=notebook.display_name, cell=cell.number, line=line, message=message))

    try:
        tree = ast.parse(cell.source)
    except SyntaxError as exc:
        problem(exc.lineno, f"parameter cell does not parse: {exc.msg}")
        return []
    except UnicodeEncodeError as exc:  # the notebook's JSON escaped a lone surrogate into the cell
        bad = cell.source[exc.start : exc.end]
        line = cell.source.count("\n", 0, exc.start) + 1
        problem(line, f"parameter cell holds {bad!r}, a lone surrogate UTF-8 cannot encode; remove it")
        return []
    except ValueError as exc:  # a NUL byte
        problem(None, f"parameter cell does not parse: {exc}")
        return []
    except (RecursionError, MemoryError):  # Python's parser gives up on deep nesting such as 1+1+...+1
        problem(None, "parameter cell is nested too deeply for Python to parse")
        return []
    found: list[tuple[str, ParameterValue, int]] = []
    for statement in tree.body:
        target: ast.expr | None = None
        value: ast.expr | None = None
        annotation: str | None = None
        if isinstance(statement, ast.Assign) and len(statement.targets) == 1:
            target, value = statement.targets[0], statement.value
        elif isinstance(statement, ast.AnnAssign) and statement.value is not None:
            target, value = statement.target, statement.value
            annotation = _annotation_name(statement.annotation)
        if not isinstance(target, ast.Name) or value is None:
            problem(statement.lineno, "a parameter cell may hold only `name = literal` lines")
            continue
        name = target.id
        try:
            literal = ast.literal_eval(value)
        except ValueError:
            problem(
                statement.lineno, f"'{name}' is not set to a literal (a number, string, bool, list or dict)"
            )
            continue
        except TypeError as exc:  # a literal Python cannot build: a list as a dict key or set item
            problem(
                statement.lineno,
                f"parameter '{name}' cannot be built: {exc} (a list or dict cannot be a dict key or a set"
                " item; a parameter's dict keys are strings)",
            )
            continue
        value_issue = value_problem(literal)
        if value_issue is not None:
            where = f", at {value_issue.subject(name)}" if value_issue.path else ""
            problem(statement.lineno, f"parameter '{name}'{where}: {value_issue.message}")
            continue
        disagreement = annotation_problem(annotation, literal)
        if disagreement is not None:
            problem(statement.lineno, f"parameter '{name}' {disagreement}")
            continue
        found.append((name, literal, statement.lineno))
    return found


def _annotation_name(annotation: ast.expr) -> str | None:
    """`int` for `int` and `list` for `list[int]`; None for what we do not read (`Optional[int]`, "int")."""
    base = annotation.value if isinstance(annotation, ast.Subscript) else annotation
    return base.id if isinstance(base, ast.Name) else None
