"""The planned pipeline as a picture for review: plain text, Mermaid (renders in GitHub comments and PR
descriptions) or Graphviz dot. Steps are nodes; an edge carries the variables that travel along it, and an
edge with none is an `after:` (ordering only) edge, drawn dashed. A global random generator's state travels
like a variable, named `<random>`, `<numpy.random>` or `<torch>`; the text also lists the process state
(settings, files) each step leaves, which later steps set again at their start.
"""

from __future__ import annotations

from typing import Literal

from kale_yaml.plan.dag import Edge, Pipeline

GraphFormat = Literal["text", "mermaid", "dot"]
FORMATS: tuple[GraphFormat, ...] = ("text", "mermaid", "dot")
MAX_LABEL_VARIABLES = 4  # an edge label lists at most this many variables, then "+N more"


def graph_text(pipeline: Pipeline, fmt: GraphFormat = "text") -> str:
    if fmt == "mermaid":
        return mermaid(pipeline)
    if fmt == "dot":
        return dot(pipeline)
    return text(pipeline)


def edge_label(edge: Edge, limit: int = MAX_LABEL_VARIABLES) -> str:
    """`X_train, y_train`; with more than `limit` variables, the first `limit - 1` and `+N more`."""
    names = list(edge.variables)
    if len(names) > limit:
        shown = limit - 1
        names = [*names[:shown], f"+{len(edge.variables) - shown} more"]
    return ", ".join(names)


def text(pipeline: Pipeline) -> str:
    steps = pipeline.steps
    width = max(len(s.name) for s in steps)
    counts = f"{_count(len(steps), 'step')}, {_count(len(pipeline.edges), 'edge')}"
    lines = [f"pipeline {pipeline.config.name}: {counts}", ""]
    lines.append("steps, in run order (with the pipeline parameters each reads):")
    for step in steps:
        params = f"  ({', '.join(step.parameters)})" if step.parameters else ""
        lines.append(f"  {step.name.ljust(width)}{params}".rstrip())
    lines.append("")
    if pipeline.edges:
        lines.append("edges (the variables each carries; 'after' orders without data):")
        for edge in pipeline.edges:
            what = ", ".join(edge.variables) if edge.variables else "after"
            lines.append(f"  {edge.source} -> {edge.target}: {what}")
    else:
        lines.append("edges: none; every step runs independently")
    if any(v.startswith("<") for edge in pipeline.edges for v in edge.variables):
        lines.append("  (<random>, <numpy.random>, <torch>: a global random generator's state)")
    setters = [step for step in sorted(steps, key=lambda s: s.config.index) if step.sets]
    if setters:
        lines += ["", "process state set again at the start of every later step:"]
        for step in setters:
            sets = ", ".join(f"{what} (cell {cell})" for cell, what in step.sets)
            lines.append(f"  {step.name}: {sets}")
    return "\n".join(lines) + "\n"


def mermaid(pipeline: Pipeline) -> str:
    """A fenced ```mermaid block, ready to paste into a GitHub comment, PR description or step summary."""
    lines = ["```mermaid", "flowchart TD", f"    %% pipeline {_mermaid_comment(pipeline.config.name)}"]
    for step in pipeline.steps:
        lines.append(f'    {mermaid_id(step.name)}["{mermaid_label(step.name)}"]')
    for edge in pipeline.edges:
        source, target = mermaid_id(edge.source), mermaid_id(edge.target)
        if edge.variables:
            lines.append(f'    {source} -->|"{mermaid_label(edge_label(edge))}"| {target}')
        else:
            lines.append(f"    {source} -.-> {target}")
    lines.append("```")
    return "\n".join(lines) + "\n"


def dot(pipeline: Pipeline) -> str:
    lines = [
        f"digraph {dot_id(pipeline.config.name)} {{",
        "  rankdir=TB;",
        '  node [shape=box, style=rounded, fontname="Helvetica"];',
        '  edge [fontname="Helvetica", fontsize=10];',
    ]
    for step in pipeline.steps:
        lines.append(f"  {dot_id(step.name)};")
    for edge in pipeline.edges:
        attributes = f"label={dot_id(edge_label(edge))}" if edge.variables else "style=dashed"
        lines.append(f"  {dot_id(edge.source)} -> {dot_id(edge.target)} [{attributes}];")
    lines.append("}")
    return "\n".join(lines) + "\n"


def _count(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def mermaid_id(name: str) -> str:
    # A prefix keeps ids clear of Mermaid's keywords (`end`, `graph`, ...) and of `o`/`x` edge endings;
    # step names are [a-z][a-z0-9_]*, so the rest is safe as it is.
    safe = "".join(c if c.isascii() and (c.isalnum() or c == "_") else "_" for c in name)
    return f"step_{safe}"


def mermaid_label(label: str) -> str:
    """Text inside a quoted Mermaid label: quotes and markup characters as entity codes."""
    entities = {"#": "#35;", '"': "#quot;", "<": "#lt;", ">": "#gt;", "|": "#124;", "`": "#96;"}
    return "".join(entities.get(c, c) for c in label)


def _mermaid_comment(text: str) -> str:
    return " ".join(text.split())


def dot_id(text: str) -> str:
    """A double-quoted Graphviz ID."""
    escaped = text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{escaped}"'
