"""Pipeline parameter values: which ones KFP carries exactly, `--param` text typed by its parameter, and how a
value travels from the pipeline function into a step's cells.

KFP passes bool, int, float and str parameters natively, but numbers always as doubles: an int is exact only
up to 2**53, and nan or infinity cannot be written at all. A list or dict parameter would travel as a protobuf
`Value`, where every number is a double too (`[2, 3]` would arrive as `[2.0, 3.0]`), so lists and dicts travel
as JSON text in a `str` parameter instead, decoded by the step before its cells run: ints (even beyond 2**53),
floats, bools, None and strings arrive exactly as the notebook wrote them.

One checker, `value_problem`, decides what a parameter may hold; resolve applies it to parameter cells and
`parameters.values`, `parse_params` to `--param`: whatever validate accepts, build compiles and a run passes.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from kale_yaml import diagnostics as ky
from kale_yaml.errors import Collector, RunError
from kale_yaml.resolve.model import Parameter, ParameterValue
from kale_yaml.suggest import did_you_mean

KfpValue = bool | int | float | str  # what a pipeline function's parameter receives
MAX_EXACT_INT = 2**53  # the largest magnitude a double holds for every integer up to it
MAX_DEPTH = 100  # nesting of lists and dicts; far beyond real parameters, well within recursion limits
JSON_TYPES = frozenset({"list", "dict"})  # parameter types that travel as JSON text
_TRUE, _FALSE = {"true", "1", "yes", "on"}, {"false", "0", "no", "off"}
# What a literal of a kind KFP cannot carry is called, and what to write instead.
_INSTEAD = {
    "tuple": ("a tuple", "a list"),
    "set": ("a set", "a list"),
    "frozenset": ("a frozenset", "a list"),
    "bytes": ("bytes", "a str"),
    "bytearray": ("a bytearray", "a str"),
    "complex": ("a complex number", "a list of two floats, [real, imag],"),
}

ValuePath = tuple[str | int, ...]  # keys and indexes from a parameter to a part of its value


@dataclass(frozen=True)
class ValueProblem:
    """Why KFP cannot carry a value: `path` leads from the parameter to the culprit (keys and indexes)."""

    path: ValuePath
    message: str

    def subject(self, name: str) -> str:
        """`sizes` for the value itself, `cfg['a'][0]` for something inside it."""
        return name + "".join(f"[{step!r}]" for step in self.path)


def value_problem(value: object) -> ValueProblem | None:
    """The first reason (in reading order) KFP could not carry `value` exactly as a parameter, or None."""
    if value is None:
        return ValueProblem(
            (),
            "None cannot be a parameter's value (KFP has no null parameters), only inside a list or dict",
        )
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) > MAX_EXACT_INT:
        return ValueProblem(
            (),
            f"{value} is beyond 2**53, the largest integer KFP passes exactly (it sends numbers as doubles);"
            " write it as a string, or inside a list or dict, which travel as JSON",
        )
    # A loop over a stack, not recursion: `--param` JSON can nest deeper than Python recurses.
    pending: list[tuple[ValuePath, object]] = [((), value)]
    while pending:
        path, item = pending.pop()
        if isinstance(item, list | dict) and len(path) >= MAX_DEPTH:
            return ValueProblem((), f"lists and dicts are nested more than {MAX_DEPTH} deep")
        problem = _item_problem(item)
        if problem is not None:
            return ValueProblem(path, problem)
        if isinstance(item, dict):
            for key in item:
                problem = _key_problem(key)
                if problem is not None:
                    return ValueProblem(path, problem)
            pending.extend(((*path, key), child) for key, child in reversed(item.items()))
        elif isinstance(item, list):
            pending.extend(((*path, index), child) for index, child in reversed(list(enumerate(item))))
    return None


def _item_problem(item: object) -> str | None:
    """What is wrong with one value in itself (its children are looked at separately)."""
    if item is None or isinstance(item, bool | list | dict):
        return None
    if isinstance(item, int):
        try:
            str(item)
        except ValueError as exc:  # Python refuses to write ints of more than 4300 digits as text
            return f"this int cannot be written as JSON text: {exc}"
        return None
    if isinstance(item, float):
        if math.isfinite(item):
            return None
        overflow = " (1e400 and other literals beyond 1.8e308 are inf)" if math.isinf(item) else ""
        return f"{item!r} is not a finite number, and KFP passes only finite ones{overflow}"
    if isinstance(item, str):
        return _surrogate_problem("the string", item)
    kind = type(item).__name__
    noun, instead = _INSTEAD.get(kind, (f"{_article(kind)} {kind}", "a bool, int, float, str, list or dict"))
    return f"{noun} cannot be a parameter's value; write {instead} instead"


def _key_problem(key: object) -> str | None:
    if isinstance(key, str):
        return _surrogate_problem(f"the key {key!r}", key)
    kind = type(key).__name__
    suggestion = f"write {str(key)!r}" if isinstance(key, int | float) else "use a string"
    return (
        f"the key {key!r} is {_article(kind)} {kind}, but a dict parameter travels as JSON, whose keys"
        f" are strings: {suggestion}"
    )


def _surrogate_problem(what: str, text: str) -> str | None:
    """Protobuf and YAML need UTF-8, which has no lone surrogates (what a `\\ud800` escape makes)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        bad = text[exc.start : exc.end]
        return f"{what} holds {bad!r}, a lone surrogate UTF-8 cannot encode; remove it"
    return None


def annotation_problem(annotation: str | None, value: ParameterValue) -> str | None:
    """Why `name: ANNOTATION = value` disagrees with itself, or None. `annotation` is the annotation's base
    name (`list` for `list[int]`); None when it is something else, which is taken as written."""
    kind = type(value).__name__
    if annotation not in ("bool", "int", "float", "str", "list", "dict") or annotation == kind:
        return None
    if annotation == "float" and kind == "int":
        return (
            f"is annotated float but {value!r} is an int, and KFP would pass a float; write {value!r}.0"
            " (or annotate it int)"
        )
    return f"is annotated {annotation} but {_short(value)} is {_article(kind)} {kind}; make the two agree"


def _short(value: object) -> str:
    return _abbreviated(repr(value), 40)


def _article(kind: str) -> str:
    return "an" if kind[0] in "aeiou" else "a"


def kfp_type(type_name: str) -> str:
    """The annotation a parameter of this type has in generated code."""
    return "str" if type_name in JSON_TYPES else type_name


def encode(value: ParameterValue) -> KfpValue:
    """What the pipeline function receives for `value`: lists and dicts as their JSON text."""
    if isinstance(value, list | dict):
        return json.dumps(value, ensure_ascii=False)
    return value


def received(type_name: str, port: str) -> str:
    """The expression a step hands its cells for the parameter port `port`: lists and dicts decoded from
    their JSON by the generated component, which imports json as `_json` (its locals start with `_`, so no
    parameter port can shadow it)."""
    return f"_json.loads({port})" if type_name in JSON_TYPES else port


def pipeline_arguments(values: Mapping[str, ParameterValue]) -> dict[str, KfpValue]:
    """The keyword arguments of the pipeline function (or of a KFP run) for these parameter values."""
    return {name: encode(value) for name, value in values.items()}


def parse_params(declared: Iterable[Parameter], raw: Mapping[str, str]) -> dict[str, ParameterValue]:
    """`--param NAME=VALUE` strings typed by each parameter's type and checked as defaults are; every
    problem at once, as a `RunError`."""
    parameters = {p.name: p for p in declared}
    errors = Collector()
    values: dict[str, ParameterValue] = {}
    for name, text in raw.items():
        parameter = parameters.get(name)
        if parameter is None:
            known = ", ".join(parameters) or "none"
            suggestion = did_you_mean(name, parameters)
            message = f"unknown parameter '{name}'{suggestion} (parameters: {known})"
            errors.add(ky.UNKNOWN_PARAMETER.at("--param", message))
            continue
        try:
            value = _typed(parameter, text)
        except ValueError as exc:
            errors.add(ky.BAD_PARAM_VALUE.at("--param", f"{name}: {exc}"))
            continue
        problem = value_problem(value)
        if problem is not None:
            errors.add(ky.BAD_PARAM_VALUE.at("--param", f"{problem.subject(name)}: {problem.message}"))
            continue
        values[name] = value
    errors.raise_if_any(RunError)
    return values


def _typed(parameter: Parameter, text: str) -> ParameterValue:
    kind = parameter.type_name
    if kind == "bool":
        if text.lower() in _TRUE:
            return True
        if text.lower() in _FALSE:
            return False
        raise ValueError(f"'{_abbreviated(text)}' is not true or false")
    if kind == "int":
        try:
            return int(text)
        except ValueError:
            raise ValueError(f"'{_abbreviated(text)}' is not an integer") from None
    if kind == "float":
        try:
            return float(text)
        except ValueError:
            raise ValueError(f"'{_abbreviated(text)}' is not a number") from None
    if kind in JSON_TYPES:
        return _from_json(kind, text)
    return text


def _from_json(kind: str, text: str) -> ParameterValue:
    def refuse(constant: str) -> float:
        raise ValueError(
            f"'{_abbreviated(text)}' holds {constant}, which JSON does not allow and KFP cannot pass;"
            " use a finite number or null"
        )

    try:
        value = json.loads(text, parse_constant=refuse)
    except json.JSONDecodeError:
        raise ValueError(f"'{_abbreviated(text)}' is not a JSON {kind}") from None
    except RecursionError:
        raise ValueError(f"'{_abbreviated(text)}' is nested too deeply") from None
    if not isinstance(value, list if kind == "list" else dict):
        raise ValueError(f"'{_abbreviated(text)}' is not a JSON {kind}")
    return value


def _abbreviated(text: str, limit: int = 60) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."
