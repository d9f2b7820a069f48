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


def runtime_modules() -> dict[str, str]:
    """The step runtime's modules, kale_yaml/runtime/*.py, by name (`__init__` too): the source that
    render/runtime_code.py makes into the function every generated step carries."""
    folder = _PACKAGE / "runtime"
    return {path.stem: path.read_text(encoding="utf-8") for path in sorted(folder.glob("*.py"))}
