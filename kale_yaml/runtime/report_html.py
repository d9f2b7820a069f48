"""A step's report: one self-contained HTML page of its cells and what they showed (KFP shows it in its UI).

Inline CSS, images as data: URIs, no script needed to read it and nothing fetched from the network; the
machine-readable record (record.py) comes first in the page. A value's HTML form (a pandas table) is placed
as the notebook places it; every other text is escaped.
"""

from __future__ import annotations

import base64
import html
import re
from typing import Any

from kale_yaml.runtime.files import make_folders, open_file, parent_folder
from kale_yaml.runtime.record import record_element

# Taken when the runtime loads: a cell may rebind them in their modules.
_escape, _svg_encode = html.escape, base64.b64encode
_TERMINAL_CODES = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
_IMAGES = ("image/png", "image/jpeg")
_TEXTS = ("text/markdown", "text/latex", "text/plain")
_STYLE = " ".join(
    [
        "body{font:14px/1.45 system-ui,-apple-system,'Segoe UI',sans-serif;margin:0;color:#1f2328;",
        "background:#fff}",
        "header{padding:16px 24px;border-bottom:1px solid #d0d7de;background:#f6f8fa}",
        "h1{font-size:18px;margin:0 0 4px}",
        ".status{display:inline-block;padding:1px 8px;border-radius:10px;color:#fff;font-size:12px}",
        ".finished{background:#1a7f37}.failed{background:#cf222e}",
        "main{padding:8px 24px 24px}",
        ".cell{margin:16px 0;border:1px solid #d0d7de;border-radius:6px;overflow:hidden}",
        ".cell.not-run{opacity:.55}",
        ".label{font:12px ui-monospace,monospace;color:#57606a;padding:4px 10px;background:#f6f8fa;",
        "border-bottom:1px solid #d0d7de}",
        "pre{margin:0;padding:8px 10px;font:12.5px/1.4 ui-monospace,SFMono-Regular,Menlo,monospace;",
        "white-space:pre-wrap;word-break:break-word}",
        ".source{background:#f6f8fa}",
        ".output{border-top:1px dashed #d0d7de;overflow-x:auto}",
        ".stderr{background:#fff8c5}.error{background:#ffebe9;color:#82071e}",
        ".prompt{font:11px ui-monospace,monospace;color:#8250df;padding:4px 10px 0}",
        ".html{padding:8px 10px}.html table{border-collapse:collapse;font-size:12.5px}",
        ".html th,.html td{border:1px solid #d0d7de;padding:2px 8px;text-align:right}",
        ".html thead th{background:#f6f8fa}",
        "img{max-width:100%;display:block;padding:8px 10px}",
    ]
)


def write_report(
    path: str, record: dict[str, Any], sources: list[tuple[int, str]], *, title: str = "kale-yaml"
) -> None:
    """Write the page for record (record.py's dict) and the step's cells (number, source) to path."""
    page = report_page(record, sources, title=title)
    make_folders(parent_folder(path))
    with open_file(path, "w", encoding="utf-8", errors="backslashreplace") as handle:
        handle.write(page)


def report_page(record: dict[str, Any], sources: list[tuple[int, str]], *, title: str = "kale-yaml") -> str:
    step, notebook, status = str(record["step"]), str(record["notebook"]), str(record["status"])
    ran = {entry["cell"]: entry for entry in record["cells"]}
    parts = [
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n',
        f"<title>{_escape(title)}: step {_escape(step)}</title>\n",
        record_element(record),
        f"\n<style>{_STYLE}</style>\n</head>\n<body>\n<header>\n",
        f"<h1>Step <code>{_escape(step)}</code> ",
        f"<span class='status {_escape(status)}'>{_escape(status)}</span>",
        f"</h1>\n<div>{_escape(notebook)}: {len(ran)} of {len(sources)} cells ran</div>\n</header>\n<main>\n",
    ]
    for number, source in sources:
        entry = ran.get(number)
        parts.append(_cell(number, source, entry))
    parts.append("</main>\n</body>\n</html>\n")
    return "".join(parts)


def _cell(number: int, source: str, entry: dict[str, Any] | None) -> str:
    count = f" [{entry['execution_count']}]" if entry is not None else " (not run)"
    kind = "cell" if entry is not None else "cell not-run"
    parts = [f"<section class='{kind}' id='cell-{number}'>\n<div class='label'>cell {number}{count}</div>\n"]
    parts.append(f"<pre class='source'>{_escape(source)}</pre>\n")
    for output in entry["outputs"] if entry is not None else ():
        parts.append(f"<div class='output'>{_output(output)}</div>\n")
    parts.append("</section>\n")
    return "".join(parts)


def _output(output: dict[str, Any]) -> str:
    kind = output.get("output_type")
    if kind == "stream":
        name = "stderr" if output.get("name") == "stderr" else "stdout"
        return f"<pre class='{name}'>{_escape(terminal_text(str(output.get('text', ''))))}</pre>"
    if kind == "error":
        lines = output.get("traceback") or [f"{output.get('ename')}: {output.get('evalue')}"]
        return f"<pre class='error'>{_escape(terminal_text(chr(10).join(map(str, lines))))}</pre>"
    prompt = ""
    if kind == "execute_result":
        prompt = f"<div class='prompt'>Out[{_escape(str(output.get('execution_count')))}]:</div>"
    return prompt + _data(output.get("data") or {})


def _data(data: dict[str, Any]) -> str:
    """The form a notebook prefers: HTML, then SVG, PNG, JPEG, then text."""
    alt = _escape(str(data.get("text/plain", "")).splitlines()[0] if data.get("text/plain") else "output")
    if isinstance(data.get("text/html"), str):
        return f"<div class='html'>{data['text/html']}</div>"
    if isinstance(data.get("image/svg+xml"), str):
        svg = _svg_base64(data["image/svg+xml"])
        return f"<img alt='{alt}' src='data:image/svg+xml;base64,{svg}'>"
    for mime in _IMAGES:
        if isinstance(data.get(mime), str):
            return f"<img alt='{alt}' src='data:{mime};base64,{_escape(data[mime].strip())}'>"
    for mime in _TEXTS:
        if mime in data:
            return f"<pre>{_escape(terminal_text(str(data[mime])))}</pre>"
    return ""


def _svg_base64(svg: str) -> str:
    return _svg_encode(svg.encode("utf-8", "backslashreplace")).decode("ascii")


def terminal_text(text: str) -> str:
    """Text as a terminal shows it: colour codes dropped, a carriage return overwriting its line."""
    text = _TERMINAL_CODES.sub("", text)
    if "\r" not in text:
        return text
    lines = text.replace("\r\n", "\n").split("\n")
    return "\n".join(line.rstrip("\r").rpartition("\r")[2] for line in lines)
