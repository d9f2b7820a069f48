"""Notebook and cell metadata (tags, Kale's `kubeflow_notebook`), which `Notebook` leaves out.

Read straight from the file's JSON, only for reading: cell i of the JSON is cell i + 1 of `load_notebook`.
Call `load_notebook` first: it reports a file that is not an nbformat 4 notebook.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class NotebookMetadata:
    metadata: dict[str, Any]  # the notebook's own metadata
    cells: tuple[dict[str, Any], ...]  # each cell's metadata, by cell number - 1

    def tags(self, number: int) -> list[Any]:
        """Cell `number`'s tags as written (not always strings: the caller decides what to say about that)."""
        tags = self.cells[number - 1].get("tags") if number - 1 < len(self.cells) else None
        return list(tags) if isinstance(tags, list) else []

    def all_tags(self) -> list[list[str]]:
        return [[t for t in self.tags(n) if isinstance(t, str)] for n in range(1, len(self.cells) + 1)]


def read_metadata(path: Path) -> NotebookMetadata:
    raw = json.loads(path.read_bytes().decode("utf-8"))
    metadata = raw.get("metadata") if isinstance(raw, dict) else None
    cells = raw.get("cells") if isinstance(raw, dict) else None
    return NotebookMetadata(
        metadata=metadata if isinstance(metadata, dict) else {},
        cells=tuple(_cell_metadata(c) for c in (cells if isinstance(cells, list) else [])),
    )


def _cell_metadata(cell: Any) -> dict[str, Any]:
    metadata = cell.get("metadata") if isinstance(cell, dict) else None
    return metadata if isinstance(metadata, dict) else {}
