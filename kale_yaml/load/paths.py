"""Where things are: the sidecar a command names, the output folder, and paths as messages show them."""

from __future__ import annotations

import os
from pathlib import Path

from kale_yaml import diagnostics as ky
from kale_yaml.errors import DocumentError

SIDECAR_NAME = "pipeline.kale.yaml"
DEFAULT_OUTPUT_DIR = ".kale"


def display_path(path: Path) -> str:
    """A path as messages show it: relative to the working folder when it is inside it."""
    try:
        relative = os.path.relpath(path)
    except ValueError:  # another drive on Windows
        return str(path)
    return str(path) if relative.startswith("..") else relative


def find_sidecar(path: Path | str | None) -> Path:
    """`PATH` of the commands: a sidecar file, or a folder holding `pipeline.kale.yaml`."""
    candidate = Path(path) if path is not None else Path.cwd()
    if candidate.is_dir():
        candidate = candidate / SIDECAR_NAME
    # Anything there gets read, and reading says what is wrong with it (a FIFO, a symbolic link loop).
    if not os.path.lexists(candidate):
        raise DocumentError.single(ky.NO_SIDECAR.at(display_path(candidate), "no such sidecar file"))
    return candidate
