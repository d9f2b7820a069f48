"""Writing a new `pipeline.kale.yaml` (for `init` and `import-kale`): YAML values in flow style, comments in
one column, the editor's schema line, and a create-only write that never replaces an existing sidecar.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Collection, Sequence
from pathlib import Path
from typing import Any

import yaml

from kale_yaml import diagnostics as ky
from kale_yaml.errors import DocumentError, NotebookError
from kale_yaml.load.cells import Notebook
from kale_yaml.load.paths import SIDECAR_NAME

COMMENT_COLUMN = 42
_RISKY = re.compile(r"(^[\s\d\-?:,\[\]{}#&*!|>'\"%@`])|([\s#]$)|(: )|( #)")


def sidecar_beside(notebook: Path) -> Path:
    return notebook.parent / SIDECAR_NAME


def schema_url() -> str:
    """Where editors find the schema: its `$id`."""
    from kale_yaml.load.schema import load_schema

    return str(load_schema()["$id"])


def header(made_by: str) -> list[str]:
    """The first lines of a drafted sidecar: the schema line for editors, then what made the file."""
    return [
        f"# yaml-language-server: $schema={schema_url()}",
        f"# {made_by}",
        "# Editors check this file against the schema named above. For a local copy instead, run",
        "# `kale-yaml schema > pipeline.kale.schema.json` and point $schema at that file.",
        "# Cells are numbered from 1, markdown included: `kale-yaml cells` lists them with their owners.",
    ]


def scalar(value: Any) -> str:
    """One YAML scalar that reads back as `value`: plain where that is unambiguous, else double-quoted."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    text = str(value)
    if text and not _RISKY.search(text) and _reads_back(text, text):
        return text
    return quoted(text)


def quoted(text: str) -> str:
    """A double-quoted YAML scalar (JSON's escaping is valid YAML)."""
    return json.dumps(text, ensure_ascii=False)


def flow(value: Any) -> str:
    """A value in YAML flow style, on one line: `{cpu: "2", memory: 4Gi}`, `[a, b]`, `"3-6"`."""
    if isinstance(value, dict):
        return "{" + ", ".join(f"{scalar(k)}: {flow(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(flow(v) for v in value) + "]"
    return scalar(value)


def commented(text: str, comment: str | None) -> str:
    """`text` with `# comment` from COMMENT_COLUMN (or two spaces after a longer text)."""
    if not comment:
        return text
    pad = max(COMMENT_COLUMN - len(text), 2)
    return f"{text}{' ' * pad}# {comment}"


def number_runs(numbers: Sequence[int], transparent: Collection[int] = ()) -> list[int | str]:
    """Cell numbers as selectors: `[3, "5-7"]`. A run continues over `transparent` cells (markdown, skipped
    cells) between two wanted cells, so that "5-7" may include a markdown cell 6."""
    wanted = sorted(set(numbers))
    through = set(transparent)
    runs: list[list[int]] = []
    for n in wanted:
        if runs and all(m in through for m in range(runs[-1][1] + 1, n)):
            runs[-1][1] = n
        else:
            runs.append([n, n])
    return [a if a == b else f"{a}-{b}" for a, b in runs]


def selector(numbers: Sequence[int], transparent: Collection[int] = ()) -> Any:
    runs = number_runs(numbers, transparent)
    return runs[0] if len(runs) == 1 else runs


def describe_numbers(numbers: Sequence[int]) -> str:
    """`cell 3` or `cells 3, 5-7`."""
    runs = number_runs(numbers)
    text = ", ".join(str(r) for r in runs)
    return f"cell {text}" if len(numbers) == 1 else f"cells {text}"


def notebook_for_new_sidecar(path: Path) -> tuple[Notebook, Path]:
    """The notebook at `path` and where its new sidecar goes; a folder, a broken notebook or a sidecar that
    is already there is an error."""
    from kale_yaml.load.notebook import load_notebook
    from kale_yaml.load.paths import display_path

    if path.is_dir():
        message = "is a folder: name the notebook (.ipynb) itself"
        raise NotebookError.single(ky.NOTEBOOK_IS_FOLDER.at(display_path(path), message))
    # absolute(), not resolve(): the draft names the notebook as the user did, and a link loop is the
    # reader's to report.
    notebook = load_notebook(path.absolute(), display_path(path))
    sidecar = sidecar_beside(path)
    if sidecar.exists() and os.path.samefile(sidecar, path):
        message = (
            f"the notebook has the name its sidecar gets ({SIDECAR_NAME}); kale-yaml never writes the"
            " notebook: rename it (NAME.ipynb) and run the command again"
        )
        raise NotebookError.single(ky.NOTEBOOK_NAMED_LIKE_SIDECAR.at(display_path(path), message))
    if sidecar.exists():
        raise _exists(display_path(sidecar))
    return notebook, sidecar


def write_new(path: Path, text: str, display_name: str) -> None:
    """Create `path` holding `text`; a file already there is an error and stays as it was."""
    try:
        with path.open("x", encoding="utf-8", newline="\n") as out:
            out.write(text)
    except FileExistsError:
        raise _exists(display_name) from None


def _exists(display_name: str) -> DocumentError:
    message = (
        "already exists; kale-yaml never overwrites a sidecar: edit it, or move it away and run the command"
        " again"
    )
    return DocumentError.single(ky.SIDECAR_EXISTS.at(display_name, message))


def _reads_back(text: str, value: str) -> bool:
    try:
        return bool(yaml.safe_load(f"k: {text}") == {"k": value} and yaml.safe_load(f"[{text}]") == [value])
    except yaml.YAMLError:
        return False
