"""What each step needs where it runs, as plan/packages.py works it out: what `kale-yaml packages` shows,
what the cluster variant installs, what every variant carries."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from kale_yaml.errors import Diagnostic
from kale_yaml.plan.shipping import Shipped


@dataclass(frozen=True)
class PackageRow:
    """One line of `kale-yaml packages`."""

    step: str
    module: str  # the top-level module imported, or "" for a listed package no code imports
    distribution: str
    version: str  # installed here ("" when not), or the shipped file's size for a local module
    source: str  # auto | sidecar | image | runtime | local | missing


@dataclass(frozen=True)
class StepEnvironment:
    install: tuple[str, ...]  # the step's packages_to_install, in order
    rows: tuple[PackageRow, ...]
    shipped: tuple[Shipped, ...]  # local modules, then `files:`
    workdir: bool  # the step ships `files:`: its cells run in the folder that holds them
    local_modules: tuple[str, ...]  # top-level names of the modules it ships

    @property
    def shipped_size(self) -> int:
        return sum(item.size for item in self.shipped)


@dataclass(frozen=True)
class Environments:
    steps: Mapping[str, StepEnvironment] = field(default_factory=lambda: MappingProxyType({}))
    findings: tuple[Diagnostic, ...] = ()  # warnings and notes
