"""Cell selectors (SPEC "Cell selectors"): from a sidecar value to the numbers of the cells it names.

The schema has already checked the shape of every selector; here we check it against the notebook.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from kale_yaml import diagnostics as ky
from kale_yaml.diagnostics import Kind
from kale_yaml.errors import Collector
from kale_yaml.load.cells import Notebook
from kale_yaml.load.document import Document, KeyPath
from kale_yaml.load.notebook import headings, normalise_heading
from kale_yaml.suggest import did_you_mean

# As the schema's cell_range: spaces and tabs around the numbers, nothing else (not even a final newline).
CELL_RANGE = re.compile(r"[ \t]*([0-9]+)[ \t]*(?:-[ \t]*([0-9]+)[ \t]*)?\Z")


@dataclass
class SelectorContext:
    document: Document
    notebook: Notebook
    errors: Collector

    def error(self, path: KeyPath, kind: Kind, message: str) -> None:
        self.errors.add(self.document.at(path, kind, message))

    @property
    def last(self) -> int:
        return len(self.notebook.cells)


def select(
    selector: Any, path: KeyPath, ctx: SelectorContext, open_end: int | None = None
) -> tuple[int, ...]:
    """The sorted cell numbers `selector` names; errors go to `ctx`, giving ().

    `open_end` is the last cell an open `{from: ...}` reaches (the cell before the next step's first cell);
    None means the notebook's last cell.
    """
    found = _select(selector, path, ctx, open_end)
    return tuple(sorted(set(found)))


def first_cell(selector: Any, path: KeyPath, ctx: SelectorContext) -> int | None:
    """Where a selector starts, not resolving an open `from` (it tells where the previous step ends)."""
    scratch = SelectorContext(ctx.document, ctx.notebook, Collector())
    cells = _select(selector, path, scratch, None)
    return min(cells) if cells else None


def _select(selector: Any, path: KeyPath, ctx: SelectorContext, open_end: int | None) -> list[int]:
    if isinstance(selector, bool):
        ctx.error(path, ky.NOT_A_SELECTOR, "not a cell selector")
        return []
    if isinstance(selector, int):
        return _numbers(selector, selector, path, ctx)
    if isinstance(selector, str):
        match = CELL_RANGE.match(selector)
        if not match:
            ctx.error(path, ky.BAD_CELL_RANGE, f"'{selector}' is not a cell number or range like \"3-6\"")
            return []
        start = int(match.group(1))
        end = int(match.group(2)) if match.group(2) else start
        return _numbers(start, end, path, ctx)
    if isinstance(selector, list):
        union: list[int] = []
        for index, item in enumerate(selector):
            union.extend(_select(item, (*path, index), ctx, open_end))
        return union
    if isinstance(selector, dict):
        if "id" in selector:
            return _by_id(str(selector["id"]), (*path, "id"), ctx)
        if "heading" in selector:
            return _by_heading(str(selector["heading"]), (*path, "heading"), ctx)
        if "match" in selector:
            return _by_match(str(selector["match"]), (*path, "match"), ctx)
        if "from" in selector:
            return _from_to(selector, path, ctx, open_end)
    ctx.error(path, ky.NOT_A_SELECTOR, "not a cell selector")
    return []


def _numbers(start: int, end: int, path: KeyPath, ctx: SelectorContext) -> list[int]:
    if start < 1:
        ctx.error(path, ky.CELL_ZERO, "cells are numbered from 1")
        return []
    if end < start:
        ctx.error(path, ky.BACKWARDS_RANGE, f"range {start}-{end} runs backwards")
        return []
    if end > ctx.last:
        what = f"cell {end}" if start == end else f"range {start}-{end}"
        ctx.error(path, ky.PAST_LAST_CELL, f"{what} is past the last cell; the notebook has {ctx.last} cells")
        return []
    return list(range(start, end + 1))


def _by_id(cell_id: str, path: KeyPath, ctx: SelectorContext) -> list[int]:
    ids = [c.id for c in ctx.notebook.cells if c.id]
    matches = [cell.number for cell in ctx.notebook.cells if cell.id == cell_id]
    if len(matches) == 1:
        return matches
    if matches:  # nbformat wants unique ids, but a merge or a hand edit can repeat one
        where = ", ".join(str(number) for number in matches)
        ctx.error(
            path,
            ky.DUPLICATE_CELL_ID,
            f"id '{cell_id}' is on cells {where}; select one with its number or a range",
        )
    elif not ids:
        ctx.error(
            path,
            ky.UNKNOWN_CELL_ID,
            f"no cell has id '{cell_id}': this notebook's cells have no ids (nbformat < 4.5)",
        )
    else:
        ctx.error(path, ky.UNKNOWN_CELL_ID, f"no cell has id '{cell_id}'{did_you_mean(cell_id, ids)}")
    return []


def _by_heading(text: str, path: KeyPath, ctx: SelectorContext) -> list[int]:
    wanted = normalise_heading(text)
    matches: list[tuple[int, int]] = []  # (cell number, heading level)
    for cell in ctx.notebook.cells:
        for heading in headings(cell):
            if normalise_heading(heading.text) == wanted:
                matches.append((cell.number, heading.level))
                break
    if not matches:
        known = [h.text for c in ctx.notebook.cells for h in headings(c)]
        ctx.error(path, ky.UNKNOWN_HEADING, f"no markdown heading '{text}'{did_you_mean(text, known)}")
        return []
    if len(matches) > 1:
        where = ", ".join(str(number) for number, _ in matches)
        ctx.error(
            path,
            ky.AMBIGUOUS_HEADING,
            f"heading '{text}' appears in cells {where}; select one with {{id: ...}} or a range",
        )
        return []
    start, level = matches[0]
    end = ctx.last
    for cell in ctx.notebook.cells[start:]:
        if any(h.level <= level for h in headings(cell)):
            end = cell.number - 1
            break
    return list(range(start, end + 1))


def _by_match(pattern: str, path: KeyPath, ctx: SelectorContext) -> list[int]:
    try:
        regex = re.compile(pattern, re.MULTILINE)
    except re.error as exc:
        ctx.error(path, ky.BAD_REGEX, f"not a valid regular expression: {exc}")
        return []
    found = [c.number for c in ctx.notebook.cells if regex.search(c.source)]
    if not found:
        ctx.error(path, ky.NO_MATCH, f"no cell matches /{pattern}/")
    return found


def _from_to(
    selector: dict[str, Any], path: KeyPath, ctx: SelectorContext, open_end: int | None
) -> list[int]:
    start_cells = _select(selector["from"], (*path, "from"), ctx, None)
    if not start_cells:
        return []
    start = min(start_cells)
    if "to" in selector:
        end_cells = _select(selector["to"], (*path, "to"), ctx, None)
        if not end_cells:
            return []
        end = max(end_cells)
    else:
        end = ctx.last if open_end is None else open_end
    if end < start:
        ctx.error(path, ky.BACKWARDS_RANGE, f"ends at cell {end}, before it starts at cell {start}")
        return []
    return list(range(start, end + 1))


def is_open_from(selector: Any) -> bool:
    return isinstance(selector, dict) and "from" in selector and "to" not in selector
