"""The records that steps leave in their HTML reports (runtime/record.py reads them), checked and indexed by
notebook cell. A record comes from a file a step wrote: anything malformed in it is dropped, never raised."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kale_yaml.runtime.record import read_record

MAX_REPORT_BYTES = 256 * 1024 * 1024  # a step's report larger than this is not read


@dataclass(frozen=True)
class CellRun:
    """One notebook cell as a step ran it."""

    cell: int
    step: str
    execution_count: int | None
    outputs: tuple[dict[str, Any], ...]  # nbformat v4 output dicts, checked

    @property
    def error(self) -> dict[str, Any] | None:
        return next((o for o in self.outputs if o["output_type"] == "error"), None)


@dataclass(frozen=True)
class StepRecord:
    step: str
    status: str  # "finished" | "failed"
    cells: tuple[CellRun, ...]


def read_records(reports: Mapping[str, Path]) -> dict[str, StepRecord]:
    """The record of every step whose report file exists and holds one."""
    records: dict[str, StepRecord] = {}
    for step, path in reports.items():
        try:
            if path.stat().st_size > MAX_REPORT_BYTES:
                continue
            text = path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            continue
        record = read_record(text)
        if record is not None:
            records[step] = step_record(step, record)
    return records


def step_record(step: str, record: Mapping[str, Any]) -> StepRecord:
    cells: list[CellRun] = []
    for item in record.get("cells", ()):
        if not isinstance(item, dict) or not _is_int(item.get("cell")):
            continue
        count = item.get("execution_count")
        outputs = item.get("outputs")
        checked = [o for o in map(clean_output, outputs if isinstance(outputs, list) else []) if o]
        cells.append(CellRun(item["cell"], step, count if _is_int(count) else None, tuple(checked)))
    status = "failed" if record.get("status") == "failed" else "finished"
    return StepRecord(step, status, tuple(cells))


def cell_runs(records: Iterable[StepRecord], owner_of: Mapping[int, str]) -> dict[int, CellRun]:
    """Each cell's run: the run by its owner; a prelude cell runs in every step and shows its first run."""
    runs: dict[int, CellRun] = {}
    for record in records:
        for run in record.cells:
            owner = owner_of.get(run.cell)
            if owner == record.step or (owner == "prelude" and run.cell not in runs):
                runs[run.cell] = run
    return runs


def clean_output(output: object) -> dict[str, Any] | None:
    """An nbformat v4 output dict with only the fields nbformat allows, or None when it is not one."""
    if not isinstance(output, dict):
        return None
    kind = output.get("output_type")
    if kind == "stream":
        name, text = output.get("name"), _text(output.get("text"))
        if name not in ("stdout", "stderr") or text is None:
            return None
        return {"output_type": "stream", "name": name, "text": text}
    if kind == "error":
        traceback = output.get("traceback")
        lines = [line for line in traceback if isinstance(line, str)] if isinstance(traceback, list) else []
        ename, evalue = _text(output.get("ename")) or "Error", _text(output.get("evalue")) or ""
        return {"output_type": "error", "ename": ename, "evalue": evalue, "traceback": lines}
    if kind in ("execute_result", "display_data"):
        data = _bundle(output.get("data"))
        if not data:
            return None
        cleaned: dict[str, Any] = {"output_type": kind, "data": data, "metadata": {}}
        if kind == "execute_result":
            count = output.get("execution_count")
            cleaned["execution_count"] = count if _is_int(count) else None
        return cleaned
    return None


def _bundle(data: object) -> dict[str, str]:
    """The MIME bundle's text values; images must be base64 (nbformat's form for binary data)."""
    if not isinstance(data, dict):
        return {}
    bundle: dict[str, str] = {}
    for mime, value in data.items():
        text = _text(value)
        if not isinstance(mime, str) or "/" not in mime or text is None:
            continue
        if mime in ("image/png", "image/jpeg", "image/gif") and not _is_base64(text):
            continue
        bundle[mime] = text
    return bundle


def _text(value: object) -> str | None:
    """nbformat's multiline strings are a string or a list of strings."""
    if isinstance(value, str):
        return value
    if isinstance(value, list) and all(isinstance(part, str) for part in value):
        return "".join(value)
    return None


def _is_base64(text: str) -> bool:
    try:
        base64.b64decode("".join(text.split()), validate=True)
    except (binascii.Error, ValueError):
        return False
    return True


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)
