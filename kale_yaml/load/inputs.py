"""A command's inputs: the sidecar, checked against the schema, and the notebook it names.

`load_inputs` is the strict way (`validate`, `build`, `run`): every problem raises. `read_sidecar` is the
lenient one (`kale-yaml cells`): the schema's problems are kept beside the sidecar, so the table of cells can
still show what the parts that work say.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from kale_yaml.errors import Diagnostic, NotebookError, SchemaError
from kale_yaml.load import schema
from kale_yaml.load.cells import Notebook
from kale_yaml.load.document import Document, load_document
from kale_yaml.load.notebook import load_notebook, notebook_path
from kale_yaml.load.paths import display_path


@dataclass(frozen=True)
class Inputs:
    sidecar: Path
    document: Document
    notebook: Notebook


@dataclass(frozen=True)
class Sidecar:
    """A sidecar as read, with what the schema says is wrong with it."""

    path: Path
    document: Document
    problems: tuple[Diagnostic, ...]  # the schema's

    @property
    def notebook_name(self) -> str | None:
        """The `notebook:` key, when it is text that is not empty (the schema may have refused the rest)."""
        data = self.document.data
        name = data.get("notebook") if isinstance(data, dict) else None
        return name if isinstance(name, str) and name else None

    def notebook(self) -> Notebook:
        """The notebook it names. Raises `NotebookError`."""
        return named_notebook(self.document)

    def names(self, notebook: Path) -> bool:
        """Whether its `notebook:` key names this notebook (any problem with the key means no)."""
        if self.notebook_name is None:
            return False
        try:
            named = notebook_path(self.document)
        except NotebookError:
            return False
        return os.path.realpath(named) == os.path.realpath(notebook)


def load_inputs(sidecar: Path) -> Inputs:
    """Read the sidecar, check it against the schema, and read the notebook it names. Raises
    `KaleYamlError` for the first of these that fails."""
    document = load_document(sidecar, display_path(sidecar))
    schema.check(document)
    return Inputs(sidecar, document, named_notebook(document))


def read_sidecar(path: Path) -> Sidecar:
    """Read the sidecar (raises `DocumentError`) and keep what the schema finds wrong with it."""
    document = load_document(path, display_path(path))
    try:
        schema.check(document)
    except SchemaError as exc:
        return Sidecar(path, document, tuple(exc.diagnostics))
    return Sidecar(path, document, ())


def named_notebook(document: Document) -> Notebook:
    path = notebook_path(document)
    return load_notebook(path, display_path(path), partial(document.at, ("notebook",)))
