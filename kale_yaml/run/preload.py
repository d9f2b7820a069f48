"""Which modules the warm parent imports before any step starts, and when it imports none of the notebook's.

Every module the notebook's code imports by absolute name (`import a.b`, `from a.b import c`, inside functions
too) is imported once in the parent, so a step forked from it finds them loaded. A module is imported with the
environment of the run, before any cell ran; a notebook that sets an environment variable in a cell, so that a
library reads it when it is imported (`os.environ["OMP_NUM_THREADS"] = "1"` or `load_dotenv()`, then
`import numpy`), or a
sidecar whose steps have different `env:`, would see another setting. In those cases, and with
`--no-preload`, the parent imports only kfp's executor and dill, and each step imports the notebook's
modules itself after its cells set the environment. Modules found beside the notebook are never preloaded:
they are the user's code, which a step must import as it is when the step runs.
"""

from __future__ import annotations

import ast
import importlib.util
import sys
from collections.abc import Iterable
from pathlib import Path

from kale_yaml.analysis.imports import code_imports

_ENVIRON_WRITERS = {"putenv", "update", "setdefault", "unsetenv", "pop", "clear"}
_ENVIRONMENT_LOADERS = {"load_dotenv"}  # python-dotenv: a .env file into os.environ


def modules_to_preload(
    sources: Iterable[str], step_envs: Iterable[dict[str, str]], local_folders: Iterable[Path], wanted: bool
) -> tuple[list[str], str | None]:
    """The modules to import in the warm parent, and a note saying why none are when none are."""
    if not wanted:
        return [], "the notebook's modules are imported by each step (--no-preload)"
    texts = list(sources)
    if any(_sets_environment(text) for text in texts):
        return [], "the notebook's modules are imported by each step: a cell sets environment variables"
    if len({tuple(sorted(env.items())) for env in step_envs}) > 1:
        return [], "the notebook's modules are imported by each step: steps have different env"
    folders = [folder.resolve() for folder in local_folders]
    names = sorted({name for text in texts for name in imported_names(text)})
    return [name for name in names if _installed(name.split(".")[0], folders)], None


def imported_names(source: str) -> set[str]:
    """Modules a cell's code imports by absolute name, with their packages (`a.b.c` gives a, a.b, a.b.c)."""
    found = {i.module for i in code_imports(source)}
    return {".".join(name.split(".")[: i + 1]) for name in found for i in range(name.count(".") + 1)}


def _sets_environment(source: str) -> bool:
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return False
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign | ast.AugAssign | ast.Delete):
            targets = node.targets if isinstance(node, ast.Assign | ast.Delete) else [node.target]
            if any(isinstance(t, ast.Subscript) and _is_environ(t.value) for t in targets):
                return True
            if isinstance(node, ast.AugAssign) and _is_environ(node.target):  # os.environ |= {...}
                return True
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            owner, method = node.func.value, node.func.attr
            if method in _ENVIRON_WRITERS and (_is_environ(owner) or method in ("putenv", "unsetenv")):
                return True
            if method in _ENVIRONMENT_LOADERS:
                return True
        elif isinstance(node, ast.Call) and getattr(node.func, "id", None) in _ENVIRONMENT_LOADERS:
            return True
    return False


def _is_environ(node: ast.expr) -> bool:
    return (isinstance(node, ast.Attribute) and node.attr == "environ") or (
        isinstance(node, ast.Name) and node.id == "environ"
    )


def _installed(top: str, local_folders: list[Path]) -> bool:
    """An importable module that is not the user's own code beside the notebook or in the working folder."""
    if top in sys.builtin_module_names:
        return True
    try:
        spec = importlib.util.find_spec(top)
    except (ImportError, ValueError):
        return False
    if spec is None:
        return False
    origin = spec.origin if spec.origin not in (None, "namespace") else next(
        iter(spec.submodule_search_locations or []), None
    )
    if origin is None:
        return False
    where = Path(origin).resolve()
    environments = {Path(sys.prefix).resolve(), Path(sys.base_prefix).resolve()}
    if any(where.is_relative_to(prefix) for prefix in environments):
        return True  # installed, even where the environment lies inside the project's folder
    return not any(where.is_relative_to(folder) for folder in local_folders)
