"""Where a setting is written in the sidecar: captured by resolve, so that a later stage can point its
messages at the sidecar without the YAML document.

A `Where` knows its own key and the positions of the keys below it, so a message about a part of a value
(`resources.cpu`, `tolerations[0].key`) finds that part; a part that is not written falls back to the
nearest key above it that is, as `Document.where` does.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from kale_yaml.diagnostics import Kind
from kale_yaml.errors import Diagnostic
from kale_yaml.load.document import Document, KeyPath, Position, at_key, format_path


@dataclass(frozen=True)
class Where:
    file: str  # the sidecar as messages show it
    path: KeyPath
    position: Position
    # Positions of the keys below `path`, by their path from it.
    below: Mapping[KeyPath, Position] = field(default_factory=dict, compare=False, repr=False)

    @property
    def key(self) -> str:
        """`steps[2].env.TOKEN`, as messages show a key."""
        return format_path(self.path)

    def child(self, *parts: str | int) -> Where:
        n = len(parts)
        position = self.position
        for end in range(n, 0, -1):
            found = self.below.get(parts[:end])
            if found is not None:
                position = found
                break
        below = {path[n:]: at for path, at in self.below.items() if len(path) > n and path[:n] == parts}
        return Where(self.file, (*self.path, *parts), position, below)

    def at(self, kind: Kind, message: str) -> Diagnostic:
        """A diagnostic of `kind` at this key."""
        return at_key(kind, self.file, self.position, self.path, message)


class Locator:
    """Makes `Where`s from one loaded sidecar; built once per resolve."""

    def __init__(self, document: Document) -> None:
        self._document = document
        # The key paths under each first key, and under each first two keys (a step, a volume): capturing
        # a step then looks at that step's keys only, not at every key of the sidecar.
        self._under: dict[KeyPath, list[KeyPath]] = {}
        for path in document.positions:
            for length in (1, 2):
                if len(path) > length:
                    self._under.setdefault(path[:length], []).append(path)

    def at(self, path: KeyPath, depth: int | None = None) -> Where:
        """`path` and the keys below it (at most `depth` levels below it)."""
        n = len(path)
        positions = self._document.positions
        candidates = list(positions) if n == 0 else self._under.get(path[:2] if n >= 2 else path[:1], [])
        below = {
            p[n:]: positions[p]
            for p in candidates
            if len(p) > n and p[:n] == path and (depth is None or len(p) - n <= depth)
        }
        return Where(self._document.display_name, path, self._document.where(path), below)
