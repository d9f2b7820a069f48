"""One error hierarchy: every problem a user can cause is a `Diagnostic` with a source location.

A stage collects all its diagnostics and raises one `KaleYamlError` holding them; anything else that escapes
is a bug in kale-yaml and is allowed to show its traceback. Diagnostics are made through the catalogue in
`kale_yaml.diagnostics`, which gives each kind its stable code (`KY201`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Literal, Self

Severity = Literal["error", "warning", "note"]


@dataclass(frozen=True, order=True)
class Diagnostic:
    """One finding, located either in the sidecar (line/col/key) or in the notebook (cell/line).

    Rendered as `pipeline.kale.yaml:12:5: steps[2].cells: message` or
    `wine.ipynb: cell 7, line 3: message`. The code (`KY201`) names the kind of problem for tools (`--format
    json` and `github`); the text a person reads leaves it out.
    """

    file: str
    line: int | None = None
    col: int | None = None
    key: str | None = None
    message: str = ""
    cell: int | None = None
    severity: Severity = "error"
    code: str | None = None

    def location(self) -> str:
        if self.cell is not None:
            where = f"{self.file}: cell {self.cell}"
            return f"{where}, line {self.line}" if self.line is not None else where
        if self.line is not None:
            return f"{self.file}:{self.line}:{self.col or 1}"
        return self.file

    def __str__(self) -> str:
        prefix = self.location()
        if self.key:
            prefix = f"{prefix}: {self.key}"
        return f"{prefix}: {self.message}"


class KaleYamlError(Exception):
    """The root of every error caused by user input. Carries one or more diagnostics."""

    def __init__(self, diagnostics: Iterable[Diagnostic]) -> None:
        self.diagnostics: list[Diagnostic] = sorted(diagnostics, key=_sort_key)
        if not self.diagnostics:
            raise ValueError("KaleYamlError needs at least one diagnostic")
        super().__init__("\n".join(str(d) for d in self.diagnostics))

    @classmethod
    def single(cls, diagnostic: Diagnostic) -> Self:
        return cls([diagnostic])


def _sort_key(d: Diagnostic) -> tuple[str, int, int, int, str]:
    return (d.file, d.cell or 0, d.line or 0, d.col or 0, d.message)


class DocumentError(KaleYamlError):
    """The sidecar is not readable YAML, or has duplicate keys."""


class SchemaError(KaleYamlError):
    """The sidecar does not match the JSON Schema."""


class NotebookError(KaleYamlError):
    """The notebook cannot be read, or selectors and ownership do not fit it."""


class AnalysisError(KaleYamlError):
    """The code of the cells cannot be parsed, or reads a name nothing defines."""


class PlanError(KaleYamlError):
    """The steps do not form a valid DAG."""


class BuildError(KaleYamlError):
    """Rendering, compiling or writing the pipeline failed."""


class RunError(KaleYamlError):
    """A run could not start, or a step failed."""


class ClusterError(KaleYamlError):
    """A cluster setting that kfp or Kubernetes would reject, although the schema allows its form."""


class SubmitError(KaleYamlError):
    """The KFP server could not be reached, refused a request, or the run did not succeed."""


@dataclass
class Collector:
    """Gathers diagnostics for one stage, then raises them all at once."""

    errors: list[Diagnostic] = field(default_factory=list)
    warnings: list[Diagnostic] = field(default_factory=list)

    def add(self, diagnostic: Diagnostic) -> None:
        if diagnostic.severity != "error":  # warnings and notes
            self.warnings.append(diagnostic)
        else:
            self.errors.append(diagnostic)

    def extend(self, diagnostics: Sequence[Diagnostic]) -> None:
        for d in diagnostics:
            self.add(d)

    def raise_if_any(self, error_type: type[KaleYamlError]) -> None:
        if self.errors:
            raise error_type(self.errors)
