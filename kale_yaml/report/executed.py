"""`.kale/runs/RUN/NOTEBOOK.ipynb`: the notebook as the pipeline ran it.

A new nbformat 4.5 notebook made from the original's cells (the original is read, never written): each code
cell carries the outputs and execution count its step recorded, and says who owns it in
`metadata.kale_yaml` (`{"step": NAME}` for a step's cell, `{"owner": "prelude" | "parameters" | "skip"}`
otherwise). Cells that did not run (skipped, unowned, after a failure, or of a step whose report is missing)
have no outputs. It is made from the cells the load stage checked, plus only the metadata nbformat's schema
surely accepts (the kernel, the language, each cell's tags), so it is valid whatever else the original holds.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from kale_yaml.load.cells import Cell, Notebook
from kale_yaml.load.input_file import NOTEBOOK_LIMIT, UnreadableFile, read_input_file
from kale_yaml.report.records import CellRun

METADATA_KEY = "kale_yaml"
OWNER_ROLES = ("prelude", "parameters", "skip")


def executed_notebook(
    notebook: Notebook, owner_of: Mapping[int, str], runs: Mapping[int, CellRun]
) -> dict[str, Any]:
    """The executed notebook as nbformat's JSON."""
    original = _original_json(notebook.path)
    raw_cells = original.get("cells")
    raw_cells = raw_cells if isinstance(raw_cells, list) and len(raw_cells) == len(notebook.cells) else []
    found = original.get("metadata")
    metadata: dict[str, Any] = found if isinstance(found, dict) else {}
    kept = {
        key: metadata[key] for key in ("kernelspec", "language_info") if isinstance(metadata.get(key), dict)
    }
    taken = {cell.id for cell in notebook.cells}
    cells = []
    for cell in notebook.cells:
        raw = raw_cells[cell.number - 1] if raw_cells else {}
        # A notebook older than nbformat 4.5 has no ids: each cell gets one from its number.
        cell_id = cell.id or _free_id(f"cell-{cell.number}", taken)
        tags = raw.get("metadata", {}).get("tags") if isinstance(raw.get("metadata"), dict) else None
        cell_metadata: dict[str, Any] = {"tags": tags} if _is_tags(tags) else {}
        cells.append(_cell(cell, cell_id, cell_metadata, owner_of.get(cell.number), runs.get(cell.number)))
    return {"cells": cells, "metadata": kept, "nbformat": 4, "nbformat_minor": 5}


def write_executed_notebook(target: Path, notebook: Mapping[str, Any]) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(notebook, indent=1, sort_keys=True, ensure_ascii=False) + "\n"
    target.write_text(text, encoding="utf-8", newline="\n")


def _cell(
    cell: Cell, cell_id: str, metadata: dict[str, Any], owner: str | None, run: CellRun | None
) -> dict[str, Any]:
    made: dict[str, Any] = {"cell_type": cell.cell_type, "id": cell_id, "metadata": metadata}
    made["source"] = cell.source
    if cell.cell_type != "code":
        return made if cell.cell_type in ("markdown", "raw") else {**made, "cell_type": "raw"}
    if owner is not None:
        metadata[METADATA_KEY] = {"owner": owner} if owner in OWNER_ROLES else {"step": owner}
    made["execution_count"] = run.execution_count if run else None
    made["outputs"] = [dict(output) for output in run.outputs] if run else []
    return made


def _original_json(path: Path) -> dict[str, Any]:
    """The original notebook's JSON, for its metadata; the load stage has read it already."""
    try:
        found = json.loads(read_input_file(path, NOTEBOOK_LIMIT, "notebooks"))
    except (UnreadableFile, ValueError, RecursionError):
        return {}
    return found if isinstance(found, dict) else {}


def _is_tags(tags: object) -> bool:
    return isinstance(tags, list) and all(isinstance(tag, str) for tag in tags)


def _free_id(wanted: str, taken: set[str | None]) -> str:
    cell_id, n = wanted, 1
    while cell_id in taken:
        n += 1
        cell_id = f"{wanted}-{n}"
    taken.add(cell_id)
    return cell_id
