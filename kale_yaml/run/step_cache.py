"""The local run's cache, `.kale/cache/`: a task's outputs by what determines them.

The key of a task is a hash of its component (the generated code, image, env), its parameter values and the
content of its input artifacts (not their paths), so a re-run after an edit runs the edited step, and a step
downstream of it again only if the values it receives really changed. An entry is written only for a task that
finished and produced every output, by a rename, so a reader never sees half an entry; `.kale/cache/` may be
deleted at any time. `latest/` remembers each task's last successful entry, which `run --from` and `--only`
take upstream values from, and `debug` loads.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ENTRY_FORMAT = 1
_CHUNK = 1 << 20


@dataclass(frozen=True)
class Output:
    """One output of a task as the cache keeps it: an artifact's file (or folder) and metadata, or a value."""

    schema_title: str | None  # None: a parameter
    metadata: dict[str, Any]
    value: Any = None  # a parameter's value


@dataclass(frozen=True)
class Entry:
    folder: Path  # holds one file or folder per artifact output, by port name
    outputs: dict[str, Output]


def entry_key(component: str, parameters: dict[str, Any], artifacts: dict[str, tuple[str, str]]) -> str:
    """The key: the component spec and executor (JSON text), parameter values, input artifacts by content
    (port -> (schema title, content hash))."""
    text = json.dumps(
        {"format": ENTRY_FORMAT, "component": component, "parameters": parameters, "artifacts": artifacts},
        sort_keys=True,
        default=repr,
    )
    return hashlib.sha256(text.encode()).hexdigest()


def content_hash(path: Path, metadata: dict[str, Any]) -> str:
    """A file's or folder's content (names and bytes, not times) and the artifact's metadata."""
    digest = hashlib.sha256(json.dumps(metadata, sort_keys=True, default=repr).encode())
    if path.is_file():
        _add_file(digest, path)
    elif path.is_dir():
        for item in sorted(p for p in path.rglob("*") if p.is_file()):
            digest.update(str(item.relative_to(path)).encode() + b"\0")
            _add_file(digest, item)
    else:
        digest.update(b"\0missing")
    return digest.hexdigest()


def _add_file(digest: Any, path: Path) -> None:
    with open(path, "rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    digest.update(b"\0")


class StepCache:
    def __init__(self, root: Path, pipeline: str) -> None:
        self.root = root
        self.entries = root / "entries"
        self.latest = root / "latest" / _safe(pipeline)

    def find(self, key: str) -> Entry | None:
        return _read_entry(self.entries / key)

    def last_success(self, task: str) -> Entry | None:
        """The entry of the task's last successful run, whatever its key."""
        try:
            key = (self.latest / f"{_safe(task)}.key").read_text(encoding="utf-8").strip()
        except OSError:
            return None
        return self.find(key)

    def store(self, key: str, task: str, produced: dict[str, tuple[Path | None, Output]]) -> None:
        """Keep a finished task's outputs (port -> (its file or folder, or None for a parameter))."""
        self.entries.mkdir(parents=True, exist_ok=True)
        target = self.entries / key
        if not target.exists():
            staging = Path(tempfile.mkdtemp(prefix=".new-", dir=self.entries))
            try:
                for port, (path, _) in produced.items():
                    if path is not None:
                        _copy(path, staging / port)
                described = {port: _describe(output) for port, (_, output) in produced.items()}
                (staging / "outputs.json").write_text(
                    json.dumps({"format": ENTRY_FORMAT, "outputs": described}, default=repr), encoding="utf-8"
                )
                os.rename(staging, target)
            except OSError:
                shutil.rmtree(staging, ignore_errors=True)
                if not target.exists():
                    raise
        self.remember(task, key)

    def remember(self, task: str, key: str) -> None:
        """The task's last successful run is the entry `key` (written or taken from the cache)."""
        self.latest.mkdir(parents=True, exist_ok=True)
        marker = self.latest / f"{_safe(task)}.key"
        handle, staging = tempfile.mkstemp(prefix=".key-", dir=self.latest)  # two runs may finish it at once
        try:
            with os.fdopen(handle, "w", encoding="utf-8") as out:
                out.write(key)
            os.replace(staging, marker)
        except OSError:
            with contextlib.suppress(OSError):
                os.unlink(staging)
            raise


def place(entry: Entry, port: str, target: Path) -> None:
    """Put a cached artifact where this run's task would have written it (hard links where possible)."""
    source = entry.folder / port
    if source.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        _copy(source, target, link=True)


def _describe(output: Output) -> dict[str, Any]:
    return {"schema_title": output.schema_title, "metadata": output.metadata, "value": output.value}


def _read_entry(folder: Path) -> Entry | None:
    try:
        document = json.loads((folder / "outputs.json").read_text(encoding="utf-8"))
        if document.get("format") != ENTRY_FORMAT:
            return None
        outputs = {
            str(port): Output(item["schema_title"], dict(item["metadata"]), item.get("value"))
            for port, item in document["outputs"].items()
        }
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None  # absent, or damaged by hand: not an entry
    for port, output in outputs.items():
        if output.schema_title is not None and not (folder / port).exists():
            return None
    return Entry(folder, outputs)


def _copy(source: Path, target: Path, *, link: bool = False) -> None:
    def copy_file(src: str, dst: str) -> None:
        if link:
            with contextlib.suppress(OSError):
                os.link(src, dst)
                return
        shutil.copy2(src, dst)

    if source.is_dir():
        shutil.copytree(source, target, copy_function=copy_file, symlinks=True)
    else:
        copy_file(str(source), str(target))


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name) or "_"
