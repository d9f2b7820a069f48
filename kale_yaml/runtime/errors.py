"""Exceptions of a step, whose text names the step, the cell or the variable."""

from __future__ import annotations


class StepError(Exception):
    """A step could not run or could not hand on its variables."""


class CellError(StepError):
    """A notebook cell raised; str() names the step, cell and line, then shows the notebook's traceback."""

    def __init__(self, step: str, notebook: str, cell: int, line: int, traceback_text: str, error: str = ""):
        super().__init__(step, notebook, cell, line, traceback_text, error)
        self.step, self.notebook, self.cell, self.line = step, notebook, cell, line
        self.traceback_text = traceback_text
        self.error = error or traceback_text.strip().rpartition(chr(10))[2]

    def __str__(self) -> str:
        where = f"{self.notebook} cell {self.cell}, line {self.line}"
        return f"step {self.step!r} failed in {where}: {self.error}" + chr(10) + self.traceback_text


class UnserializableValueError(StepError):
    """A variable that a later step reads cannot be written as an artifact."""

    def __init__(self, step: str, name: str, type_name: str, hint: str):
        super().__init__(step, name, type_name, hint)
        self.step, self.name, self.type_name, self.hint = step, name, type_name, hint

    def __str__(self) -> str:
        article = "an" if self.type_name[:1] in "aeiou" else "a"
        where = f"step {self.step!r}: " if self.step else ""
        what = f"variable {self.name!r} ({article} {self.type_name})"
        return f"{where}{what} cannot be passed to a later step: {self.hint}"


class MetricError(StepError):
    """A variable listed under metrics is missing or not a number."""
