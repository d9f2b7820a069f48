"""Names for generated code: unique within a scope and never a Python keyword."""

from __future__ import annotations

import keyword


def unique_name(name: str, taken: set[str]) -> str:
    """`name`, or `name_`, `name__`, ... : the first not in `taken` (which then holds it too)."""
    candidate = name
    while candidate in taken or keyword.iskeyword(candidate):
        candidate += "_"
    taken.add(candidate)
    return candidate
