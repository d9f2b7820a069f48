"""Compiling generated DSL with kfp, and writing outputs so that a failed build changes nothing.

kfp is imported here only: `validate` never reaches this module, which keeps it fast.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import shutil
import stat
import sys
import tempfile
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kale_yaml import diagnostics as ky
from kale_yaml.errors import BuildError, Diagnostic
from kale_yaml.render import pyliteral


def compile_source(source: str, function: str, display_name: str) -> str:
    """Import the generated module from a temporary file and compile its pipeline; return the YAML text.

    kfp reads each component's source with `inspect.getsource`, so the module must live in a real file.
    """
    from kfp import compiler

    with tempfile.TemporaryDirectory(prefix="kale-yaml-") as tmp:
        module_path = Path(tmp) / "generated_pipeline.py"
        module_path.write_text(source, encoding="utf-8")
        module_name = f"_kale_yaml_generated_{abs(hash(source))}"
        spec = importlib.util.spec_from_file_location(module_name, module_path)
        if spec is None or spec.loader is None:  # pragma: no cover - a real file always has a spec
            raise RuntimeError("cannot load generated module")
        module = importlib.util.module_from_spec(spec)
        sys.modules[module_name] = module
        try:
            spec.loader.exec_module(module)
            pipeline_func = getattr(module, function)
            yaml_path = Path(tmp) / "pipeline.yaml"
            compiler.Compiler().compile(pipeline_func, str(yaml_path))
            with open(yaml_path, encoding="utf-8", newline="") as compiled:  # keep a \r in a value as it is
                return _safe_header(compiled.read(), pipeline_func)
        except Exception as exc:
            # Generated code that kfp rejects is a bug in kale-yaml unless the input made it so; either
            # way the user needs the message, not a traceback into kfp.
            raise BuildError.single(
                ky.COMPILE_FAILED.at(display_name, f"kfp could not compile the generated pipeline: {exc}")
            ) from exc
        finally:
            sys.modules.pop(module_name, None)


def _safe_header(text: str, pipeline_func: Any) -> str:
    """kfp starts the file with a comment listing the inputs and their defaults, pasted in unescaped: a
    default holding a line break would end the comment and break the YAML. Rewrite that comment so every
    line of it stays one comment line; the document itself is kfp's, unchanged."""
    from google.protobuf import json_format
    from kfp.compiler.pipeline_spec_builder import extract_comments_from_pipeline_spec

    spec = json_format.MessageToDict(pipeline_func.pipeline_spec)
    header = extract_comments_from_pipeline_spec(spec, pipeline_func.description)
    if not text.startswith(header):  # pragma: no cover - a kfp that writes another header: keep its file
        return text
    lines: list[str] = []
    for line in header.removesuffix("\n").split("\n"):
        if line.startswith("#") or not lines:
            lines.append(line)
        else:  # the rest of a value that held a line break: fold it back into its comment line
            lines[-1] += "\n" + line
    safe = "".join(pyliteral.comment(line) + "\n" for line in lines)
    return safe + text[len(header) :]


def _umask() -> int:
    current = os.umask(0)
    os.umask(current)
    return current


@dataclass(frozen=True)
class Kept:
    """An input no command may write (the notebook, the sidecar), and the error for an output that would
    replace it, given that output's path: located where the user can change it."""

    path: Path
    refusal: Callable[[Path], Diagnostic]


def refuse_kept(outputs: Iterable[Path], kept: Sequence[Kept]) -> None:
    """Raise when an output IS a kept input, however spelt: `./x`, through a symlink, or a hard link."""
    problems = [k.refusal(output) for output in outputs for k in kept if _same_file(output, k.path)]
    if problems:
        raise BuildError(problems)


def _same_file(a: Path, b: Path) -> bool:
    if os.path.realpath(a) == os.path.realpath(b):
        return True
    try:
        return os.path.samefile(a, b)  # same device and inode: a hard link too
    except OSError:  # one of them does not exist: nothing there to replace
        return False


def write_atomically(files: Mapping[Path, str], kept: Sequence[Kept], show: Callable[[Path], str]) -> None:
    """Write every file or none, and never a kept input.

    Every target is checked before anything is written; each file goes to a temporary file beside its
    target, then all are renamed into place; when a rename still fails, the targets already replaced get
    their earlier content back. `show` gives a path as messages show it.
    """
    refuse_kept(files, kept)
    blocked = [ky.OUTPUT_BLOCKED.at(show(target), why) for target in files if (why := _blocked(target, show))]
    if blocked:
        raise BuildError(blocked)
    created: list[Path] = []
    staged: list[tuple[Path, Path]] = []
    current = next(iter(files))  # the target being staged when something fails
    try:
        for current, text in files.items():
            created += _make_folders(current.parent)
            staged.append((_stage(current, text), current))
        _replace_all(staged)
    except OSError as exc:
        for tmp, _ in staged:
            tmp.unlink(missing_ok=True)
        for folder in reversed(created):
            _remove_empty(folder)
        failed = Path(exc.filename2) if exc.filename2 else current  # a rename's second name is its target
        raise BuildError.single(
            ky.WRITE_FAILED.at(show(failed), f"cannot write the pipeline: {exc.strerror or exc}")
        ) from None


def _blocked(target: Path, show: Callable[[Path], str]) -> str | None:
    """Why a file cannot be put at `target` (checked before anything is written), or None."""
    try:
        mode: int | None = os.lstat(target).st_mode
    except (FileNotFoundError, NotADirectoryError):  # absent, or a file where a folder should be
        mode = None
    except OSError as exc:
        return f"cannot write the pipeline here: {exc.strerror or exc}"
    if mode is not None and stat.S_ISDIR(mode):
        return "is a folder, where build writes a file: move it away or build with -o DIR"
    if mode is not None and not (stat.S_ISREG(mode) or stat.S_ISLNK(mode)):
        return "is not a regular file, where build writes one: move it away or build with -o DIR"
    folder = _existing_ancestor(target.parent)
    if not folder.is_dir():
        return f"cannot write the pipeline here: {show(folder)} is not a folder"
    if not os.access(folder, os.W_OK | os.X_OK):
        return f"cannot write the pipeline here: no permission to write in {show(folder)}"
    return None


def _existing_ancestor(folder: Path) -> Path:
    while not os.path.lexists(folder) and folder != folder.parent:
        folder = folder.parent
    return folder


def _make_folders(folder: Path) -> list[Path]:
    """Create `folder` and the missing folders above it; return those created, outermost first."""
    missing: list[Path] = []
    while not os.path.lexists(folder) and folder != folder.parent:
        missing.append(folder)
        folder = folder.parent
    for each in reversed(missing):
        each.mkdir()
    return list(reversed(missing))


def _remove_empty(folder: Path) -> None:
    with contextlib.suppress(OSError):  # not empty, or gone: either way not ours to remove
        folder.rmdir()


def _stage(target: Path, text: str) -> Path:
    """`text` in a new temporary file beside `target`, with the permissions an ordinary new file gets."""
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp_name, 0o666 & ~_umask())  # mkstemp makes files only the owner can read
    except OSError:
        os.unlink(tmp_name)
        raise
    return Path(tmp_name)


def _replace_all(staged: Sequence[tuple[Path, Path]]) -> None:
    """Rename each temporary file onto its target; if one rename fails, undo the ones before it."""
    replaced: list[tuple[Path, Path | None]] = []  # target, and its earlier content (None: it was absent)
    try:
        for tmp, target in staged:
            earlier = _keep_earlier(target)
            try:
                os.replace(tmp, target)
            except OSError:
                if earlier is not None:
                    earlier.unlink(missing_ok=True)
                raise
            replaced.append((target, earlier))
    except OSError:
        for target, earlier in reversed(replaced):
            if earlier is None:
                target.unlink(missing_ok=True)
            else:
                os.replace(earlier, target)
        raise
    for _, earlier in replaced:
        if earlier is not None:
            earlier.unlink(missing_ok=True)


def _keep_earlier(target: Path) -> Path | None:
    """A second name for the file at `target` (None if there is none), so it can be put back unchanged:
    a hard link keeps its bytes and times; a copy where the file system has no hard links."""
    if not os.path.lexists(target):
        return None
    fd, name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".old", dir=target.parent)
    os.close(fd)
    os.unlink(name)
    try:
        os.link(target, name, follow_symlinks=False)
    except OSError:
        shutil.copy2(target, name, follow_symlinks=False)
    return Path(name)
