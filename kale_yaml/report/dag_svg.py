"""The pipeline's DAG as an inline SVG picture, laid out here: no Graphviz, no network, no script.

A small layered (Sugiyama-style) layout: each step goes one layer below the deepest step it waits for; the
steps of a layer are ordered by the mean position of their upstream steps (a few sweeps down, then up, cut
crossings well enough for pipelines of tens of steps); layers are centred. Edges are curves from the bottom of
a step to the top of the next, labelled with the variables they carry.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from markupsafe import Markup, escape

CHAR = 7.6  # px per character of the node font, roughly (13px sans-serif)
NODE_H, LAYER_GAP, NODE_GAP, PAD = 40, 64, 28, 16
MAX_LABEL = 28


@dataclass(frozen=True)
class Node:
    name: str
    colour: str  # the step's colour: border and bar
    tint: str  # its light shade: the box
    note: str = ""  # under the name: a status and time, or a cell range
    state: str = ""  # a CSS class: done, failed, cached, not-run ...


@dataclass(frozen=True)
class Link:
    source: str
    target: str
    label: str  # the variables, or "after"


def layers(nodes: Sequence[str], links: Sequence[Link]) -> list[list[str]]:
    """`nodes` in a topological order -> layers, each ordered to keep edges short and uncrossed."""
    upstream: dict[str, list[str]] = {n: [] for n in nodes}
    downstream: dict[str, list[str]] = {n: [] for n in nodes}
    for link in links:
        upstream[link.target].append(link.source)
        downstream[link.source].append(link.target)
    depth: dict[str, int] = {}
    for node in nodes:
        depth[node] = 1 + max((depth[u] for u in upstream[node]), default=-1)
    found: list[list[str]] = [[] for _ in range(max(depth.values(), default=-1) + 1)]
    for node in nodes:
        found[depth[node]].append(node)
    for _ in range(3):
        for i in range(1, len(found)):
            _order_by(found[i], found[i - 1], upstream)
        for i in range(len(found) - 2, -1, -1):
            _order_by(found[i], found[i + 1], downstream)
    return found


def _order_by(layer: list[str], neighbour: list[str], links: Mapping[str, list[str]]) -> None:
    position = {name: i for i, name in enumerate(neighbour)}
    current = {name: i for i, name in enumerate(layer)}

    def centre(name: str) -> float:
        near = [position[n] for n in links[name] if n in position]
        return sum(near) / len(near) if near else current[name]

    layer.sort(key=lambda name: (centre(name), current[name]))


def dag_svg(nodes: Sequence[Node], links: Sequence[Link]) -> Markup:
    if not nodes:
        return Markup("")
    by_name = {node.name: node for node in nodes}
    width = {n.name: max(110.0, CHAR * max(len(n.name), len(n.note)) + 28) for n in nodes}
    rows = layers([n.name for n in nodes], links)
    row_width = [sum(width[n] for n in row) + NODE_GAP * (len(row) - 1) for row in rows]
    total_w = max(row_width) + 2 * PAD
    total_h = len(rows) * NODE_H + (len(rows) - 1) * LAYER_GAP + 2 * PAD
    box: dict[str, tuple[float, float, float]] = {}  # name -> x, y, width
    for r, row in enumerate(rows):
        x = (total_w - row_width[r]) / 2
        for name in row:
            box[name] = (x, PAD + r * (NODE_H + LAYER_GAP), width[name])
            x += width[name] + NODE_GAP
    parts = [
        Markup(
            '<svg class="dag" xmlns="http://www.w3.org/2000/svg" role="img" viewBox="0 0 {w:.0f} {h:.0f}"'
            ' width="{w:.0f}" height="{h:.0f}"><title>the steps and what flows between them</title>'
            '<defs><marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7"'
            ' orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" fill="#6b7280"/></marker></defs>'
        ).format(w=total_w, h=total_h)
    ]
    parts += [_edge(link, box) for link in links if link.source in box and link.target in box]
    parts += [_node(by_name[name], *box[name]) for row in rows for name in row]
    parts.append(Markup("</svg>"))
    return Markup("").join(parts)


def _edge(link: Link, box: Mapping[str, tuple[float, float, float]]) -> Markup:
    sx, sy, sw = box[link.source]
    tx, ty, tw = box[link.target]
    x1, y1, x2, y2 = sx + sw / 2, sy + NODE_H, tx + tw / 2, ty
    bend = (y2 - y1) / 2
    label = link.label if len(link.label) <= MAX_LABEL else link.label[: MAX_LABEL - 1] + "…"
    dashed = ' stroke-dasharray="5 4"' if link.label == "after" else ""
    return Markup(
        '<g class="edge" data-source="{s}" data-target="{t}"><title>{s} → {t}: {full}</title>'
        '<path d="M{x1:.1f},{y1:.1f} C{x1:.1f},{c1:.1f} {x2:.1f},{c2:.1f} {x2:.1f},{y2:.1f}" fill="none"'
        ' stroke="#9ca3af" stroke-width="1.6"{dashed} marker-end="url(#arrow)"/>'
        '<text x="{mx:.1f}" y="{my:.1f}" class="edge-label">{label}</text></g>'
    ).format(
        s=link.source,
        t=link.target,
        full=link.label,
        x1=x1,
        y1=y1,
        x2=x2,
        y2=y2 - 2,
        c1=y1 + bend,
        c2=y2 - bend,
        dashed=Markup(dashed),
        mx=(x1 + x2) / 2,
        my=(y1 + y2) / 2 + 4,
        label=label,
    )


def _node(node: Node, x: float, y: float, w: float) -> Markup:
    note = (
        Markup('<text x="{:.1f}" y="{:.1f}" class="node-note">{}</text>').format(x + w / 2, y + 31, node.note)
        if node.note
        else Markup("")
    )
    name_y = y + (18 if node.note else 25)
    return Markup(
        '<g class="node {state}" id="dag-{name}" data-step="{name}"><title>{name}</title>'
        '<rect x="{x:.1f}" y="{y:.1f}" width="{w:.1f}" height="{h}" rx="8" fill="{tint}" stroke="{colour}"'
        ' stroke-width="1.5" class="node-box"/>'
        '<rect x="{x:.1f}" y="{y:.1f}" width="6" height="{h}" rx="3" fill="{colour}" class="node-bar"/>'
        '<text x="{cx:.1f}" y="{ny:.1f}" class="node-name">{name}</text>{note}</g>'
    ).format(
        state=node.state,
        name=node.name,
        x=x,
        y=y,
        w=w,
        h=NODE_H,
        colour=escape(node.colour),
        tint=escape(node.tint),
        cx=x + w / 2,
        ny=name_y,
        note=note,
    )
