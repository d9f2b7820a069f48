"""Knowing, without kfp, that a compiled YAML on disk is what kfp would make of the generated code.

Compiling costs most of `build` (importing kfp, and pyyaml's pure-Python emitter writing the long strings).
When a build compiles into `.kale/`, it records a stamp: a file in `.kale/cache/builds/` named by a hash of
the generated code, the versions of kfp and kfp-kubernetes, and the bytes of the YAML it wrote. A later build
whose generated code is the same finds the stamp only if the YAML on disk is still byte for byte what was
written, so a hand-edited or damaged YAML is compiled again. The stamp is only a memo: deleting
`.kale/cache/` costs one compile.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.metadata
from pathlib import Path

from kale_yaml.load.input_file import UnreadableFile, read_input_file

_COMPILERS = ("kfp", "kfp-kubernetes")
_YAML_LIMIT = 256 * 1024 * 1024  # far above any compiled pipeline; a larger file is compiled again


def stamp_path(cache: Path, source: str, compiled: bytes) -> Path:
    digest = hashlib.sha256()
    for part in (source.encode("utf-8"), *(version.encode() for version in compiler_versions()), compiled):
        digest.update(hashlib.sha256(part).digest())
    return cache / "builds" / digest.hexdigest()


def compiled_on_disk(cache: Path, source: str, yaml_path: Path) -> str | None:
    """The YAML on disk when a stamp says kfp compiled `source` into exactly it; else None."""
    try:  # the safe reader: an output path may be anything (a FIFO must not block the build)
        compiled = read_input_file(yaml_path, _YAML_LIMIT, "compiled pipelines")
    except UnreadableFile:
        return None
    if not stamp_path(cache, source, compiled).is_file():
        return None
    try:
        return compiled.decode("utf-8")
    except UnicodeDecodeError:
        return None


def record(cache: Path, source: str, compiled: str) -> None:
    """Remember that kfp compiled `source` into `compiled` (best effort: a stamp is a memo)."""
    path = stamp_path(cache, source, compiled.encode("utf-8"))
    with contextlib.suppress(OSError):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch()


def compiler_versions() -> tuple[str, ...]:
    """The installed versions of kfp and kfp-kubernetes, on which what they compile depends ("" if absent)."""
    return tuple(_version(name) for name in _COMPILERS)


def _version(distribution: str) -> str:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return ""
