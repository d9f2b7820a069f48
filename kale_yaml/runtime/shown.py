"""Values as a notebook shows them: their `_repr_*_` forms, and matplotlib figures as PNG.

A value's forms are asked for as IPython asks: `_repr_html_`, `_repr_markdown_`, `_repr_svg_`, `_repr_png_`,
`_repr_jpeg_`, `_repr_latex_`, `_repr_json_`, then `_repr_mimebundle_`, whose forms win; text/plain is always
there. A form that raises or is too large is left out: showing a value never fails a cell.
"""

from __future__ import annotations

import base64
import io
import pprint
import sys
from typing import Any

from kale_yaml.runtime.outputs import RICH_LIMIT, bounded_text

# Taken when the runtime loads: a cell may rebind them in their modules.
_b64encode, _pformat, _ShownBytes, _modules = base64.b64encode, pprint.pformat, io.BytesIO, sys.modules
_FORMS = (
    ("text/html", "_repr_html_"),
    ("text/markdown", "_repr_markdown_"),
    ("image/svg+xml", "_repr_svg_"),
    ("image/png", "_repr_png_"),
    ("image/jpeg", "_repr_jpeg_"),
    ("text/latex", "_repr_latex_"),
    ("application/json", "_repr_json_"),
)
_BINARY = ("image/png", "image/jpeg")


def mime_bundle(value: object) -> tuple[dict[str, Any], dict[str, Any]]:
    """(data, metadata) for value as nbformat's display_data holds them."""
    data: dict[str, Any] = {"text/plain": bounded_text(plain_text(value), "text")}
    metadata: dict[str, Any] = {}
    if isinstance(value, type):  # a class: its _repr_*_ methods would need an instance
        return data, metadata
    if _is_figure(value):
        png = figure_png(value)
        if png:
            data["image/png"] = png
        return data, metadata
    for mime, method in _FORMS:
        form = _call_form(value, method)
        if isinstance(form, tuple) and len(form) == 2:
            form, extra = form
            if isinstance(extra, dict):
                metadata[mime] = extra
        _add_form(data, mime, form)
    bundle = _call_form(value, "_repr_mimebundle_")
    if isinstance(bundle, tuple) and len(bundle) == 2:
        bundle, extra = bundle
        if isinstance(extra, dict):
            metadata.update(extra)
    if isinstance(bundle, dict):
        for mime, form in bundle.items():
            _add_form(data, str(mime), form)
    return data, metadata


def plain_text(value: object) -> str:
    try:
        return _pformat(value, sort_dicts=False)
    except Exception:
        try:
            return object.__repr__(value)
        except Exception:
            return f"<{type(value).__name__} object>"


def _call_form(value: object, method: str) -> Any:
    try:
        found = getattr(value, method, None)
        if found is None or not callable(found):
            return None
        return found() if method != "_repr_mimebundle_" else found(include=None, exclude=None)
    except Exception:  # as IPython does: a form that fails is not shown
        return None


def _add_form(data: dict[str, Any], mime: str, form: Any) -> None:
    if form is None:
        return
    if mime in _BINARY and isinstance(form, (bytes, bytearray)):
        form = _b64encode(bytes(form)).decode("ascii")
    if mime == "text/plain" and isinstance(form, str):
        data[mime] = bounded_text(form, "text")
    elif isinstance(form, str) and len(form) > RICH_LIMIT:
        note = f"[kale-yaml: its {mime} form ({len(form):,} characters) was too large to keep]"
        data["text/plain"] = data.get("text/plain", "") + chr(10) + note
    elif isinstance(form, str) or mime == "application/json":
        data[mime] = form


def _is_figure(value: object) -> bool:
    cls = type(value)
    return cls.__name__ == "Figure" and cls.__module__ == "matplotlib.figure"


def figure_png(figure: Any) -> str:
    """The figure as base64 PNG, as inline matplotlib draws it; "" for a figure with nothing on it."""
    if not figure.axes and not figure.lines:
        return ""
    buffer = _ShownBytes()
    figure.savefig(buffer, format="png", bbox_inches="tight")
    return _b64encode(buffer.getvalue()).decode("ascii")


def open_figures() -> list[Any]:
    """The figures pyplot keeps open, oldest first; none when the cells have not imported pyplot."""
    if "matplotlib.pyplot" not in _modules:
        return []
    helpers = _modules.get("matplotlib._pylab_helpers")
    managers = helpers.Gcf.get_all_fig_managers() if helpers is not None else []
    return [manager.canvas.figure for manager in managers]


def close_figure(figure: Any) -> None:
    pyplot = _modules.get("matplotlib.pyplot")
    if pyplot is not None:
        pyplot.close(figure)
