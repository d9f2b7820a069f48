"""Any string or value from a sidecar or notebook becomes Python text that evaluates back to exactly it."""

from __future__ import annotations

import ast
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from kale_yaml.render import pyliteral

scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text()
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float) and a != a:
        return b != b
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    return type(a) is type(b) and a == b


def _evaluate(text: str) -> Any:
    return eval(
        compile(ast.parse(text, mode="eval"), "<literal>", "eval"), {"__builtins__": {"float": float}}
    )


@settings(max_examples=500)
@given(values)
def test_literal_evaluates_back_to_the_value(value: Any) -> None:
    text = pyliteral.literal(value)
    assert "\n" not in text
    assert _same(_evaluate(text), value)


@settings(max_examples=500)
@given(st.text())
def test_block_evaluates_back_to_the_text(text: str) -> None:
    assert ast.literal_eval(pyliteral.block(text)) == text


def test_block_keeps_ordinary_code_readable() -> None:
    code = 'df = load("wine")\nprint(f"{len(df)} rows")\n'
    assert pyliteral.block(code) == "'''\\\n" + code + "'''"


def test_block_falls_back_to_repr_for_triple_quotes_and_backslashes() -> None:
    for code in ("x = '''a'''\ny = 1\n", 'path = "C:\\\\data"\nz = 2\n', "a = 1\nb = 'c'"):
        assert pyliteral.block(code) == repr(code)


@given(st.text())
def test_comment_is_one_line(text: str) -> None:
    rendered = pyliteral.comment(text)
    assert "\n" not in rendered and "\r" not in rendered
    assert all(ch.isprintable() for ch in rendered)
