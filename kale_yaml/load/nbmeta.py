"""Notebook and cell metadata (tags, Kale's `kubeflow_notebook`), which `Notebook` leaves out.

`load_notebook` builds it from the JSON it has already parsed and keeps it as `Notebook.metadata`: cell i of
the JSON is cell number i + 1.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar


@dataclass(frozen=True)
class NotebookMetadata:
    EMPTY: ClassVar[NotebookMetadata]

    metadata: dict[str, Any]  # the notebook's own metadata
    cells: tuple[dict[str, Any], ...]  # each cell's metadata, by cell number - 1

    def tags(self, number: int) -> list[Any]:
        """Cell `number`'s tags as written (not always strings: the caller decides what to say about that)."""
        tags = self.cells[number - 1].get("tags") if number - 1 < len(self.cells) else None
        return list(tags) if isinstance(tags, list) else []

    def all_tags(self) -> list[list[str]]:
        return [[t for t in self.tags(n) if isinstance(t, str)] for n in range(1, len(self.cells) + 1)]


def metadata_from_json(raw: dict[str, Any]) -> NotebookMetadata:
    metadata = raw.get("metadata")
    cells = raw.get("cells")
    return NotebookMetadata(
        metadata=metadata if isinstance(metadata, dict) else {},
        cells=tuple(_cell_metadata(c) for c in (cells if isinstance(cells, list) else [])),
    )


def _cell_metadata(cell: Any) -> dict[str, Any]:
    metadata = cell.get("metadata") if isinstance(cell, dict) else None
    return metadata if isinstance(metadata, dict) else {}


NotebookMetadata.EMPTY = NotebookMetadata(metadata={}, cells=())
