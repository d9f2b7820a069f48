"""The notebook folder's own modules and files that a step carries in its code, put back on disk for it.

They are written into a private folder made for the step, which goes first on sys.path while the step runs
(so `import helpers` finds the notebook's helpers.py before anything installed, as in Jupyter). A step that
ships `files:` also runs its cells with that folder as the working folder, so the cells open them by the
relative paths they use in the notebook. The folder is removed when the step ends.
"""

from __future__ import annotations

import base64
import contextlib
import os
import sys
import tempfile
from collections.abc import Iterator, Sequence

from kale_yaml.runtime.files import make_folders, open_file, parent_folder, remove_tree, scratch_folder

_decode_base64, _cwd, _chdir = base64.b64decode, os.getcwd, os.chdir


@contextlib.contextmanager
def shipped_folder(shipped: Sequence[tuple[str, str, str]], workdir: bool) -> Iterator[None]:
    """Write `shipped` ((relative path, "text" or "base64", content), ...) into a new folder first on
    sys.path, and into the working folder too when `workdir`; undo both and remove it afterwards."""
    if not shipped:
        yield
        return
    folder = scratch_folder(tempfile.gettempdir(), "kale-yaml-step-")
    previous = _cwd() if workdir else ""
    try:
        for relative, encoding, content in shipped:
            data = _decode_base64(content) if encoding == "base64" else content.encode("utf-8")
            path = folder + os.sep + relative.replace("/", os.sep)
            make_folders(parent_folder(path))
            with open_file(path, "wb") as handle:
                handle.write(data)
        sys.path.insert(0, folder)
        if workdir:
            _chdir(folder)
        yield
    finally:
        if workdir:
            with contextlib.suppress(OSError):
                _chdir(previous)
        with contextlib.suppress(ValueError):
            sys.path.remove(folder)
        remove_tree(folder)
