"""The sidecar as plain Python values plus the line and column of every key and item.

pyyaml's composer gives nodes with marks; we build the values ourselves from the node tree so that every
path (`("steps", 2, "cells")`) maps to where it was written, and so that duplicate keys are errors instead of
pyyaml's silent last-one-wins.

A few hundred bytes of YAML can describe a value that never ends (an alias inside the value it names), one
of billions of items (aliases of aliases) or one nested thousands deep, and Python's recursion gives out long
before memory does. The composer below bounds all three while it reads, and says where.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import yaml

from kale_yaml import diagnostics as ky
from kale_yaml.diagnostics import Kind
from kale_yaml.errors import Collector, Diagnostic, DocumentError
from kale_yaml.load.input_file import SIDECAR_LIMIT, UnreadableFile, read_input_file

KeyPath = tuple[str | int, ...]


def format_path(path: Sequence[str | int]) -> str:
    """`("steps", 2, "cells")` -> `steps[2].cells` (as users see it in messages)."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


@dataclass(frozen=True)
class Position:
    line: int  # 1-based
    col: int  # 1-based


@dataclass(frozen=True)
class Document:
    """A loaded sidecar: `data` is what YAML says; `positions` locates each key path."""

    path: Path
    display_name: str
    data: Any
    positions: dict[KeyPath, Position]

    def where(self, path: Sequence[str | int]) -> Position:
        """The position of `path`, or of its nearest ancestor that exists."""
        key = tuple(path)
        while key:
            found = self.positions.get(key)
            if found is not None:
                return found
            key = key[:-1]
        return self.positions.get((), Position(1, 1))

    def at(self, path: Sequence[str | int], kind: Kind, message: str) -> Diagnostic:
        """A diagnostic of `kind` at the key `path` (or its nearest ancestor that is written)."""
        return at_key(kind, self.display_name, self.where(path), path, message)


def at_key(kind: Kind, file: str, position: Position, path: Sequence[str | int], message: str) -> Diagnostic:
    """A diagnostic of `kind` at the key `path`, written at `position` of `file`."""
    return kind.at(file, message, line=position.line, col=position.col, key=format_path(path) or None)


# Far beyond any real sidecar (its own keys sit at most six levels down), far below Python's recursion limit.
MAX_DEPTH = 50
# Values (keys, items, scalars) once aliases are expanded: a large pipeline has a few thousand.
MAX_VALUES = 20_000
# Characters of scalar text once aliases are expanded: twice what a sidecar file may hold.
MAX_TEXT = 2 * SIDECAR_LIMIT

_TOO_DEEP = f"more than {MAX_DEPTH} levels deep; a sidecar needs far fewer"
_TIMESTAMP = "tag:yaml.org,2002:timestamp"
_INT = "tag:yaml.org,2002:int"
_FLOAT = "tag:yaml.org,2002:float"
# YAML 1.2's core schema for plain numbers. pyyaml reads YAML 1.1, where `017` is 15 (octal), `1:30` is 90
# (base 60) and `1e3` is a string; a sidecar author means 17, the text "1:30" and 1000.0.
_INT_12 = re.compile(r"^(?:[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+)$")
_FLOAT_12 = re.compile(
    r"^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$"
)


@dataclass(frozen=True)
class _Extent:
    """How big a composed node is once its aliases are expanded."""

    values: int
    text: int
    height: int


class _TooLarge(Exception):
    def __init__(self, event: yaml.Event, kind: Kind, message: str) -> None:
        super().__init__(message)
        mark = event.start_mark
        self.position = Position(mark.line + 1, mark.column + 1) if mark else Position(1, 1)
        self.kind = kind
        self.message = message


class _Loader(yaml.SafeLoader):
    """pyyaml's safe loader with three changes.

    - It bounds what it composes: nesting depth, and values and text counted with every alias expanded, so
      an alias costs what it would cost written out. An alias inside the value it names is an error.
    - A plain `2024-02-30` stays text: no sidecar key takes a date (YAML 1.2 has no timestamp type either),
      and pyyaml would otherwise crash on a date that does not exist. An explicit `!!timestamp` still
      makes a date, which the schema then rejects where a string belongs.
    - Plain numbers are read as YAML 1.2 reads them (`017` is 17, `1e3` is 1000.0, `1:30` is text).
    """

    yaml_implicit_resolvers: dict[Any, Any] = {  # noqa: RUF012 - pyyaml reads this table from the class
        first: [(tag, regexp) for tag, regexp in resolvers if tag not in (_TIMESTAMP, _INT, _FLOAT)]
        for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
    }
    for first in "-+0123456789":
        yaml_implicit_resolvers.setdefault(first, []).append((_INT, _INT_12))
    for first in "-+.0123456789":
        yaml_implicit_resolvers.setdefault(first, []).append((_FLOAT, _FLOAT_12))
    del first

    def construct_yaml_int(self, node: yaml.ScalarNode) -> int:
        """Decimal (leading zeros allowed, as YAML 1.2 reads them), 0o, 0x and, for an explicit !!int, 0b."""
        text = str(self.construct_scalar(node)).replace("_", "")
        sign, digits = (-1, text[1:]) if text.startswith("-") else (1, text.removeprefix("+"))
        bases = {"0o": 8, "0x": 16, "0b": 2}
        base = bases.get(digits[:2].lower())
        return sign * (int(digits[2:], base) if base else int(digits, 10))

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0
        self._values = 0
        self._text = 0
        self._extents: dict[yaml.Node, _Extent] = {}

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node:
        event: yaml.Event = self.peek_event()  # type: ignore[no-untyped-call]
        if isinstance(event, yaml.AliasEvent):
            node = cast(yaml.Node, super().compose_node(parent, index))
            self._repeat(node, event)
            return node
        self._depth += 1
        if self._depth > MAX_DEPTH:
            raise _TooLarge(event, ky.YAML_TOO_DEEP, f"nested {_TOO_DEEP}")
        node = cast(yaml.Node, super().compose_node(parent, index))
        self._depth -= 1
        extent = self._measure(node)
        self._extents[node] = extent
        own_text = extent.text if isinstance(node, yaml.ScalarNode) else 0
        self._count(1, own_text, event, "the sidecar holds")
        return node

    def _measure(self, node: yaml.Node) -> _Extent:
        if isinstance(node, yaml.ScalarNode):
            return _Extent(1, len(node.value), 1)
        if isinstance(node, yaml.MappingNode):
            children: list[yaml.Node] = [part for pair in node.value for part in pair]
        else:
            children = node.value
        extents = [self._extents[child] for child in children]
        return _Extent(
            1 + sum(e.values for e in extents),
            sum(e.text for e in extents),
            1 + max((e.height for e in extents), default=0),
        )

    def _repeat(self, node: yaml.Node, event: yaml.AliasEvent) -> None:
        extent = self._extents.get(node)
        alias = f"alias *{event.anchor}"
        if extent is None:  # still being composed: the alias is inside the value it names
            message = f"{alias} is used inside the value it names; no value can contain itself"
            raise _TooLarge(event, ky.RECURSIVE_ALIAS, message)
        if self._depth + extent.height > MAX_DEPTH:
            raise _TooLarge(event, ky.YAML_TOO_DEEP, f"{alias} nests the sidecar {_TOO_DEEP}")
        self._count(extent.values, extent.text, event, f"{alias} expands the sidecar to")

    def _count(self, values: int, text: int, event: yaml.Event, what: str) -> None:
        self._values += values
        self._text += text
        if self._values > MAX_VALUES:
            raise _TooLarge(
                event,
                ky.YAML_TOO_LARGE,
                f"{what} more than {MAX_VALUES} values (keys, items and scalars; each use of an alias"
                " counts); a pipeline needs far fewer",
            )
        if self._text > MAX_TEXT:
            raise _TooLarge(
                event,
                ky.YAML_TOO_LARGE,
                f"{what} more than {MAX_TEXT} characters of text (each use of an alias counts); a pipeline"
                " needs far fewer",
            )


class _Builder:
    """Turns a composed node tree into values, recording positions and duplicate keys."""

    def __init__(self, display_name: str) -> None:
        self.display_name = display_name
        self.positions: dict[KeyPath, Position] = {}
        self.problems = Collector()
        self._scalars = _Loader("")
        self._unreadable: set[yaml.Node] = set()

    def build(self, node: yaml.Node, path: KeyPath) -> Any:
        if isinstance(node, yaml.MappingNode):
            return self._mapping(node, path)
        if isinstance(node, yaml.SequenceNode):
            result: list[Any] = []
            for index, item in enumerate(node.value):
                self.positions[(*path, index)] = _pos(item)
                result.append(self.build(item, (*path, index)))
            return result
        if isinstance(node, yaml.ScalarNode):
            return self._scalar(node, path)
        raise TypeError(f"unexpected YAML node {node!r}")  # pragma: no cover - composer makes only these

    def _scalar(self, node: yaml.ScalarNode, path: KeyPath) -> Any:
        if node in self._unreadable:  # reported once, where it is written, not at every alias of it
            return node.value
        try:
            return self._scalars.construct_object(node, deep=True)
        # pyyaml's scalar constructors raise whatever the conversion raises: `!!int 0b2` a ValueError,
        # `!!bool maybe` a KeyError, `!!timestamp x` an AttributeError, an unknown tag a ConstructorError.
        except (yaml.YAMLError, ValueError, LookupError, TypeError, AttributeError) as exc:
            self._unreadable.add(node)
            self.problems.add(self._at(_pos(node), path, ky.INVALID_SCALAR, _unreadable_scalar(node, exc)))
            return node.value

    def _mapping(self, node: yaml.MappingNode, path: KeyPath) -> dict[Any, Any]:
        result: dict[Any, Any] = {}
        first_seen: dict[Any, Position] = {}
        for key_node, value_node in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                self.problems.add(
                    self._at(
                        _pos(key_node),
                        path,
                        ky.MERGE_KEY,
                        "YAML merge keys (<<) are not supported; write the keys out",
                    )
                )
                continue
            key = self.build(key_node, path)
            if not isinstance(key, str | int | float | bool) or key is None:
                self.problems.add(
                    self._at(_pos(key_node), path, ky.COMPLEX_KEY, "keys must be plain scalars")
                )
                continue
            norm_key: str | int = key if isinstance(key, str | int) else str(key)
            position = _pos(key_node)
            if norm_key in first_seen:
                earlier = first_seen[norm_key]
                self.problems.add(
                    self._at(
                        position,
                        (*path, norm_key),
                        ky.DUPLICATE_KEY,
                        f"duplicate key '{norm_key}' (first written at line {earlier.line});"
                        " YAML would silently keep only the last one",
                    )
                )
                continue
            first_seen[norm_key] = position
            self.positions[(*path, norm_key)] = position
            result[norm_key] = self.build(value_node, (*path, norm_key))
        return result

    def _at(self, position: Position, path: KeyPath, kind: Kind, message: str) -> Diagnostic:
        return at_key(kind, self.display_name, position, path, message)


def _pos(node: yaml.Node) -> Position:
    return Position(node.start_mark.line + 1, node.start_mark.column + 1)


def _unreadable_scalar(node: yaml.ScalarNode, exc: Exception) -> str:
    if isinstance(exc, yaml.MarkedYAMLError) and exc.problem:
        return f"invalid YAML value: {exc.problem}"
    shown = node.value if len(node.value) <= 40 else node.value[:37] + "..."
    tag = node.tag.replace("tag:yaml.org,2002:", "!!")
    return f"invalid YAML value: {shown!r} is not a valid {tag}"


def _invalid_yaml(display_name: str, mark: yaml.Mark | None, message: str) -> DocumentError:
    line, col = (mark.line + 1, mark.column + 1) if mark else (None, None)
    return DocumentError.single(ky.INVALID_YAML.at(display_name, message, line=line, col=col))


def load_document(path: Path, display_name: str | None = None) -> Document:
    """Read and parse the sidecar; raise `DocumentError` for unreadable files, bad YAML or duplicate keys."""
    name = display_name or str(path)
    try:
        raw = read_input_file(path, SIDECAR_LIMIT, "sidecars")
    except UnreadableFile as exc:
        if exc.missing:
            raise DocumentError.single(ky.NO_SIDECAR.at(name, "file not found")) from None
        raise DocumentError.single(ky.UNREADABLE_SIDECAR.at(name, f"cannot read: {exc.reason}")) from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DocumentError.single(
            ky.SIDECAR_NOT_UTF8.at(name, f"not UTF-8 text (byte {exc.start})")
        ) from None
    # read_text's universal newlines, which the positions of every key assume
    return parse_document(text.replace("\r\n", "\n").replace("\r", "\n"), path, name)


def parse_document(text: str, path: Path, display_name: str) -> Document:
    try:
        nodes = list(yaml.compose_all(text, Loader=_Loader))
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        problem = exc.problem or exc.context or "invalid YAML"
        if exc.context and exc.context_mark and exc.problem_mark and exc.context_mark != exc.problem_mark:
            # pyyaml gives up where it noticed; where the construct began is often where the mistake is.
            started = exc.context_mark
            problem += f" ({exc.context} started at line {started.line + 1}, column {started.column + 1})"
        raise _invalid_yaml(display_name, mark, f"invalid YAML: {problem}") from None
    except _TooLarge as exc:
        where = exc.position
        raise DocumentError.single(
            exc.kind.at(display_name, exc.message, line=where.line, col=where.col)
        ) from None
    except yaml.reader.ReaderError as exc:  # a character YAML does not allow: located by offset, not mark
        line = text.count("\n", 0, exc.position) + 1
        col = exc.position - (text.rfind("\n", 0, exc.position) + 1) + 1
        character = chr(exc.character) if isinstance(exc.character, int) else str(exc.character)
        message = f"invalid YAML: the character {character!r} is not allowed in a YAML file"
        raise DocumentError.single(ky.INVALID_YAML.at(display_name, message, line=line, col=col)) from None
    except yaml.YAMLError as exc:  # pragma: no cover - every other pyyaml error carries a mark
        raise DocumentError.single(
            ky.INVALID_YAML.at(display_name, f"invalid YAML: {exc}", line=1, col=1)
        ) from None
    if len(nodes) > 1:
        message = "a sidecar holds one YAML document; found more than one"
        raise DocumentError.single(
            ky.SEVERAL_DOCUMENTS.at(display_name, message, line=_pos(nodes[1]).line, col=1)
        )
    if not nodes or nodes[0] is None:
        raise DocumentError.single(ky.EMPTY_SIDECAR.at(display_name, "the file is empty", line=1, col=1))
    builder = _Builder(display_name)
    builder.positions[()] = _pos(nodes[0])
    data = builder.build(nodes[0], ())
    builder.problems.raise_if_any(DocumentError)
    return Document(path=path, display_name=display_name, data=data, positions=builder.positions)


_Loader.add_constructor(_INT, _Loader.construct_yaml_int)
