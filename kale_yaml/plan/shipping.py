"""The notebook folder's own modules and the `files:` a step carries in its code (runtime/shipped.py puts
them back on disk where the step runs).

A module is local when the notebook's folder holds `NAME.py` or a package folder `NAME/` with Python files,
as Jupyter finds it first on sys.path. Every path stays inside the sidecar's folder (symbolic links
resolved), every file is read by the one safe reader, and a step carries at most SHIP_LIMIT bytes of them:
its whole program must fit one argument of its container's command (render/limits.py).
"""

from __future__ import annotations

import base64
import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path, PurePosixPath

from kale_yaml import diagnostics as ky
from kale_yaml.analysis.imports import Import, code_imports
from kale_yaml.diagnostics import Kind
from kale_yaml.errors import Collector, Diagnostic
from kale_yaml.load.input_file import UnreadableFile, read_input_file
from kale_yaml.load.paths import display_path
from kale_yaml.resolve.model import Setting

SHIP_LIMIT = 64 * 1024  # bytes a step's local modules and files take in its code (text, or base64)
MAX_PACKAGE_FILES = 256
VOLUMES_HINT = "put large files on a volume (volumes:) and read them from its mount path"
Locate = Callable[[Kind, Import, str], Diagnostic]


@dataclass(frozen=True)
class Shipped:
    """One file a step carries: where it lands, relative to the step's folder, and its bytes."""

    path: str  # with "/"
    content: bytes
    module: bool  # part of a local module (else a `files:` entry)

    @cached_property
    def encoding(self) -> str:
        """`text` for UTF-8 text (readable in the generated code), else `base64`."""
        try:
            text = self.content.decode("utf-8")
        except UnicodeDecodeError:
            return "base64"
        return "text" if "\0" not in text else "base64"

    @property
    def text(self) -> str:
        """The content as the generated code writes it."""
        if self.encoding == "text":
            return self.content.decode("utf-8")
        return base64.b64encode(self.content).decode("ascii")

    @property
    def size(self) -> int:
        return len(self.text.encode("utf-8"))


@dataclass(frozen=True)
class LocalModule:
    name: str  # the top-level import name
    shown: str  # as messages name it: helpers.py, or helpers/
    files: tuple[Shipped, ...]
    imports: tuple[Import, ...]  # what its code imports, located in its files


class Shipping:
    """Finds and reads local modules (once each) and `files:` entries; problems go to `errors`."""

    def __init__(self, notebook_folder: Path, root: Path, errors: Collector, locate: Locate) -> None:
        self.folder, self.root = notebook_folder, root.resolve()
        self.errors, self.locate = errors, locate
        self._modules: dict[str, LocalModule | None] = {}
        self._local: dict[str, bool] = {}

    def is_local(self, top: str) -> bool:
        if top not in self._local:
            single = self.folder / f"{top}.py"
            self._local[top] = single.is_file() or _package_files(self.folder / top) != []
        return self._local[top]

    def module(self, found: Import) -> LocalModule | None:
        """The local module `found` imports, read; None when it is not local (or could not be read)."""
        if found.top not in self._modules:
            self._modules[found.top] = self._read_module(found) if self.is_local(found.top) else None
        return self._modules[found.top]

    def files(self, entries: Sequence[Setting[str]]) -> list[Shipped]:
        shipped: list[Shipped] = []
        for entry in entries:
            problem, relative = _landing(entry.value)
            if relative is None:
                self.errors.add(entry.where.at(ky.FILE_OUTSIDE_FOLDER, problem))
                continue
            content = self._read(self.folder / relative, entry.where.at)
            if content is not None:
                shipped.append(Shipped(relative, content, module=False))
        return shipped

    def _read_module(self, found: Import) -> LocalModule | None:
        single = self.folder / f"{found.top}.py"
        paths = [single] if single.is_file() else _package_files(self.folder / found.top)
        shown = single.name if single.is_file() else f"{found.top}/"
        if len(paths) > MAX_PACKAGE_FILES:
            message = (
                f"the local package {shown} holds {len(paths)} Python files; a step carries at most"
                f" {MAX_PACKAGE_FILES}: install it as a distribution (pip install -e) and list it in packages"
            )
            self.errors.add(self.locate(ky.SHIPPED_TOO_LARGE, found, message))
            return None
        files: list[Shipped] = []
        imports: list[Import] = []
        for path in paths:
            content = self._read(path, lambda kind, message: self.locate(kind, found, message))
            if content is None:
                return None
            relative = path.relative_to(self.folder).as_posix()
            files.append(Shipped(relative, content, module=True))
            source = content.decode("utf-8", errors="replace")
            imports += code_imports(source, file=display_path(path))
        return LocalModule(found.top, shown, tuple(files), tuple(imports))

    def _read(self, path: Path, problem: Callable[[Kind, str], Diagnostic]) -> bytes | None:
        # As the sidecar and the cells name it: relative to the notebook's folder.
        shown = path.relative_to(self.folder).as_posix() if path.is_relative_to(self.folder) else str(path)
        try:
            inside = path.resolve().is_relative_to(self.root)
        except (OSError, RuntimeError, ValueError):
            inside = False
        if not inside:
            message = f"{shown} leads outside the sidecar's folder; kale-yaml ships only files in it"
            self.errors.add(problem(ky.FILE_OUTSIDE_FOLDER, message))
            return None
        try:
            size = path.stat().st_size
        except (OSError, ValueError):
            size = 0  # the reader says what is wrong with it
        if size > SHIP_LIMIT:
            message = (
                f"{shown} is {kib(size)}; a step carries at most {kib(SHIP_LIMIT)} of local modules and files"
                f" in its code: {VOLUMES_HINT}"
            )
            self.errors.add(problem(ky.SHIPPED_TOO_LARGE, message))
            return None
        try:
            return read_input_file(path, SHIP_LIMIT, "files to ship with a step")
        except UnreadableFile as exc:
            self.errors.add(problem(ky.UNREADABLE_SHIPPED, f"cannot ship {shown}: {exc.reason}"))
            return None


def kib(size: int) -> str:
    """Rounded up, so that a size just over a limit never reads as the limit."""
    return f"{math.ceil(size * 10 / 1024) / 10:.1f} KiB"


def _landing(written: str) -> tuple[str, str | None]:
    """(problem, None) or ("", the relative path where the file lands, with /)."""
    path = PurePosixPath(written.replace("\\", "/"))
    if path.is_absolute() or (len(written) > 1 and written[1] == ":"):
        return f"'{written}' is an absolute path; write it relative to the notebook's folder", None
    if ".." in path.parts:
        return f"'{written}' goes up with '..'; a shipped file lands below the step's working folder", None
    if not path.parts or path.parts == (".",):
        return f"'{written}' names no file", None
    return "", path.as_posix()


def _package_files(folder: Path) -> list[Path]:
    """The Python files of a package folder (caches and hidden folders left out); [] if it is none."""
    if not folder.is_dir():
        return []
    found: list[Path] = []
    for parent, folders, names in os.walk(folder):
        folders[:] = sorted(f for f in folders if not f.startswith(".") and f != "__pycache__")
        found += [Path(parent) / name for name in sorted(names) if name.endswith(".py")]
        if len(found) > MAX_PACKAGE_FILES:
            break
    return found
