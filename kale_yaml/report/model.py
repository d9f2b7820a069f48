"""What both pages show of a notebook: its cells in order, each with its owner and that owner's colour, and
the pipeline's DAG as the pages draw it."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from markupsafe import Markup, escape

from kale_yaml.load.cells import Cell, Notebook
from kale_yaml.plan.dag import Pipeline
from kale_yaml.report.dag_svg import Link, Node

ROLES = ("prelude", "parameters", "skip")
# (colour, tint): a step's border, bar and chip; the light shade behind its cells. Red and amber are left out
# of the steps' colours: red says failed or unowned, amber is the parameters'.
STEP_COLOURS = (
    ("#2563eb", "#eff6ff"),
    ("#059669", "#ecfdf5"),
    ("#7c3aed", "#f5f3ff"),
    ("#0891b2", "#ecfeff"),
    ("#c026d3", "#fdf4ff"),
    ("#65a30d", "#f7fee7"),
    ("#ea580c", "#fff7ed"),
    ("#4f46e5", "#eef2ff"),
    ("#0d9488", "#f0fdfa"),
    ("#db2777", "#fdf2f8"),
)
ROLE_COLOURS = {
    "prelude": ("#475569", "#f1f5f9"),
    "parameters": ("#b45309", "#fffbeb"),
    "skip": ("#9ca3af", "#f9fafb"),
    "unowned": ("#dc2626", "#fef2f2"),
    "conflict": ("#dc2626", "#fef2f2"),
    "none": ("#d1d5db", "#ffffff"),
}


@dataclass(frozen=True)
class Owner:
    kind: str  # "step" | "prelude" | "parameters" | "skip" | "unowned" | "conflict" | "none"
    label: str  # the step's name, the role, "unowned", or "a + b" for a conflict
    colour: str
    tint: str

    @property
    def step(self) -> str | None:
        return self.label if self.kind == "step" else None


@dataclass
class CellView:
    """One cell as a page shows it; the page adds outputs, notes and the aside beside it."""

    cell: Cell
    owner: Owner
    outputs: Markup = field(default_factory=Markup)
    problems: list[str] = field(default_factory=list)  # diagnostics and errors shown at the cell
    aside: Markup | None = None  # beside the first cell of a step: what the step reads, hands on, did

    @property
    def html(self) -> Markup:
        return markdown_html(self.cell.source) if self.cell.cell_type == "markdown" else Markup("")


def step_colours(
    notebook: Notebook, owners: Mapping[int, Sequence[str]], steps: Sequence[str]
) -> dict[str, tuple[str, str]]:
    """A colour per step: by its first cell in the notebook, then steps without cells in their order."""
    names = [name for cell in notebook.cells for name in owners.get(cell.number, ()) if name not in ROLES]
    ordered = list(dict.fromkeys([*names, *steps]))
    return {name: STEP_COLOURS[i % len(STEP_COLOURS)] for i, name in enumerate(ordered)}


def cell_views(
    notebook: Notebook, owners: Mapping[int, Sequence[str]] | None, colours: Mapping[str, tuple[str, str]]
) -> list[CellView]:
    return [CellView(cell, owner_of(cell, owners, colours)) for cell in notebook.cells]


def owner_of(
    cell: Cell, owners: Mapping[int, Sequence[str]] | None, colours: Mapping[str, tuple[str, str]]
) -> Owner:
    claims = list(owners.get(cell.number, ())) if owners is not None else []
    if len(claims) > 1:
        return Owner("conflict", " + ".join(claims), *ROLE_COLOURS["conflict"])
    if claims and claims[0] in ROLES:
        return Owner(claims[0], claims[0], *ROLE_COLOURS[claims[0]])
    if claims:
        return Owner("step", claims[0], *colours.get(claims[0], STEP_COLOURS[0]))
    if owners is not None and cell.cell_type == "code" and not cell.is_blank:
        return Owner("unowned", "unowned", *ROLE_COLOURS["unowned"])
    return Owner("none", "", *ROLE_COLOURS["none"])


def dag_parts(
    pipeline: Pipeline,
    colours: Mapping[str, tuple[str, str]],
    notes: Mapping[str, str],
    states: Mapping[str, str],
) -> tuple[list[Node], list[Link]]:
    nodes = [
        Node(
            s.name,
            *colours.get(s.name, STEP_COLOURS[0]),
            note=notes.get(s.name, ""),
            state=states.get(s.name, ""),
        )
        for s in pipeline.steps
    ]
    links = [Link(e.source, e.target, ", ".join(e.variables) or "after") for e in pipeline.edges]
    return nodes, links


def markdown_html(source: str) -> Markup:
    """A markdown cell, simply: headings, paragraphs and `code`; everything else as its text (escaped)."""
    blocks: list[Markup] = []
    for block in re.split(r"\n\s*\n", source.strip()):
        heading = re.match(r"(#{1,6})\s+(.*)", block)
        if heading and "\n" not in block:
            level = min(len(heading.group(1)) + 1, 6)  # the page's own title is the h1
            blocks.append(Markup('<h{0} class="md">{1}</h{0}>').format(level, _inline(heading.group(2))))
        elif block:
            blocks.append(Markup('<p class="md">{}</p>').format(_inline(block)))
    return Markup("").join(blocks)


def _inline(text: str) -> Markup:
    parts = re.split(r"`([^`]+)`", text)
    return Markup("").join(
        Markup("<code>{}</code>").format(part) if i % 2 else escape(part) for i, part in enumerate(parts)
    )
