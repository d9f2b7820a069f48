"""A cell's outputs as HTML, the way a notebook shows them: one representation per output, the richest the
page can show without scripts (HTML, then images, then text).

Text is always escaped. `text/html` is the cell's own output (a pandas table) and goes in as it is, as
Jupyter shows a trusted notebook's outputs; the pages' Content-Security-Policy forbids every script and every
request, so such HTML can neither run code nor reach the network. Images are data: URIs: SVG is passed as
an image, where its scripts never run.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Iterable, Mapping
from typing import Any

from markupsafe import Markup, escape

IMAGES = ("image/png", "image/jpeg", "image/gif")
MAX_TEXT = 200_000  # characters of one text output shown; the executed notebook keeps them all
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def outputs_html(outputs: Iterable[Mapping[str, Any]]) -> Markup:
    return Markup("").join(output_html(output) for output in outputs)


def output_html(output: Mapping[str, Any]) -> Markup:
    kind = output.get("output_type")
    if kind == "stream":
        name = "stderr" if output.get("name") == "stderr" else "stdout"
        return _pre(f"output stream {name}", str(output.get("text", "")))
    if kind == "error":
        return _pre("output error", error_text(output))
    data = output.get("data")
    if not isinstance(data, Mapping):
        return Markup("")
    return _rich(data)


def error_text(output: Mapping[str, Any]) -> str:
    traceback = output.get("traceback") or []
    lines = [_ANSI.sub("", line) for line in traceback if isinstance(line, str)]
    head = f"{output.get('ename', 'Error')}: {output.get('evalue', '')}"
    return "\n".join(lines) if lines and head in "\n".join(lines) else "\n".join([*lines, head]).strip()


def _rich(data: Mapping[str, Any]) -> Markup:
    if isinstance(data.get("text/html"), str):
        return Markup('<div class="output html">{}</div>').format(Markup(data["text/html"]))
    for mime in IMAGES:
        if isinstance(data.get(mime), str):
            return _image(mime, "".join(data[mime].split()), str(data.get("text/plain", "")))
    if isinstance(data.get("image/svg+xml"), str):
        encoded = base64.b64encode(data["image/svg+xml"].encode("utf-8")).decode("ascii")
        return _image("image/svg+xml", encoded, str(data.get("text/plain", "")))
    for mime in ("text/markdown", "text/latex", "text/plain"):
        if isinstance(data.get(mime), str):
            return _pre("output result", data[mime])
    return Markup("")


def _image(mime: str, encoded: str, alt: str) -> Markup:
    return Markup('<div class="output image"><img src="data:{};base64,{}" alt="{}"></div>').format(
        mime, encoded, alt or "a figure"
    )


def _pre(classes: str, text: str) -> Markup:
    text = _ANSI.sub("", text)
    if len(text) > MAX_TEXT:
        cut = len(text) - MAX_TEXT
        text = f"{text[: MAX_TEXT // 2]}\n... {cut} characters cut here ...\n{text[-MAX_TEXT // 2 :]}"
    return Markup('<pre class="{}">{}</pre>').format(classes, escape(text))
