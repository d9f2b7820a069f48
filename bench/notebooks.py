"""Generated notebooks and sidecars for the benchmarks (written into temporary folders only)."""

from __future__ import annotations

import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

import nbformat

_nbformat: Any = nbformat  # untyped: called through Any
new_code_cell: Callable[..., Any] = _nbformat.v4.new_code_cell
new_markdown_cell: Callable[..., Any] = _nbformat.v4.new_markdown_cell
new_notebook: Callable[..., Any] = _nbformat.v4.new_notebook

CELLS_PER_STEP = 10


def _write(folder: Path, name: str, cells: list[Any], sidecar: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    nb = new_notebook(cells=cells)
    nb.nbformat, nb.nbformat_minor = 4, 5
    nb.metadata = {
        "kernelspec": {"name": "python3", "language": "python", "display_name": "Python 3"},
        "language_info": {"name": "python"},
    }
    with open(folder / f"{name}.ipynb", "w", encoding="utf-8") as handle:
        _nbformat.write(nb, handle)
    (folder / "pipeline.kale.yaml").write_text(sidecar, encoding="utf-8")
    return folder


def _cell_source(rng: random.Random, step: int, index: int, earlier: list[str], helpers: list[str]) -> str:
    """One code cell of step `step`: reads a couple of earlier variables, defines new ones."""
    picks = rng.sample(earlier, k=min(2, len(earlier)))
    a, b = (picks + picks)[:2]
    name = f"s{step}_v{index}"
    kind = index % 5
    if kind == 0:
        return (
            f"def helper_{step}(values, scale={index + 1}):\n"
            f'    """Scale and shift a list, step {step}."""\n'
            f"    return [value * scale + {step} for value in values]\n"
            f"{name} = helper_{step}({a}) + [len({b})]"
        )
    if kind == 1:
        helper = rng.choice(helpers) if helpers else None
        call = f"{helper}({a})" if helper else f"list({a})"
        return (
            f"{name} = []\n"
            f"for i, value in enumerate({call}):\n"
            f"    if i % 2 == 0:\n"
            f"        {name}.append(value + i)\n"
            f"    else:\n"
            f"        {name}.append(value - i)\n"
            f"total_{step}_{index} = sum({name})"
        )
    if kind == 2:
        return (
            f"# combine two earlier results\n"
            f"{name} = [x + y for x, y in zip({a}, {b})]\n"
            f"print(len({name}), max({name}, default=0))"
        )
    if kind == 3:
        return (
            f"{name} = {{k: v for k, v in enumerate({a})}}\n"
            f"{name} = sorted({name}.values())[:{10 + index}]\n"
            f"summary_{step} = dict(step={step}, n=len({name}), first={b}[:1])"
        )
    return f"{name} = list({a})\n{name}.extend(v * 2 for v in {b})\n{name} = {name}[-50:]"


def scaling_project(folder: Path, code_cells: int, seed: int = 0) -> Path:
    """A notebook of `code_cells` code cells: a prelude, then a section (heading, ~10 cells) per step.

    Each cell reads two variables defined by earlier steps (or the parameters) and defines new ones; every
    fifth cell defines a helper function that later steps call. The sidecar selects each step by heading.
    """
    rng = random.Random(seed)
    cells = [
        new_markdown_cell(f"# Generated notebook with {code_cells} code cells", id="title"),
        new_code_cell("import math\nimport statistics\nfrom collections import Counter", id="imports"),
        new_code_cell("size = 20\nfactor = 3", id="parameters"),
    ]
    remaining = code_cells - 2
    earlier = ["base"]
    helpers: list[str] = []
    cells.append(new_markdown_cell("## Step 0", id="h0"))
    cells.append(new_code_cell("base = [i * factor for i in range(size)]", id="c0"))
    remaining -= 1
    steps = ['  - name: step_0\n    cells: {heading: "Step 0"}']
    step = 1
    while remaining > 0:
        count = min(CELLS_PER_STEP, remaining)
        cells.append(new_markdown_cell(f"## Step {step}\n\nWhat step {step} does.", id=f"h{step}"))
        defined: list[str] = []
        for index in range(count):
            source = _cell_source(rng, step, index, earlier, helpers)
            cells.append(new_code_cell(source, id=f"c{step}-{index}"))
            defined.append(f"s{step}_v{index}")
            if index % 5 == 0:
                helpers.append(f"helper_{step}")
        earlier.extend(defined)
        earlier = earlier[-60:]  # later steps read recent results (and keep the graph realistic)
        steps.append(f'  - name: step_{step}\n    cells: {{heading: "Step {step}"}}')
        remaining -= count
        step += 1
    sidecar = (
        "version: 1\n"
        "notebook: generated.ipynb\n"
        "pipeline:\n"
        f"  name: generated-{code_cells}\n"
        "  image: python:3.11-slim\n"
        "parameters:\n"
        "  cells: {id: parameters}\n"
        "prelude: {id: imports}\n"
        "steps:\n" + "\n".join(steps) + "\n"
    )
    return _write(folder, "generated", cells, sidecar)


def chain_project(folder: Path, steps: int) -> Path:
    """The kale-yaml twin of bench.handwritten: `steps` steps, each `x = x + 1` on the previous step's x."""
    cells = [
        new_markdown_cell("# Chain", id="title"),
        new_code_cell("start = 0", id="parameters"),
    ]
    entries = []
    for step in range(1, steps + 1):
        cells.append(new_markdown_cell(f"## Add {step}", id=f"h{step}"))
        source = "x = start + 1" if step == 1 else "x = x + 1"
        cells.append(new_code_cell(source, id=f"add{step}"))
        entries.append(f"  - name: add_{step}\n    cells: {{id: add{step}}}")
    sidecar = (
        "version: 1\n"
        "notebook: chain.ipynb\n"
        "pipeline:\n"
        f"  name: chain-{steps}\n"
        "  image: python:3.11-slim\n"
        "parameters:\n"
        "  cells: {id: parameters}\n"
        "steps:\n" + "\n".join(entries) + "\n"
    )
    return _write(folder, "chain", cells, sidecar)


def sleepers_project(folder: Path, seconds: float) -> Path:
    """Two independent steps that each sleep `seconds`, after a first step that makes their input."""
    cells = [
        new_markdown_cell("# Two sleepers", id="title"),
        new_code_cell("import time", id="imports"),
        new_code_cell("x = 1", id="start"),
        new_code_cell(f"time.sleep({seconds})\na = x + 1", id="left"),
        new_code_cell(f"time.sleep({seconds})\nb = x + 2", id="right"),
    ]
    sidecar = (
        "version: 1\n"
        "notebook: sleepers.ipynb\n"
        "prelude: {id: imports}\n"
        "pipeline:\n"
        "  name: sleepers\n"
        "steps:\n"
        "  - name: start\n    cells: {id: start}\n"
        "  - name: left\n    cells: {id: left}\n    outputs: [a]\n"
        "  - name: right\n    cells: {id: right}\n    outputs: [b]\n"
    )
    return _write(folder, "sleepers", cells, sidecar)


def notebook_script(notebook: Path, script: Path) -> Path:
    """The notebook's code cells, top to bottom, as one script (magics and shell lines left out)."""
    nb = _nbformat.read(notebook, as_version=4)
    parts = []
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        lines = [line for line in str(cell.source).splitlines() if not line.lstrip().startswith(("%", "!"))]
        parts.append("\n".join(lines))
    script.write_text("\n\n".join(parts) + "\n", encoding="utf-8")
    return script
