"""`kale-yaml init NOTEBOOK`: a first sidecar drafted from the notebook's structure, a comment on every key.

- Steps: one per top-level markdown section. The top level is the smallest heading level in the notebook,
  except for a title: when that level has a single heading and it comes before any code, it names the
  notebook (it becomes the description) and the next level down makes the sections. A section without code
  makes no step.
- Parameters: the cells tagged `parameters` (papermill's convention).
- Prelude: the code cells before the first section that only import and make process-wide settings (the
  setters of kale_yaml.analysis.process_state, reading only imported names), up to the first other code cell.
- Skip: code cells that cannot run in a pipeline step (a cell magic like `%%bash`, IPython-only syntax), with
  a comment saying why. Comment-only cells are blank: they need no owner.
- Setup: any other code before the first section becomes a first step, `setup`.
- Selectors: `{heading: ...}` when the heading is unique and its section is exactly the step's code, else
  `{from: ...}` (up to the next step), else the cell numbers; prelude, parameters and setup cells by id
  when the notebook has ids.
The draft is text; `draft_sidecar` never writes. The command line writes it and validates the result.
"""

from __future__ import annotations

import ast
import re
import sys
import unicodedata
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kale_yaml.analysis.magics import CellMagicError, executable_source, parse_python
from kale_yaml.authoring.draft_cells import cannot_run, sets_up_only
from kale_yaml.authoring.sidecar_writer import commented, describe_numbers, flow, header, quoted, scalar
from kale_yaml.authoring.sidecar_writer import selector as number_selector
from kale_yaml.load.cells import Notebook
from kale_yaml.load.notebook import Heading, headings, normalise_heading
from kale_yaml.resolve.config import DEFAULT_IMAGE, RESERVED_STEP_NAMES

PARAMETERS_TAG = "parameters"
MAX_NAME_LENGTH = 40
# Import names whose pip package has another name.
PIP_NAMES = {
    "sklearn": "scikit-learn",
    "cv2": "opencv-python",
    "PIL": "pillow",
    "yaml": "pyyaml",
    "bs4": "beautifulsoup4",
    "skimage": "scikit-image",
    "dateutil": "python-dateutil",
    "dotenv": "python-dotenv",
    "jwt": "pyjwt",
    "IPython": "ipython",
    "attr": "attrs",
}


@dataclass(frozen=True)
class Section:
    start: int  # the heading cell
    text: str
    level: int


@dataclass
class _Step:
    name: str
    cells: tuple[int, ...]  # the code cells it owns (blank ones left out)
    selector: str  # as written in YAML
    comment: str
    hint: str | None = None


def draft_sidecar(notebook: Notebook, tags: Sequence[Sequence[str]]) -> str:
    """The text of a `pipeline.kale.yaml` beside `notebook`; `tags[i]` are the tags of cell i + 1."""
    cells = notebook.cells
    code = [c.number for c in cells if c.cell_type == "code" and not c.is_blank]
    skipped = {n: why for n in code if (why := cannot_run(notebook.cell(n))) is not None}
    code = [n for n in code if n not in skipped]
    parameters = [n for n in code if PARAMETERS_TAG in _tags(tags, n)]
    title, sections = top_sections(notebook)
    first_section = sections[0].start if sections else len(cells) + 1
    prelude: list[int] = []
    setup: list[int] = []
    origins: dict[str, str] = {}
    for n in code:
        if n >= first_section or n in parameters:
            continue
        if not setup and sets_up_only(notebook.cell(n), origins):
            prelude.append(n)
        else:
            setup.append(n)
    owned_elsewhere = set(parameters) | set(prelude)
    steps = _section_steps(notebook, sections, code, owned_elsewhere)
    if setup:
        taken = {s.name for s in steps}
        name = next(n for n in ("setup", "preamble", *(f"setup_{i}" for i in range(2, 99))) if n not in taken)
        where = "the code above the first section" if sections else "the notebook has no markdown sections"
        hint = _parameters_hint(notebook, setup) if not parameters else None
        if not sections:
            name = "main"
        steps.insert(
            0,
            _Step(
                name,
                tuple(setup),
                _cells_selector(notebook, setup),
                f"{describe_numbers(setup)}: {where}",
                hint,
            ),
        )
    if not steps:  # nothing but imports and parameters: one step runs it all
        everything = [n for n in code if n not in parameters]
        prelude = []
        selector = _cells_selector(notebook, everything) if everything else "1"
        steps = [_Step("main", tuple(everything), selector, "the whole notebook")]
    level = f"`{'#' * sections[0].level}` section" if sections else "section"
    return _render(notebook, title, parameters, prelude, steps, level, skipped)


def top_sections(notebook: Notebook) -> tuple[str | None, list[Section]]:
    """The notebook's title (if it has one) and its top-level sections, in order."""
    found = [(cell.number, heading) for cell in notebook.cells for heading in headings(cell)]
    if not found:
        return None, []
    levels = sorted({heading.level for _, heading in found})
    first_code = min(
        (c.number for c in notebook.cells if c.cell_type == "code" and not c.is_blank), default=0
    )
    smallest = [(n, h) for n, h in found if h.level == levels[0]]
    title: tuple[int, Heading] | None = None
    level: int | None = levels[0]
    if len(smallest) == 1 and (first_code == 0 or smallest[0][0] < first_code):
        title = smallest[0]
        level = levels[1] if len(levels) > 1 else None
    sections: list[Section] = []
    if level is not None:
        for cell in notebook.cells:
            for heading in headings(cell):
                if heading.level <= level and (cell.number, heading) != title:
                    sections.append(Section(cell.number, heading.text, heading.level))
                    break
    return (title[1].text if title else None), sections


def step_name(text: str, taken: set[str], fallback: str) -> str:
    """A valid, unused step name (`[a-z][a-z0-9_]*`) made from a heading."""
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    name = re.sub(r"[^a-z0-9]+", "_", ascii_text.lower()).strip("_")
    if len(name) > MAX_NAME_LENGTH:
        name = name[:MAX_NAME_LENGTH].rsplit("_", 1)[0] or name[:MAX_NAME_LENGTH]
    if not name:
        name = fallback
    elif not name[0].isalpha():
        name = f"step_{name}"
    if name in RESERVED_STEP_NAMES:
        name = f"{name}_step"
    unique, counter = name, 2
    while unique in taken:
        unique, counter = f"{name}_{counter}", counter + 1
    return unique


def pipeline_name(stem: str) -> str:
    """A Kubernetes name made from the notebook's file name."""
    ascii_text = unicodedata.normalize("NFKD", stem).encode("ascii", "ignore").decode("ascii")
    name = re.sub(r"[^a-z0-9]+", "-", ascii_text.lower()).strip("-")[:63].strip("-")
    return name or "pipeline"


def imported_packages(notebook: Notebook) -> list[str]:
    """pip names guessed from the top-level modules the code cells import (the standard library left out)."""
    modules: set[str] = set()
    for cell in notebook.cells:
        if cell.cell_type != "code":
            continue
        try:
            tree = parse_python(executable_source(cell)[0])
        except (CellMagicError, SyntaxError, ValueError):
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                modules.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                modules.add(node.module.split(".")[0])
    third_party = {m for m in modules if m not in sys.stdlib_module_names and m != "__future__"}
    return sorted({PIP_NAMES.get(m, m) for m in third_party})


def _tags(tags: Sequence[Sequence[str]], number: int) -> Sequence[str]:
    return tags[number - 1] if number - 1 < len(tags) else ()


def _section_steps(
    notebook: Notebook, sections: list[Section], code: list[int], owned_elsewhere: set[int]
) -> list[_Step]:
    kept: list[tuple[Section, list[int]]] = []
    for i, section in enumerate(sections):
        end = sections[i + 1].start if i + 1 < len(sections) else len(notebook.cells) + 1
        own = [n for n in code if section.start <= n < end and n not in owned_elsewhere]
        if own:
            kept.append((section, own))
    steps: list[_Step] = []
    taken: set[str] = set()
    for i, (section, own) in enumerate(kept):
        name = step_name(section.text, taken, f"section_{section.start}")
        taken.add(name)
        next_start = kept[i + 1][0].start if i + 1 < len(kept) else len(notebook.cells) + 1
        span = [n for n in code if section.start <= n < next_start]
        selector = _section_selector(notebook, section, own, span, code)
        steps.append(_Step(name, tuple(own), selector, f"{describe_numbers(own)}"))
    return steps


def _section_selector(
    notebook: Notebook, section: Section, own: list[int], span: list[int], code: list[int]
) -> str:
    wanted = normalise_heading(section.text)
    matching = [
        c.number for c in notebook.cells if any(normalise_heading(h.text) == wanted for h in headings(c))
    ]
    unique = bool(wanted) and matching == [section.start]
    if span != own:  # a parameters or prelude cell sits inside the section: name the step's cells one by one
        return flow(number_selector(own, _transparent(notebook, own)))
    if unique:
        level = next(
            h.level for h in headings(notebook.cell(section.start)) if normalise_heading(h.text) == wanted
        )
        end = next(
            (c.number for c in notebook.cells[section.start :] if any(h.level <= level for h in headings(c))),
            len(notebook.cells) + 1,
        )
        if [n for n in code if section.start <= n < end] == own:
            return "{heading: " + quoted(section.text) + "}"
        return "{from: {heading: " + quoted(section.text) + "}}"
    cell_id = _unique_ids(notebook).get(section.start)
    start = "{id: " + scalar(cell_id) + "}" if cell_id else str(section.start)
    return "{from: " + start + "}"


def _cells_selector(notebook: Notebook, numbers: Sequence[int]) -> str:
    unique = _unique_ids(notebook)
    ids = [unique.get(n) for n in numbers]
    if ids and all(ids):
        items: list[Any] = [{"id": i} for i in ids]
        return flow(items[0] if len(items) == 1 else items)
    return flow(number_selector(numbers, _transparent(notebook, numbers)))


def _unique_ids(notebook: Notebook) -> dict[int, str]:
    """Cell number -> id of the cells whose id no other cell has: `{id: ...}` of a repeated id is an error."""
    counts = Counter(c.id for c in notebook.cells)
    return {c.number: c.id for c in notebook.cells if c.id and counts[c.id] == 1}


def _transparent(notebook: Notebook, numbers: Sequence[int]) -> set[int]:
    """Cells a range may run over without claiming anything: markdown, raw and blank code cells."""
    return {c.number for c in notebook.cells if c.cell_type != "code" or c.is_blank}


def _parameters_hint(notebook: Notebook, cells: Sequence[int]) -> str | None:
    for n in cells:
        try:
            tree = parse_python(notebook.cell(n).source)
        except SyntaxError:
            continue
        if tree.body and all(_is_literal_assignment(s) for s in tree.body):
            return (
                f"cell {n} holds only `name = literal` lines: to make them pipeline parameters, move it\n"
                f"from this step to `parameters: {{cells: {n}}}`, or tag it `parameters` (papermill's tag)\n"
                "and run init again"
            )
    return None


def _is_literal_assignment(statement: ast.stmt) -> bool:
    value = statement.value if isinstance(statement, ast.Assign | ast.AnnAssign) else None
    target = (
        statement.targets[0] if isinstance(statement, ast.Assign) and len(statement.targets) == 1 else None
    )
    if isinstance(statement, ast.AnnAssign):
        target = statement.target
    if not isinstance(target, ast.Name) or value is None:
        return False
    try:
        ast.literal_eval(value)
    except ValueError:
        return False
    return True


def _render(
    notebook: Notebook,
    title: str | None,
    parameters: list[int],
    prelude: list[int],
    steps: list[_Step],
    level: str,
    skipped: dict[int, str],
) -> str:
    lines = header(
        f"Drafted by `kale-yaml init` from {notebook.path.name}. Review it, then run `kale-yaml validate`."
    )
    lines.append(commented("version: 1", "the format of this file"))
    lines.append(
        commented(f"notebook: {scalar(notebook.path.name)}", "relative to this file; kale-yaml only reads it")
    )
    lines.append(commented("pipeline:", "the pipeline's name and the defaults of every step"))
    lines.append(
        commented(f"  name: {pipeline_name(notebook.path.stem)}", "a Kubernetes name: a-z, 0-9 and -")
    )
    if title:
        lines.append(commented(f"  description: {scalar(title)}", "from the notebook's title"))
    lines.append(commented(f"  image: {DEFAULT_IMAGE}", "the image steps run in on a cluster"))
    # auto: each step gets exactly what its cells import, pinned to what the notebook ran with here; the
    # guessed list stays as a comment for a sidecar that prefers to name its packages.
    lines.append(commented("  packages: auto", "each step installs what its cells import, pinned"))
    packages = imported_packages(notebook)
    if packages:
        lines.append(commented(f"  # packages: {flow(packages)}", "or name them: guessed from the imports"))
    if parameters:
        lines.append(commented("parameters:", "values you can change per run without editing the notebook"))
        lines.append(
            commented(
                f"  cells: {_cells_selector(notebook, parameters)}",
                f"{describe_numbers(parameters)}, tagged `parameters`: each `name = literal` line is one",
            )
        )
    if prelude:
        lines.append(
            commented(
                f"prelude: {_cells_selector(notebook, prelude)}",
                f"{describe_numbers(prelude)}: imports and settings, run at the start of every step",
            )
        )
    if skipped:
        lines.append(commented(f"skip: {_cells_selector(notebook, list(skipped))}", "cells that never run"))
        lines.extend(f"  # cell {n} cannot run in a pipeline step: {why}" for n, why in skipped.items())
    else:
        lines.append(commented('# skip: [{match: "^# scratch"}]', "cells that never run in the pipeline"))
    lines.append(commented("steps:", f"one per top-level {level}, in notebook order"))
    for step in steps:
        lines.append(f"  - name: {step.name}")
        lines.append(commented(f"    cells: {step.selector}", step.comment))
        if step.hint:
            lines.extend(f"    # {line}" for line in step.hint.splitlines())
    lines.append(commented("# metrics:", "variables a step reports as KFP metrics"))
    lines.append(f"#   step: {steps[-1].name}")
    lines.append("#   names: [accuracy]")
    return "\n".join(lines) + "\n"


def init_sidecar(notebook_path: Path) -> Path:
    """Draft the sidecar beside `notebook_path` and write it; an existing sidecar is an error and stays."""
    from kale_yaml.authoring.sidecar_writer import notebook_for_new_sidecar, write_new
    from kale_yaml.load.paths import display_path

    notebook, sidecar = notebook_for_new_sidecar(notebook_path)
    text = draft_sidecar(notebook, notebook.metadata.all_tags())
    write_new(sidecar, text, display_path(sidecar))
    return sidecar
