"""Step records in the report contract's format, for the pages' tests.

`record_page` writes a step's HTML report exactly as the contract says (one JSON element, every `<` written as
`\\u003c`). `notebook_records` makes realistic records by running a notebook's code cells top to bottom in one
namespace, as a notebook does, keeping each cell's stdout, the value of its last expression (its
`_repr_html_` when it has one) and the matplotlib figures it leaves open, as PNG. It is a stand-in for the
step runtime's own capture, made only to feed the pages with real outputs.
"""

from __future__ import annotations

import ast
import base64
import contextlib
import io
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kale_yaml.plan.project import Project
from kale_yaml.runtime.record import RECORD_ID

Output = dict[str, Any]


def record_page(step: str, notebook: str, status: str, cells: list[dict[str, Any]]) -> str:
    record = {"format": 1, "step": step, "notebook": notebook, "status": status, "cells": cells}
    text = json.dumps(record).replace("<", "\\u003c")
    return (
        f"<!DOCTYPE html><html><head><title>{step}</title></head><body><h1>{step}</h1>"
        f'<script type="application/json" id="{RECORD_ID}">{text}</script></body></html>'
    )


def run_cells(sources: Mapping[int, str], fail_at: int | None = None) -> dict[int, list[Output]]:
    """Each cell's outputs, the cells run in order in one namespace; a cell that raises ends the run."""
    os.environ.setdefault("MPLBACKEND", "Agg")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    namespace: dict[str, Any] = {"__name__": "__main__"}
    found: dict[int, list[Output]] = {}
    for count, (number, source) in enumerate(sources.items(), start=1):
        outputs: list[Output] = []
        stdout = io.StringIO()
        try:
            with contextlib.redirect_stdout(stdout):
                if number == fail_at:
                    raise ValueError(f"cell {number} failed on purpose")
                value = _run(source, namespace)
        except Exception as exc:
            _stream(outputs, stdout.getvalue())
            outputs.append(
                {
                    "output_type": "error",
                    "ename": type(exc).__name__,
                    "evalue": str(exc),
                    "traceback": ["Traceback (most recent call last):", f"{type(exc).__name__}: {exc}"],
                }
            )
            found[number] = outputs
            break
        _stream(outputs, stdout.getvalue())
        if value is not None:
            data = {"text/plain": repr(value)}
            if hasattr(value, "_repr_html_"):
                data["text/html"] = value._repr_html_()
            outputs.append(
                {"output_type": "execute_result", "execution_count": count, "data": data, "metadata": {}}
            )
        for figure_number in plt.get_fignums():
            png = io.BytesIO()
            plt.figure(figure_number).savefig(png, format="png", dpi=80, bbox_inches="tight")
            image = base64.b64encode(png.getvalue()).decode("ascii")
            outputs.append(
                {
                    "output_type": "display_data",
                    "data": {"image/png": image, "text/plain": "<Figure>"},
                    "metadata": {},
                }
            )
        plt.close("all")
        found[number] = outputs
    return found


def _run(source: str, namespace: dict[str, Any]) -> Any:
    tree = ast.parse(source)
    last = tree.body[-1] if tree.body else None
    if not isinstance(last, ast.Expr):
        exec(compile(tree, "<cell>", "exec"), namespace)
        return None
    tree.body.pop()
    exec(compile(tree, "<cell>", "exec"), namespace)
    return eval(compile(ast.Expression(last.value), "<cell>", "eval"), namespace)


def _stream(outputs: list[Output], text: str) -> None:
    if text:
        outputs.append({"output_type": "stream", "name": "stdout", "text": text})


def notebook_records(project: Project, folder: Path, fail_at: int | None = None) -> dict[str, Path]:
    """Every step's report file under `folder`, its record made by running the notebook's code cells."""
    config = project.config
    skipped = set(config.skipped)
    sources = {
        c.number: c.source for c in config.notebook.cells if c.cell_type == "code" and c.number not in skipped
    }
    outputs = run_cells(sources, fail_at)
    reports: dict[str, Path] = {}
    for step in config.steps:
        numbers = [*config.parameter_cells, *config.prelude, *step.cells]
        ran = [n for n in numbers if n in outputs]
        if not any(n in outputs for n in step.cells):
            continue  # the run ended before this step
        failed = any(o["output_type"] == "error" for n in ran for o in outputs[n])
        cells = [{"cell": n, "execution_count": i, "outputs": outputs[n]} for i, n in enumerate(ran, start=1)]
        path = folder / "artifacts" / step.name / "kale_yaml_report"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(
            record_page(step.name, config.notebook.path.name, "failed" if failed else "finished", cells)
        )
        reports[step.name] = path
    return reports


@dataclass
class Status:
    state: str
    seconds: float | None = None


@dataclass
class FakeRun:
    """What the pages read of a run (a `RunResult` has it all)."""

    run_dir: Path
    steps: dict[str, Status]
    metrics: dict[str, float] = field(default_factory=dict)
    failure: Any = None
    reports: dict[str, Path] = field(default_factory=dict)


SKIPPED_OUTLINE = ("output html",)  # a cell's own HTML (pandas, scikit-learn) is not the page's structure


def outline(page: str) -> str:
    """The page's structure as text: one line per element with an id or a class, indented by depth, headings
    with their text; never a cell's own HTML, image bytes or a style."""
    from html.parser import HTMLParser

    lines: list[str] = []
    voids = {"meta", "img", "br", "hr", "link", "input", "path", "rect"}

    class Outline(HTMLParser):
        depth = 0
        skipping = 0
        heading: str | None = None
        heading_line = 0

        def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
            found = dict(attrs)
            classes = found.get("class") or ""
            if self.skipping:
                self.skipping += tag not in voids
                return
            if tag not in voids:
                self.depth += 1
            if classes in SKIPPED_OUTLINE:
                self.skipping = 1
            label = tag + (f"#{found['id']}" if found.get("id") else "")
            label += "".join(f".{c}" for c in classes.split())
            if tag in ("h1", "h2", "h3") or found.get("id") or classes:
                lines.append("  " * self.depth + label)
            if tag in ("h1", "h2"):
                self.heading, self.heading_line = "", len(lines) - 1

        def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
            if not self.skipping:
                classes = dict(attrs).get("class") or ""
                if classes:
                    lines.append("  " * (self.depth + 1) + tag + "".join(f".{c}" for c in classes.split()))

        def handle_endtag(self, tag: str) -> None:
            if tag in voids:
                return
            if self.skipping:
                self.skipping -= 1
                if self.skipping:
                    return
            if tag in ("h1", "h2") and self.heading is not None:
                lines[self.heading_line] += f" {self.heading.strip()!r}"
                self.heading = None
            self.depth -= tag not in voids

        def handle_data(self, data: str) -> None:
            if self.heading is not None and not self.skipping:
                self.heading += data

    Outline().feed(page)
    return "\n".join(lines) + "\n"
