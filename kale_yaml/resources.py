"""Where the top-level `schemas/` and `templates/` folders are, in a checkout and in an installed wheel.

The wheel build copies both into the package (pyproject.toml, force-include); a checkout or an editable
install finds them beside the package.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent


@cache
def data_dir(name: str) -> Path:
    for candidate in (_PACKAGE / name, _PACKAGE.parent / name):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(f"kale-yaml is installed without its {name}/ folder")  # a packaging bug


def runtime_source() -> str:
    """The marshalling runtime that every generated step carries (see runtime/marshal.py)."""
    return (_PACKAGE / "runtime" / "marshal.py").read_text(encoding="utf-8")
