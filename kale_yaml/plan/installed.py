"""What is installed where kale-yaml runs: which distribution provides an imported module, at which version.

`importlib.metadata.packages_distributions()` maps top-level modules to distributions. A namespace package
(`google`) is shared by several; the distribution whose files hold the imported submodule
(`google/cloud/storage/`) is the one meant. Read once per `Installed`, only when a step needs it.
"""

from __future__ import annotations

import importlib.metadata
import re
import sys
from collections.abc import Mapping
from functools import cached_property

from kale_yaml.analysis.imports import Import

# Import names that differ from the name pip installs them by, for a module that is not installed here.
KNOWN_DISTRIBUTIONS = {
    "PIL": "pillow",
    "bs4": "beautifulsoup4",
    "cv2": "opencv-python",
    "dateutil": "python-dateutil",
    "google.cloud.storage": "google-cloud-storage",
    "sklearn": "scikit-learn",
    "skimage": "scikit-image",
    "yaml": "pyyaml",
}
_REQUIREMENT_NAME = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)")


def canonical(name: str) -> str:
    """A distribution name as pip compares them (PEP 503): `Scikit_Learn` -> `scikit-learn`."""
    return re.sub(r"[-_.]+", "-", name).lower()


def requirement_name(requirement: str) -> str:
    """The distribution a pip requirement names, canonical: `scikit-learn>=1.4` -> `scikit-learn`."""
    found = _REQUIREMENT_NAME.match(requirement)
    return canonical(found.group(1)) if found else canonical(requirement.strip())


def is_standard(top: str) -> bool:
    """A module of Python itself, which no step installs."""
    return top in sys.stdlib_module_names or top == "__future__"


def guessed_distribution(found: Import) -> str:
    """What to pip install for a module that is not installed here: its usual distribution, or its name."""
    for dotted in found.dotted():
        if dotted in KNOWN_DISTRIBUTIONS:
            return KNOWN_DISTRIBUTIONS[dotted]
    return found.top


class Installed:
    """The distributions of the Python running kale-yaml."""

    @cached_property
    def _by_module(self) -> Mapping[str, list[str]]:
        return importlib.metadata.packages_distributions()

    def modules(self) -> list[str]:
        """Every importable top-level module a distribution provides (for "did you mean")."""
        return list(self._by_module)

    def distribution(self, found: Import) -> str | None:
        """The distribution (as its metadata names it) that provides the module `found` imports, or None."""
        names = list(dict.fromkeys(self._by_module.get(found.top, [])))
        if len(names) <= 1:
            return names[0] if names else None
        for dotted in found.dotted():  # most specific first
            folder, file = dotted.replace(".", "/") + "/", dotted.replace(".", "/") + ".py"
            holders = [n for n in names if self._holds(n, folder, file)]
            if holders:
                return holders[0]
        return names[0]

    def version(self, distribution: str) -> str | None:
        try:
            return importlib.metadata.version(distribution)
        except importlib.metadata.PackageNotFoundError:
            return None

    def top_modules(self, distribution: str) -> set[str]:
        """The top-level modules `distribution` provides here; empty when it is not installed."""
        wanted = canonical(distribution)
        return {m for m, names in self._by_module.items() if any(canonical(n) == wanted for n in names)}

    def _holds(self, distribution: str, folder: str, file: str) -> bool:
        try:
            files = importlib.metadata.files(distribution) or []
        except importlib.metadata.PackageNotFoundError:
            return False
        return any(str(path).startswith(folder) or str(path) == file for path in files)
