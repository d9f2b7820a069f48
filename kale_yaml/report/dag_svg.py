"""The pipeline's DAG as an inline SVG picture, laid out here: no Graphviz, no network, no script.

A small layered (Sugiyama-style) layout: each step goes one layer below the deepest step it waits for; an edge
that spans several layers passes through a point in each layer between, which takes part in the ordering like
a step, so long edges go around steps rather than through them; the steps of a layer are ordered by the mean
position of their neighbours (a few sweeps down, then up, cut crossings well enough for pipelines of tens of
steps); layers are centred. Edges are curves labelled with the variables they carry, each label moved along
its edge until it overlaps no other.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from markupsafe import Markup

CHAR, LABEL_CHAR = 7.6, 6.0  # px per character of the node font (13px) and the label font (10.5px), roughly
NODE_H, LAYER_GAP, NODE_GAP, PAD, POINT_W = 40, 72, 40, 16, 14
MAX_LABEL = 26
Point = tuple[float, float]


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


def layers(nodes: Sequence[str], links: Sequence[Link]) -> tuple[list[list[str]], dict[Link, list[str]]]:
    """`nodes` in a topological order -> ordered layers (with a point per layer an edge crosses), and each
    link's chain of nodes from its source to its target."""
    depth: dict[str, int] = {}
    for node in nodes:
        depth[node] = 1 + max((depth[link.source] for link in links if link.target == node), default=-1)
    found: list[list[str]] = [[] for _ in range(max(depth.values(), default=-1) + 1)]
    for node in nodes:
        found[depth[node]].append(node)
    chains: dict[Link, list[str]] = {}
    for number, link in enumerate(links):
        points = [f"\0{number}.{d}" for d in range(depth[link.source] + 1, depth[link.target])]
        for point in points:
            found[int(point.rsplit(".", 1)[1])].append(point)
        chains[link] = [link.source, *points, link.target]
    upstream: dict[str, list[str]] = {n: [] for row in found for n in row}
    downstream: dict[str, list[str]] = {n: [] for row in found for n in row}
    for chain in chains.values():
        for a, b in itertools.pairwise(chain):
            upstream[b].append(a)
            downstream[a].append(b)
    for _ in range(4):
        for i in range(1, len(found)):
            _order_by(found[i], found[i - 1], upstream)
        for i in range(len(found) - 2, -1, -1):
            _order_by(found[i], found[i + 1], downstream)
    return found, chains


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
    rows, chains = layers([n.name for n in nodes], links)
    width: dict[str, float] = {n: POINT_W for row in rows for n in row}
    width.update({n.name: max(110.0, CHAR * max(len(n.name), len(n.note)) + 28) for n in nodes})
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
    placed: list[tuple[float, float, float]] = []  # labels so far: centre x, y, half width
    parts += [_edge(link, chains[link], box, placed) for link in links]
    parts += [_node(by_name[name], *box[name]) for row in rows for name in row if name in by_name]
    parts.append(Markup("</svg>"))
    return Markup("").join(parts)


def _edge(
    link: Link,
    chain: list[str],
    box: Mapping[str, tuple[float, float, float]],
    placed: list[tuple[float, float, float]],
) -> Markup:
    """A curve through the link's chain: from the bottom of each node to the top of the next."""
    segments: list[tuple[Point, Point]] = []
    for a, b in itertools.pairwise(chain):
        ax, ay, aw = box[a]
        bx, by, bw = box[b]
        segments.append(((ax + aw / 2, ay + NODE_H), (bx + bw / 2, by - (2 if b == chain[-1] else 0))))
    path = []
    for i, ((x1, y1), (x2, y2)) in enumerate(segments):
        bend = (y2 - y1) / 2
        start = f"M{x1:.1f},{y1 - NODE_H:.1f} L{x1:.1f},{y1:.1f} " if i else f"M{x1:.1f},{y1:.1f} "
        path.append(f"{start}C{x1:.1f},{y1 + bend:.1f} {x2:.1f},{y2 - bend:.1f} {x2:.1f},{y2:.1f}")
    label = link.label if len(link.label) <= MAX_LABEL else link.label[: MAX_LABEL - 1] + "…"
    mx, my = _label_place(segments, len(label) * LABEL_CHAR / 2 + 3, placed)
    dashed = ' stroke-dasharray="5 4"' if link.label == "after" else ""
    return Markup(
        '<g class="edge" data-source="{s}" data-target="{t}"><title>{s} → {t}: {full}</title>'
        '<path d="{d}" fill="none" stroke="#9ca3af" stroke-width="1.6"{dashed} marker-end="url(#arrow)"/>'
        '<text x="{mx:.1f}" y="{my:.1f}" class="edge-label">{label}</text></g>'
    ).format(
        s=link.source,
        t=link.target,
        full=link.label,
        d=" ".join(path),
        dashed=Markup(dashed),
        mx=mx,
        my=my + 4,
        label=label,
    )


def _label_place(
    segments: list[tuple[Point, Point]], half: float, placed: list[tuple[float, float, float]]
) -> Point:
    """The first spot along the edge (middle first) where the label overlaps no label placed before."""
    candidates = [(i, t) for t in (0.5, 0.3, 0.7, 0.2, 0.8) for i in range(len(segments))]
    spot = _on_curve(*segments[0], 0.5)
    for i, t in candidates:
        x, y = _on_curve(*segments[i], t)
        if all(abs(x - px) > half + ph or abs(y - py) > 14 for px, py, ph in placed):
            spot = (x, y)
            break
    placed.append((*spot, half))
    return spot


def _on_curve(start: Point, end: Point, t: float) -> Point:
    """The point at `t` of the cubic curve whose control points sit halfway down above and below its ends."""
    (x1, y1), (x2, y2) = start, end
    u = 1 - t
    x = (u**3 + 3 * u**2 * t) * x1 + (3 * u * t**2 + t**3) * x2
    return x, y1 + (y2 - y1) * t


def _node(node: Node, x: float, y: float, w: float) -> Markup:
    note = (
        Markup('<text x="{:.1f}" y="{:.1f}" class="node-note">{}</text>').format(x + w / 2, y + 31, node.note)
        if node.note
        else Markup("")
    )
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
        colour=node.colour,
        tint=node.tint,
        cx=x + w / 2,
        ny=y + (18 if node.note else 25),
        note=note,
    )
