"""The sidecar as plain Python values plus the line and column of every key and item.

pyyaml's composer gives nodes with marks; we build the values ourselves from the node tree so that every
path (`("steps", 2, "cells")`) maps to where it was written, and so that duplicate keys are errors instead of
pyyaml's silent last-one-wins.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from kale_yaml.errors import Collector, Diagnostic, DocumentError

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

    def diagnostic(self, path: Sequence[str | int], message: str, severity: str = "error") -> Diagnostic:
        return located(self.display_name, self.where(path), path, message, severity)


def located(
    file: str, position: Position, path: Sequence[str | int], message: str, severity: str = "error"
) -> Diagnostic:
    return Diagnostic(
        file=file,
        line=position.line,
        col=position.col,
        key=format_path(path) or None,
        message=message,
        severity="warning" if severity == "warning" else "error",
    )


class _Builder:
    """Turns a composed node tree into values, recording positions and duplicate keys."""

    def __init__(self, display_name: str) -> None:
        self.display_name = display_name
        self.positions: dict[KeyPath, Position] = {}
        self.problems = Collector()
        self._scalars = yaml.SafeLoader("")

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
            return self._scalars.construct_object(node, deep=True)
        raise TypeError(f"unexpected YAML node {node!r}")  # pragma: no cover - composer makes only these

    def _mapping(self, node: yaml.MappingNode, path: KeyPath) -> dict[Any, Any]:
        result: dict[Any, Any] = {}
        first_seen: dict[Any, Position] = {}
        for key_node, value_node in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                self.problems.add(
                    self._at(
                        _pos(key_node), path, "YAML merge keys (<<) are not supported; write the keys out"
                    )
                )
                continue
            key = self.build(key_node, path)
            if not isinstance(key, str | int | float | bool) or key is None:
                self.problems.add(self._at(_pos(key_node), path, "keys must be plain scalars"))
                continue
            norm_key: str | int = key if isinstance(key, str | int) else str(key)
            position = _pos(key_node)
            if norm_key in first_seen:
                earlier = first_seen[norm_key]
                self.problems.add(
                    self._at(
                        position,
                        (*path, norm_key),
                        f"duplicate key '{norm_key}' (first written at line {earlier.line});"
                        " YAML would silently keep only the last one",
                    )
                )
                continue
            first_seen[norm_key] = position
            self.positions[(*path, norm_key)] = position
            result[norm_key] = self.build(value_node, (*path, norm_key))
        return result

    def _at(self, position: Position, path: KeyPath, message: str) -> Diagnostic:
        return located(self.display_name, position, path, message)


def _pos(node: yaml.Node) -> Position:
    return Position(node.start_mark.line + 1, node.start_mark.column + 1)


def _at_mark(display_name: str, mark: yaml.Mark | None, message: str) -> DocumentError:
    return DocumentError.single(
        Diagnostic(
            file=display_name,
            line=mark.line + 1 if mark else None,
            col=mark.column + 1 if mark else None,
            message=message,
        )
    )


def load_document(path: Path, display_name: str | None = None) -> Document:
    """Read and parse the sidecar; raise `DocumentError` for unreadable files, bad YAML or duplicate keys."""
    name = display_name or str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise DocumentError.single(Diagnostic(file=name, message="file not found")) from None
    except UnicodeDecodeError as exc:
        raise DocumentError.single(
            Diagnostic(file=name, message=f"not UTF-8 text (byte {exc.start})")
        ) from None
    except OSError as exc:
        raise DocumentError.single(Diagnostic(file=name, message=f"cannot read: {exc.strerror}")) from None
    return parse_document(text, path, name)


def parse_document(text: str, path: Path, display_name: str) -> Document:
    try:
        nodes = list(yaml.compose_all(text, Loader=yaml.SafeLoader))
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        problem = exc.problem or exc.context or "invalid YAML"
        if exc.context and exc.context_mark and exc.problem_mark and exc.context_mark != exc.problem_mark:
            # pyyaml gives up where it noticed; where the construct began is often where the mistake is.
            started = exc.context_mark
            problem += f" ({exc.context} started at line {started.line + 1}, column {started.column + 1})"
        raise _at_mark(display_name, mark, f"invalid YAML: {problem}") from None
    except yaml.reader.ReaderError as exc:  # a character YAML does not allow: located by offset, not mark
        line = text.count("\n", 0, exc.position) + 1
        col = exc.position - (text.rfind("\n", 0, exc.position) + 1) + 1
        character = chr(exc.character) if isinstance(exc.character, int) else str(exc.character)
        message = f"invalid YAML: the character {character!r} is not allowed in a YAML file"
        raise DocumentError.single(
            Diagnostic(file=display_name, line=line, col=col, message=message)
        ) from None
    except yaml.YAMLError as exc:  # pragma: no cover - every other pyyaml error carries a mark
        raise DocumentError.single(
            Diagnostic(file=display_name, line=1, col=1, message=f"invalid YAML: {exc}")
        ) from None
    if len(nodes) > 1:
        raise DocumentError.single(
            Diagnostic(
                file=display_name,
                line=_pos(nodes[1]).line,
                col=1,
                message="a sidecar holds one YAML document; found more than one",
            )
        )
    if not nodes or nodes[0] is None:
        raise DocumentError.single(Diagnostic(file=display_name, line=1, col=1, message="the file is empty"))
    builder = _Builder(display_name)
    builder.positions[()] = _pos(nodes[0])
    try:
        data = builder.build(nodes[0], ())
    except yaml.YAMLError as exc:  # a scalar pyyaml cannot construct, e.g. a bad !!timestamp
        mark = getattr(exc, "problem_mark", None)
        raise _at_mark(display_name, mark, f"invalid YAML value: {getattr(exc, 'problem', exc)}") from None
    builder.problems.raise_if_any(DocumentError)
    return Document(path=path, display_name=display_name, data=data, positions=builder.positions)
