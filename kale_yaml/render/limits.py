"""What the compiled pipeline must respect where it runs: the size of one argument of a step's command.

KFP runs a lightweight component as `sh -c SCRIPT ... PROGRAM`: the step's whole program (kfp's imports, the
step runtime, the component function with the step's cells as literals) is ONE argument of the container's
command. Linux refuses to start a process with an argument longer than MAX_ARG_STRLEN, 32 pages of 4 KiB
(its terminating NUL counted), so such a step could never start: not in a pod, and not in `kale-yaml run`,
which runs the same command. Build refuses it instead, at the step, measured on the compiled command itself.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

import yaml

from kale_yaml import diagnostics as ky
from kale_yaml.errors import BuildError, Diagnostic
from kale_yaml.load.cells import cells_phrase
from kale_yaml.render import pyliteral
from kale_yaml.render.view import PipelineView, RenderedStep

MAX_ARGUMENT_BYTES = 32 * 4096  # MAX_ARG_STRLEN: an argument's bytes and its terminating NUL
_FUNCTION_FLAG = "--function_to_execute"
_LIMIT = "KFP passes a step's code as one argument, at most 128 KiB"


def refuse_oversized_steps(view: PipelineView, compiled: str) -> None:
    """Raise BuildError when an argument of a step's compiled command is longer than Linux allows one."""
    problems = oversized_steps(view, compiled)
    if problems:
        raise BuildError(problems)


def oversized_steps(view: PipelineView, compiled: str) -> list[Diagnostic]:
    """One diagnostic per component whose longest command argument (its program) exceeds the limit."""
    steps = {step.function: step for step in view.steps}
    problems: list[Diagnostic] = []
    for function, size in _longest_arguments(compiled):
        if size <= MAX_ARGUMENT_BYTES:
            continue
        step = steps.get(function)
        if step is None:  # a component of kale-yaml's own (a snapshot): a kale-yaml bug, said plainly
            where = view.pipeline.config.where
            message = f"the component '{function}' compiles to a {_kib(size)} command; {_LIMIT}"
            problems.append(where.at(ky.STEP_TOO_LARGE, message))
        else:
            problems.append(_step_problem(view, step, size))
    return problems


def _step_problem(view: PipelineView, step: RenderedStep, size: int) -> Diagnostic:
    name, cells = step.step.name, step.step.config.cells
    number, cell_size, whose = max(_cell_sizes(view, step), key=lambda found: found[1])
    largest = f"{_kib(cell_size)} of it {whose} {number}"
    if whose == "prelude cell":
        largest += ", which every step carries"
    carried = sum(len(content.encode("utf-8")) for _, _, content in step.shipped)
    if carried > cell_size:  # the local modules and `files:` the step carries weigh most
        largest = f"{_kib(carried)} of it the local modules and files it carries"
    message = (
        f"step '{name}' ({cells_phrase(cells)}) compiles to a {_kib(size)} command, {largest}; {_LIMIT}:"
        " split the step, or read large data from a file or volume"
    )
    return step.step.config.where.child("cells").at(ky.STEP_TOO_LARGE, message)


def _cell_sizes(view: PipelineView, step: RenderedStep) -> Iterator[tuple[int, int, str]]:
    """(cell number, bytes in the program, "cell" or "prelude cell") for each cell the step's code holds."""
    for number, literal in view.prelude:
        yield number, len(literal.encode("utf-8")), "prelude cell"
    for number, source in step.step.sources:
        yield number, len(pyliteral.block(source).encode("utf-8")), "cell"


def _longest_arguments(compiled: str) -> Iterator[tuple[str, int]]:
    """(component function, bytes of its longest command argument with its NUL) for each compiled executor."""
    loader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    for document in yaml.load_all(compiled, Loader=loader):
        executors = _mapping(_mapping(document).get("deploymentSpec")).get("executors")
        for executor in _mapping(executors).values():
            container = _mapping(_mapping(executor).get("container"))
            arguments = [str(a) for key in ("command", "args") for a in _sequence(container.get(key))]
            function = _value_after(arguments, _FUNCTION_FLAG)
            if function is not None and arguments:
                yield function, 1 + max(len(argument.encode("utf-8")) for argument in arguments)


def _mapping(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _sequence(value: object) -> Iterable[object]:
    return value if isinstance(value, list) else ()


def _value_after(arguments: list[str], flag: str) -> str | None:
    for index, argument in enumerate(arguments[:-1]):
        if argument == flag:
            return arguments[index + 1]
    return None


def _kib(size: int) -> str:
    """Rounded up, so that a size just over 128 KiB never reads as 128 KiB."""
    return f"{math.ceil(size * 10 / 1024) / 10:.1f} KiB"
