"""What each step needs where it runs: the distributions it installs (its own imports with `packages: auto`,
pinned to the versions installed here), the notebook folder's modules and files it carries, and the
findings of `validate` about imports that nothing provides and packages that nothing imports.

A step's code is the prelude, its own cells and the local modules they import (and those import). Modules
of Python itself are left out, and so are the distributions the step's image is declared to have
(`image_packages`). Explicit `packages:` entries win over what auto finds for the same distribution.
A step also carries the local modules of the steps it takes variables from: their values may be instances
of the modules' classes, and unpickling them imports the module.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType

from kale_yaml import diagnostics as ky
from kale_yaml.analysis.imports import Import, code_imports
from kale_yaml.diagnostics import Kind
from kale_yaml.errors import Collector, Diagnostic, PlanError
from kale_yaml.plan.dag import Pipeline, PlannedStep
from kale_yaml.plan.environment import Environments, PackageRow, StepEnvironment
from kale_yaml.plan.installed import (
    Installed,
    canonical,
    guessed_distribution,
    is_standard,
    requirement_name,
)
from kale_yaml.plan.shipping import SHIP_LIMIT, VOLUMES_HINT, LocalModule, Shipping, kib
from kale_yaml.resolve.where import Where
from kale_yaml.suggest import did_you_mean

RUNTIME_DISTRIBUTION = "dill"  # what the step runtime itself imports


def environments(pipeline: Pipeline, sidecar: Path, installed: Installed | None = None) -> Environments:
    """Each step's environment; PlanError with every unknown module and shipping problem at once."""
    return _Resolver(pipeline, sidecar, installed or Installed()).run()


@dataclass
class _Found:
    """A step's code: the imports of Python distributions, and the local modules it carries."""

    imports: list[Import] = field(default_factory=list)
    modules: dict[str, LocalModule] = field(default_factory=dict)


class _Resolver:
    def __init__(self, pipeline: Pipeline, sidecar: Path, installed: Installed) -> None:
        self.pipeline, self.installed = pipeline, installed
        self.notebook = pipeline.config.notebook.display_name
        self.errors = Collector()
        folder = pipeline.config.notebook.path.parent
        self.shipping = Shipping(folder, sidecar.parent, self.errors, self.locate)
        self.reported: set[tuple[str, str, int, int]] = set()
        self.unlisted: dict[tuple[str, int, int, str], tuple[Import, list[str], str]] = {}

    def locate(self, kind: Kind, found: Import, message: str) -> Diagnostic:
        if found.file:
            return kind.at(found.file, message, line=found.line)
        return kind.at(self.notebook, message, cell=found.cell, line=found.line)

    def run(self) -> Environments:
        prelude = [i for n, source in self.pipeline.prelude_sources for i in code_imports(source, n)]
        found: dict[str, _Found] = {}
        for step in self.pipeline.steps:  # in topological order: producers first
            own = [i for n, source in step.sources for i in code_imports(source, n)]
            found[step.name] = self.code(prelude + own)
            for transfer in step.inputs:
                for name, module in found[transfer.producer].modules.items():
                    found[step.name].modules.setdefault(name, module)
        result = {step.name: self.step(step, found[step.name]) for step in self.pipeline.steps}
        self.errors.raise_if_any(PlanError)
        for found_import, steps, line in self.unlisted.values():
            self.errors.add(self.unlisted_warning(found_import, steps, line))
        ordered = {step.name: result[step.name] for step in self.pipeline.config.steps}
        return Environments(MappingProxyType(ordered), (*self.errors.warnings, *self.unused(ordered)))

    def code(self, imports: list[Import]) -> _Found:
        """Follow the local modules the imports reach; the rest are imports of distributions."""
        found = _Found()
        queue = list(imports)
        while queue:
            item = queue.pop(0)
            if is_standard(item.top) or item.top in found.modules:
                continue
            if not self.shipping.is_local(item.top):
                found.imports.append(item)
                continue
            module = self.shipping.module(item)
            if module is not None:
                found.modules[item.top] = module
                queue += module.imports
        return found

    def step(self, step: PlannedStep, found: _Found) -> StepEnvironment:
        config = step.config
        auto = config.needs.auto
        image = {canonical(name) for name in config.needs.image_packages}
        explicit = {requirement_name(text): text for text in config.packages}
        rows: list[PackageRow] = []
        pinned: dict[str, str] = {}  # canonical name -> requirement auto adds
        for item in _first_of_each(found.imports):
            distribution = self.installed.distribution(item)
            name = canonical(distribution) if distribution else self.covering(item, explicit, image)
            if name == RUNTIME_DISTRIBUTION and name not in explicit:
                rows.append(self.row(step, item, name, "runtime"))
            elif name in explicit:
                rows.append(self.row(step, item, explicit[name], "sidecar"))
            elif name in image:
                rows.append(self.row(step, item, name, "image"))
            elif distribution is None:
                self.unprovided(step, item, auto, bool(config.packages))
                if not item.optional:
                    rows.append(PackageRow(step.name, item.top, guessed_distribution(item), "", "missing"))
            elif auto:
                version = self.installed.version(distribution) or ""
                pinned.setdefault(name, f"{distribution}=={version}")
                rows.append(PackageRow(step.name, item.top, distribution, version, "auto"))
            else:
                if config.packages and not item.optional:
                    self.note_unlisted(step, item, distribution)
                rows.append(PackageRow(step.name, item.top, distribution, "", "missing"))
        imported = {requirement_name(r.distribution) for r in rows if r.module and r.source == "sidecar"}
        for name, text in explicit.items():
            if name not in imported:
                version = self.installed.version(name) or ""
                rows.append(PackageRow(step.name, "", text, version, "sidecar"))
        runtime: list[str] = []
        if RUNTIME_DISTRIBUTION not in explicit and RUNTIME_DISTRIBUTION not in image:
            version = self.installed.version(RUNTIME_DISTRIBUTION) or ""
            runtime = [f"{RUNTIME_DISTRIBUTION}=={version}" if auto and version else RUNTIME_DISTRIBUTION]
            if not any(r.source == "runtime" for r in rows):
                rows.append(PackageRow(step.name, "", RUNTIME_DISTRIBUTION, version, "runtime"))
        modules = [file for module in found.modules.values() for file in module.files]
        for module in found.modules.values():
            size = sum(file.size for file in module.files)
            rows.append(PackageRow(step.name, module.name, module.shown, f"{size} bytes", "local"))
        files = self.shipping.files(config.needs.files)
        rows += [PackageRow(step.name, "", file.path, f"{file.size} bytes", "file") for file in files]
        environment = StepEnvironment(
            install=tuple(dict.fromkeys([*runtime, *config.packages, *pinned.values()])),
            rows=tuple(rows),
            shipped=(*modules, *files),
            workdir=bool(config.needs.files),
            local_modules=tuple(found.modules),
        )
        if environment.shipped_size > SHIP_LIMIT:
            self.too_large(step, environment)
        return environment

    def covering(self, item: Import, explicit: Mapping[str, str], image: set[str]) -> str:
        """For a module not installed here: the listed or image distribution named like it, else ''."""
        for name in (canonical(item.top), canonical(guessed_distribution(item))):
            if name in explicit or name in image:
                return name
        return ""

    def row(self, step: PlannedStep, item: Import, distribution: str, source: str) -> PackageRow:
        name = requirement_name(distribution)
        return PackageRow(step.name, item.top, distribution, self.installed.version(name) or "", source)

    def unprovided(self, step: PlannedStep, item: Import, auto: bool, listed: bool) -> None:
        """A module no distribution installed here provides: an error for auto, else a warning."""
        if item.optional:
            return
        if not auto:
            if listed:
                self.note_unlisted(step, item, None)
            return
        key = (item.top, item.file, item.cell, item.line)
        if key in self.reported:
            return
        self.reported.add(key)
        guess = guessed_distribution(item)
        hint = did_you_mean(item.top, self.installed.modules())
        message = (
            f"'{item.module}' is imported here, but no distribution installed where kale-yaml runs provides"
            f" it, so packages: auto cannot pin it (step '{step.name}'): install it here"
            f' (pip install {guess}), list it in packages (e.g. "{guess}"), or name it in image_packages when'
            f" the image has it{hint}"
        )
        self.errors.add(self.locate(ky.UNKNOWN_MODULE, item, message))

    def note_unlisted(self, step: PlannedStep, item: Import, distribution: str | None) -> None:
        version = self.installed.version(distribution) if distribution else None
        line = f"{distribution}=={version}" if distribution and version else guessed_distribution(item)
        key = (item.file, item.cell, item.line, item.top)
        self.unlisted.setdefault(key, (item, [], line))[1].append(step.name)

    def unlisted_warning(self, item: Import, steps: list[str], line: str) -> Diagnostic:
        who = f"step '{steps[0]}'" if len(steps) == 1 else "steps " + ", ".join(f"'{s}'" for s in steps)
        message = (
            f"'{item.module}' is imported here, but neither the packages nor the image_packages of {who}"
            f' provide it: add "{line}" to packages (or use packages: auto), or it fails on the cluster with'
            " ModuleNotFoundError"
        )
        return self.locate(ky.UNLISTED_IMPORT, item, message)

    def too_large(self, step: PlannedStep, environment: StepEnvironment) -> None:
        largest = sorted(environment.shipped, key=lambda item: -item.size)[:3]
        named = ", ".join(f"{item.path} ({kib(item.size)})" for item in largest)
        message = (
            f"step '{step.name}' carries {kib(environment.shipped_size)} of local modules and files"
            f" ({named}); a step carries at most {kib(SHIP_LIMIT)} in its code: {VOLUMES_HINT}"
        )
        where = step.config.where.child("files") if step.config.needs.files else step.config.where
        self.errors.add(where.at(ky.SHIPPED_TOO_LARGE, message))

    def unused(self, result: Mapping[str, StepEnvironment]) -> list[Diagnostic]:
        """A note for each listed package whose modules no step that lists it imports."""
        users: dict[str, tuple[str, Where, list[bool]]] = {}  # by key path: `pipeline.packages[1]`
        for step in self.pipeline.config.steps:
            rows = result[step.name].rows
            imported = {requirement_name(r.distribution) for r in rows if r.module and r.source == "sidecar"}
            for text, where in zip(step.packages, step.needs.packages_at, strict=True):
                if requirement_name(text) == RUNTIME_DISTRIBUTION:
                    continue  # the step runtime imports it
                if not self.installed.top_modules(requirement_name(text)):
                    continue  # not installed here: which modules it provides is unknown
                entry = users.setdefault(where.key, (text, where, []))
                entry[2].append(requirement_name(text) in imported)
        return [
            where.at(
                ky.UNUSED_PACKAGE,
                f"'{text}' is listed, but no code of the steps that install it imports it (fine when the code"
                " needs it indirectly, like a pandas engine)",
            )
            for text, where, used in users.values()
            if not any(used)
        ]


def _first_of_each(imports: Iterable[Import]) -> list[Import]:
    """One import per top-level module: the first, or the first that is not optional."""
    chosen: dict[str, Import] = {}
    for item in imports:
        if item.top not in chosen or (chosen[item.top].optional and not item.optional):
            chosen[item.top] = item
    return list(chosen.values())
