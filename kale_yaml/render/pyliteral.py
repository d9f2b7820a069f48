"""Python source text for values, so no sidecar or notebook string can change what generated code does.

Every value reaches generated code through `literal()` (one line) or `block()` (code cells, kept readable as
a triple-quoted string where that is exactly equal to the value). Both are checked by property tests:
`ast.literal_eval(literal(v)) == v`.
"""

from __future__ import annotations

import math
from typing import Any

_FORBIDDEN_IN_BLOCK = ("\\", "'''", "\r")


def literal(value: Any) -> str:
    """A one-line Python expression that evaluates to `value` (plain data only)."""
    if value is None or isinstance(value, bool | int):
        return repr(value)
    if isinstance(value, float):
        if math.isfinite(value):
            return repr(value)
        return f"float({str(value)!r})"
    if isinstance(value, str):
        return repr(value)
    if isinstance(value, list | tuple):
        inner = ", ".join(literal(v) for v in value)
        return (
            f"({inner},)"
            if isinstance(value, tuple) and len(value) == 1
            else (f"({inner})" if isinstance(value, tuple) else f"[{inner}]")
        )
    if isinstance(value, dict):
        return "{" + ", ".join(f"{literal(k)}: {literal(v)}" for k, v in value.items()) + "}"
    raise TypeError(f"cannot write {type(value).__name__} as a Python literal")


def block(text: str) -> str:
    """A literal for multi-line code: triple-quoted when that reads back exactly, else repr()."""
    if _readable_as_block(text):
        return "'''\\\n" + text + "'''"
    return repr(text)


def _readable_as_block(text: str) -> bool:
    if "\n" not in text.rstrip("\n") or any(bad in text for bad in _FORBIDDEN_IN_BLOCK):
        return False
    if text.endswith("'"):
        return False
    return all(ch in "\n\t" or ch.isprintable() for ch in text)


def comment(text: str) -> str:
    """Text safe inside a `#` comment: one line, no control characters."""
    if all(ch.isprintable() for ch in text):
        return text
    return repr(text)[1:-1]
