"""A step's record: what its cells showed, as JSON inside its report page, and read back from the page.

The page holds exactly one `<script type="application/json" id="kale-yaml-record">` element, before anything
the cells showed. Its JSON writes every `<` as `\\u003c`, so no text of a cell can end the element early:
    {"format": 1, "step": "train", "notebook": "wine.ipynb", "status": "finished" | "failed",
     "cells": [{"cell": 3, "execution_count": 1, "outputs": [nbformat v4 outputs]}, ...]}
Cells that did not run (after a failure) are absent.
"""

from __future__ import annotations

import json
import re
from typing import Any

RECORD_ID = "kale-yaml-record"
RECORD_FORMAT = 1
# Taken when the runtime loads, as files.py takes its functions: a cell may patch the json module.
_record_text = json.JSONEncoder(ensure_ascii=True, default=repr).encode
_record_value = json.JSONDecoder().decode
_RECORD_ELEMENT = re.compile(
    r"<script\b[^>]*\bid=[\"']" + RECORD_ID + r"[\"'][^>]*>(.*?)</script\s*>", re.IGNORECASE | re.DOTALL
)


def make_record(step: str, notebook: str, status: str, cells: list[dict[str, Any]]) -> dict[str, Any]:
    return {"format": RECORD_FORMAT, "step": step, "notebook": notebook, "status": status, "cells": cells}


def record_element(record: dict[str, Any]) -> str:
    """The script element holding record; nothing in it can close it (`<` is written `\\u003c`)."""
    text = _record_text(record).replace("<", "\\u003c")
    return f'<script type="application/json" id="{RECORD_ID}">{text}</script>'


def read_record(html_text: str) -> dict[str, Any] | None:
    """The record of a report page; None when the page has none or it is not a record. Never raises."""
    try:
        found = _RECORD_ELEMENT.search(html_text)
        if found is None:
            return None
        record = _record_value(found.group(1))
    except Exception:  # not text, not JSON, nested too deeply, ...
        return None
    if not isinstance(record, dict) or record.get("format") != RECORD_FORMAT:
        return None
    if not isinstance(record.get("cells"), list):
        return None
    return record
