"""Checks a loaded sidecar against `schemas/pipeline.kale.schema.json` and explains every mismatch.

jsonschema finds the errors; this module turns each into one short, located `Diagnostic`. A schema node may
carry `x-message` (a string, or a mapping from keyword to string) with a `{value}` placeholder: that wording
replaces the generic one when a keyword other than type/required/additionalProperties fails on that node.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError

from kale_yaml import diagnostics as ky
from kale_yaml.diagnostics import Kind
from kale_yaml.errors import SchemaError
from kale_yaml.load.document import Document, KeyPath
from kale_yaml.suggest import closest

SCHEMA_FILE = "pipeline.kale.schema.json"
_HERE = Path(__file__).resolve().parent.parent  # the kale_yaml package folder
# An installed wheel carries the schema inside the package; a checkout has it in the top-level folder.
_SCHEMA_PLACES = (_HERE / "schemas" / SCHEMA_FILE, _HERE.parent / "schemas" / SCHEMA_FILE)

_TYPE_NAMES = {
    "string": "a string",
    "integer": "an integer",
    "number": "a number",
    "boolean": "true or false",
    "array": "a list",
    "object": "a mapping",
    "null": "null",
}
_STRUCTURAL = frozenset({"type", "required", "additionalProperties"})
# `{from: {heading: A}, to: {match: B}}` is one level; nobody writes more than two.
MAX_SELECTOR_NESTING = 8

Finding = tuple[KeyPath, str, str, Kind]  # where, message, the failing keyword, the kind of problem


@functools.cache
def schema_text() -> str:
    """The schema file's text, as `kale-yaml schema` prints it."""
    for place in _SCHEMA_PLACES:
        if place.is_file():
            return place.read_text(encoding="utf-8")
    raise FileNotFoundError(f"{SCHEMA_FILE} is missing from {' and '.join(str(p) for p in _SCHEMA_PLACES)}")


@functools.cache
def load_schema() -> dict[str, Any]:
    """The sidecar's JSON Schema (draft 2020-12). Callers must not modify it."""
    schema: dict[str, Any] = json.loads(schema_text())
    return schema


@functools.cache
def _validator() -> Draft202012Validator:
    return Draft202012Validator(load_schema())


def check(document: Document) -> None:
    """Raise `SchemaError` with one diagnostic per problem if `document.data` does not fit the schema."""
    too_deep = [path for place, cells in _selectors(document.data) for path in _nested_too_deep(cells, place)]
    if too_deep:
        message = f"selectors nest from/to more than {MAX_SELECTOR_NESTING} levels deep; a range needs one"
        raise SchemaError([document.at(path, ky.SELECTOR_TOO_DEEP, message) for path in too_deep])
    findings: dict[tuple[KeyPath, str], tuple[str, Kind]] = {}
    for error in _validator().iter_errors(document.data):
        for path, message, keyword, kind in _explain(error):
            findings.setdefault((path, message), (keyword, kind))
    # A value of the wrong type also fails const and enum; the type message alone says it best.
    mistyped = {path for (path, _), (keyword, _) in findings.items() if keyword == "type"}
    diagnostics = [
        document.at(path, kind, message)
        for (path, message), (keyword, kind) in findings.items()
        if keyword not in ("const", "enum") or path not in mistyped
    ]
    if diagnostics:
        diagnostics.sort(key=lambda d: (d.line or 0, d.col or 0, d.message))
        raise SchemaError(diagnostics)


def _selectors(data: Any) -> Iterator[tuple[KeyPath, Any]]:
    """Every cell selector of the sidecar, with where it is."""
    if not isinstance(data, Mapping):
        return
    for key in ("prelude", "skip"):
        if key in data:
            yield (key,), data[key]
    parameters = data.get("parameters")
    if isinstance(parameters, Mapping) and "cells" in parameters:
        yield ("parameters", "cells"), parameters["cells"]
    steps = data.get("steps")
    for index, step in enumerate(steps if isinstance(steps, list) else []):
        if isinstance(step, Mapping) and "cells" in step:
            yield ("steps", index, "cells"), step["cells"]


def _nested_too_deep(selector: Any, path: KeyPath, level: int = 0) -> Iterator[KeyPath]:
    """The from/to keys nested more than MAX_SELECTOR_NESTING deep: jsonschema recurses about eight Python
    frames per level of the schema's recursive selector, so the bound is checked before it runs."""
    if isinstance(selector, list):
        for index, item in enumerate(selector):
            yield from _nested_too_deep(item, (*path, index), level)
    elif isinstance(selector, Mapping):
        for key in ("from", "to"):
            if key not in selector:
                continue
            if level == MAX_SELECTOR_NESTING:
                yield (*path, key)
            else:
                yield from _nested_too_deep(selector[key], (*path, key), level + 1)


def _explain(error: ValidationError) -> Iterator[Finding]:
    keyword = str(error.validator)
    node = error.schema if isinstance(error.schema, Mapping) else {}
    value: Any = error.instance
    path: KeyPath = tuple(error.absolute_path)
    if "propertyNames" in error.absolute_schema_path:  # the failing value is a key of the mapping
        path = (*path, value)
        if keyword == "type":
            yield path, f"key {_show(value)} must be text; put it in quotes", keyword, ky.KEY_NOT_TEXT
            return
    if keyword == "additionalProperties":
        yield from _unknown_keys(path, value, list(node.get("properties", {})))
    elif keyword == "required":
        for name in node.get("required", []):
            if isinstance(value, Mapping) and name not in value:
                yield path, f"missing required key '{name}'", keyword, ky.MISSING_KEY
    elif keyword == "type":
        yield path, _wrong_type(node.get("type", []), value), keyword, ky.WRONG_TYPE
    elif keyword in ("anyOf", "oneOf"):
        yield from _choice(error, path, node)
    elif keyword == "uniqueItems" and isinstance(value, list):
        index = next((i for i, item in enumerate(value) if item in value[:i]), 0)
        yield (*path, index), f"{_show(value[index])} is listed more than once", keyword, ky.DUPLICATE_ITEM
    else:
        custom = _custom(node, keyword)
        message = custom.replace("{value}", _show(value)) if custom else _generic(keyword, error)
        yield path, message, keyword, ky.INVALID_VALUE


def _choice(error: ValidationError, path: KeyPath, node: Mapping[str, Any]) -> Iterator[Finding]:
    """A value that fits none of anyOf/oneOf: explain the one branch it was meant for, else say what fits."""
    value: Any = error.instance
    keyword = str(error.validator)
    branches = [_resolve(b) for b in node.get(keyword, [])]
    if isinstance(value, Mapping):
        known = [k for b in branches for k in b.get("properties", {})]
        unknown = [k for k in value if k not in known]
        if known and unknown:
            yield from _unknown_keys(path, value, list(dict.fromkeys(known)))
            return
        if known and len(value) > 1 and not any(set(value) <= set(b.get("properties", {})) for b in branches):
            together = f"{_join([_show(k) for k in value], 'and')} cannot be used together"
            yield path, together, keyword, ky.EXCLUSIVE_KEYS
            return
    by_branch: dict[int, list[ValidationError]] = {}
    for sub in error.context:
        by_branch.setdefault(int(sub.relative_schema_path[0]), []).append(sub)
    if len(by_branch) == len(branches):  # otherwise oneOf matched several branches
        fits = {index: _fit(subs, path) for index, subs in by_branch.items()}
        best = min(fits.values(), default=2)
        chosen = [index for index, fit in fits.items() if fit == best]
        if best < 2 and len(chosen) == 1:
            for sub in by_branch[chosen[0]]:
                yield from _explain(sub)
            return
    custom = _custom(node, keyword)
    if custom:
        yield path, custom.replace("{value}", _show(value)), keyword, ky.INVALID_VALUE
        return
    types: list[str] = []
    for branch in branches:
        kinds = branch.get("type", [])
        types.extend(t for t in ([kinds] if isinstance(kinds, str) else kinds) if t not in types)
    if types:
        yield path, _wrong_type(types, value), keyword, ky.WRONG_TYPE
    else:
        yield path, f"{_show(value)} is not valid here", keyword, ky.INVALID_VALUE


def _fit(errors: Sequence[ValidationError], path: KeyPath) -> int:
    """How well a value fits a branch: 0 a detail is wrong, 1 a key is missing, 2 the wrong shape."""
    here = {str(e.validator) for e in errors if tuple(e.absolute_path) == path}
    if here & {"type", "additionalProperties", "const", "enum"}:
        return 2
    return 1 if "required" in here else 0


def _resolve(schema: Any) -> Mapping[str, Any]:
    """Follow a local `#/$defs/...` reference."""
    while isinstance(schema, Mapping) and isinstance(schema.get("$ref"), str):
        target: Any = load_schema()
        for part in schema["$ref"].removeprefix("#/").split("/"):
            target = target[part]
        schema = target
    return schema if isinstance(schema, Mapping) else {}


def _custom(node: Mapping[str, Any], keyword: str) -> str | None:
    if keyword in _STRUCTURAL:
        return None
    message = node.get("x-message")
    if isinstance(message, Mapping):
        message = message.get(keyword)
    return message if isinstance(message, str) else None


def _unknown_keys(path: KeyPath, value: Any, allowed: list[str]) -> Iterator[Finding]:
    if not isinstance(value, Mapping):
        return
    for key in value:
        if key in allowed:
            continue
        close = closest(str(key), allowed)
        if close:
            message = f"unknown key {_show(key)}; did you mean '{close}'?"
        else:
            message = f"unknown key {_show(key)} (allowed: {', '.join(allowed)})"
        yield (*path, key), message, "additionalProperties", ky.UNKNOWN_KEY


def _wrong_type(expected: str | Sequence[str], value: Any) -> str:
    kinds = [expected] if isinstance(expected, str) else list(expected)
    names = [_TYPE_NAMES.get(k, k) for k in kinds if not (k == "integer" and "number" in kinds)]
    if len(names) > 1:
        names = [n.replace("true or false", "true/false") for n in names]
    wanted = _join(names, "or")
    return f"expected {wanted}, got {_describe(value)}{_hint(kinds, value)}"


def _join(words: Sequence[str], last: str) -> str:
    return words[0] if len(words) == 1 else f"{', '.join(words[:-1])} {last} {words[-1]}"


def _hint(kinds: list[str], value: Any) -> str:
    if isinstance(value, str) and {"integer", "number"} & set(kinds):
        try:
            float(value)
        except ValueError:
            pass
        else:
            return "; write the number without quotes"
    if isinstance(value, str) and "boolean" in kinds and value.lower() in ("true", "false", "yes", "no"):
        return "; write true or false without quotes"
    if "string" in kinds and isinstance(value, int | float) and not isinstance(value, bool):
        return "; put it in quotes to make it text"
    return ""


def _describe(value: Any) -> str:
    if value is None:
        return "an empty value (null)"
    if isinstance(value, bool):
        return "true" if value else "false"
    kinds = {int: "an integer", float: "a number", str: "a string", list: "a list", dict: "a mapping"}
    kind = next((name for t, name in kinds.items() if isinstance(value, t)), f"a {type(value).__name__}")
    return f"{kind} ({_show(value)})"


def _show(value: Any, limit: int = 60) -> str:
    """A value as a user would recognise it: strings quoted, everything else as JSON."""
    if isinstance(value, str):
        return repr(value if len(value) <= limit else value[: limit - 3] + "...")
    text = json.dumps(value, default=str, ensure_ascii=False)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _generic(keyword: str, error: ValidationError) -> str:
    limit: Any = error.validator_value
    value = _show(error.instance)
    match keyword:
        case "const":
            return f"expected {_show(limit)}, got {value}"
        case "enum":
            return f"{value} is not one of: {', '.join(str(v) for v in limit)}"
        case "pattern":
            return f"{value} does not match the pattern {limit}"
        case "minItems":
            return "must not be an empty list" if limit == 1 else f"needs at least {limit} items"
        case "minLength":
            return "must not be empty" if limit == 1 else f"must be at least {limit} characters long"
        case "maxLength":
            return f"is too long: at most {limit} characters"
        case "minimum" | "exclusiveMinimum":
            return f"must be {'at least' if keyword == 'minimum' else 'more than'} {limit}, got {value}"
        case "maximum" | "exclusiveMaximum":
            return f"must be {'at most' if keyword == 'maximum' else 'less than'} {limit}, got {value}"
        case "not":
            return f"{value} is not allowed here"
    return error.message
