"""A step report's machine-readable record: the JSON element inside the step's HTML page.

The page holds exactly one `<script type="application/json" id="kale-yaml-record">` element whose text is
the record, with every `<` written as `\\u003c` so that no `</script>` can end it early.
"""

from __future__ import annotations

import json
import re
from typing import Any

RECORD_ID = "kale-yaml-record"


def read_record(html_text: str) -> dict[str, Any] | None:
    """The record in a step's report page, or None when it has none or it is malformed (never raises)."""
    try:
        found = re.search(
            r'<script type="application/json" id="' + RECORD_ID + r'">(.*?)</script>', html_text, re.DOTALL
        )
        if found is None:
            return None
        record = json.loads(found.group(1))
    except (TypeError, ValueError, RecursionError):
        return None
    if not isinstance(record, dict) or not isinstance(record.get("cells"), list):
        return None
    return record
