"""The one way kale-yaml reads a file a user names (the sidecar, the notebook): a regular file only, up to a
size limit, never blocking.

A path can name things that are not files: a FIFO blocks `open` and `read` until a writer comes, /dev/zero
never ends, a symbolic link loop or a NUL in the name raises from deep inside `os`. Each becomes an
`UnreadableFile` with a reason in plain words; the caller says which file it is and where it was named.
"""

from __future__ import annotations

import errno
import math
import os
import stat
from pathlib import Path

MB = 1_000_000
# A sidecar is a few kilobytes; YAML parsing is slow enough that megabytes would feel like a hang.
SIDECAR_LIMIT = 1 * MB
# Notebooks carry their outputs (plots, tables) and reach tens of megabytes; JSON parsing takes ~2 ms per MB.
NOTEBOOK_LIMIT = 100 * MB

_CHUNK = 1 << 20
_KINDS = {
    stat.S_IFDIR: "a folder",
    stat.S_IFIFO: "a named pipe (FIFO)",
    stat.S_IFCHR: "a character device",
    stat.S_IFBLK: "a block device",
    stat.S_IFSOCK: "a socket",
}


class UnreadableFile(Exception):
    """Why a file cannot be read, a phrase to follow "cannot read ...: "; `missing` when it does not exist."""

    def __init__(self, reason: str, *, missing: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.missing = missing


def read_input_file(path: Path, limit: int, what: str) -> bytes:
    """The bytes of the regular file at `path` (symbolic links followed), at most `limit` of them; `what`
    names such files in the message about the limit ("notebooks")."""
    _check_name(path)
    try:
        # stat first so that a FIFO or a device is never opened (opening some devices has effects); the fstat
        # after the open catches a file swapped for one between the two calls.
        _check_kind(os.stat(path).st_mode)
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        raise UnreadableFile("no such file", missing=True) from None
    except OSError as exc:
        raise UnreadableFile(_os_reason(exc)) from None
    try:
        info = os.fstat(fd)
        _check_kind(info.st_mode)
        if info.st_size > limit:
            raise UnreadableFile(
                f"it is {size_text(info.st_size)}; kale-yaml reads {what} of at most {size_text(limit)}"
            )
        return _read_at_most(fd, limit)
    except OSError as exc:
        raise UnreadableFile(_os_reason(exc)) from None
    finally:
        os.close(fd)


def size_text(size: int) -> str:
    """`100 MB`, or `100.1 MB` for a size a little over it: rounded up, so never shown equal to a limit."""
    return f"{size // MB} MB" if size % MB == 0 else f"{math.ceil(size / (MB // 10)) / 10:.1f} MB"


def _check_name(path: Path) -> None:
    text = str(path)
    if "\0" in text:
        raise UnreadableFile("the path holds a NUL character, which no file name can")
    try:
        os.fsencode(text)
    except UnicodeError:
        raise UnreadableFile("the path holds characters this system cannot use in a file name") from None


def _check_kind(mode: int) -> None:
    if not stat.S_ISREG(mode):
        kind = _KINDS.get(stat.S_IFMT(mode), "not a file")
        raise UnreadableFile(f"it is {kind}, not a regular file")


def _read_at_most(fd: int, limit: int) -> bytes:
    chunks: list[bytes] = []
    total = 0
    while chunk := os.read(fd, min(_CHUNK, limit + 1 - total)):
        chunks.append(chunk)
        total += len(chunk)
        if total > limit:  # it grew after the fstat
            raise UnreadableFile(f"it grew past {size_text(limit)} while being read")
    return b"".join(chunks)


def _os_reason(exc: OSError) -> str:
    if exc.errno == errno.ELOOP:
        return "its symbolic links form a loop"
    return exc.strerror or str(exc)
