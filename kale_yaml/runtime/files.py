"""Files as the runtime reads and writes them, through functions taken when the runtime loads.

Cells share the process's modules with the runtime: a cell may rebind builtins.open or os.replace, or patch
tempfile or shutil, and the notebook would still have kept its variables, so a step must still save them.
The functions below are bound before any cell runs; those that touch files are C functions (io.open,
os.mkdir, os.replace, ...), which look nothing up when called. The Python helpers that would (os.makedirs,
os.path, tempfile, shutil) are not used: the few lines of them the runtime needs are here.
"""

from __future__ import annotations

import contextlib
import importlib
import io
import os
import stat

open_file = io.open
import_library = importlib.import_module
random_bytes = os.urandom
list_folder, remove_file, remove_folder, replace_file = os.listdir, os.remove, os.rmdir, os.replace
_mkdir, _stat, _scandir, _is_folder_mode = os.mkdir, os.stat, os.scandir, stat.S_ISDIR
_SEP, _suppress = os.sep, contextlib.suppress


def join_path(folder: str, name: str) -> str:
    """os.path.join(folder, name) for a relative name."""
    return folder + name if not folder or folder.endswith(_SEP) else folder + _SEP + name


def file_name(path: str) -> str:
    """The last part of path, as os.path.basename gives it."""
    return path.rpartition(_SEP)[2]


def parent_folder(path: str) -> str:
    """The folder that holds path, as os.path.dirname gives it ("" for a bare name)."""
    head = path[: path.rfind(_SEP) + 1]
    return head if head == _SEP * len(head) else head.rstrip(_SEP)


def is_folder(path: str) -> bool:
    try:
        return _is_folder_mode(_stat(path).st_mode)
    except (OSError, ValueError):
        return False


def make_folders(path: str) -> None:
    """Make the folder path and those above it that are missing (os.makedirs with exist_ok=True)."""
    if not path or is_folder(path):
        return
    parent = parent_folder(path)
    if parent != path:
        make_folders(parent)
    try:
        _mkdir(path)
    except FileExistsError:
        if not is_folder(path):
            raise


def scratch_folder(folder: str, prefix: str) -> str:
    """A new empty folder in folder, only for this process (tempfile.mkdtemp)."""
    while True:
        path = join_path(folder, prefix + random_bytes(6).hex())
        try:
            _mkdir(path, 0o700)
            return path
        except FileExistsError:
            continue


def remove_tree(path: str) -> None:
    """Remove the folder path and everything in it, as far as possible (shutil.rmtree, errors ignored)."""
    try:
        with _scandir(path) as found:
            entries = list(found)
    except OSError:
        entries = []
    for entry in entries:
        with _suppress(OSError):
            if entry.is_dir(follow_symlinks=False):
                remove_tree(entry.path)
            else:
                remove_file(entry.path)
    with _suppress(OSError):
        remove_folder(path)
