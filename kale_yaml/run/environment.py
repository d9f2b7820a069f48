"""Whether this environment has what the steps need, checked before a local run starts: a local run installs
nothing, so a missing distribution is named (with the steps that need it) instead of failing in a step."""

from __future__ import annotations

import importlib.metadata
import importlib.util

from kale_yaml.analysis.imports import code_imports
from kale_yaml.plan.dag import Pipeline
from kale_yaml.plan.installed import is_standard, requirement_name


def missing_packages(pipeline: Pipeline) -> list[str]:
    """Distributions the sidecar lists and modules the cells import that this environment lacks, each with
    the steps that need it: `xgboost (imported by step 'train')`. Local modules the steps carry, and imports
    the code guards with `except ImportError`, are not needed."""
    needed: dict[str, list[str]] = {}
    # modules a `%%writefile NAME.py` cell writes exist once the step that writes them has run
    written = {what.removeprefix("file ").removesuffix(".py") for s in pipeline.steps for _, what in s.sets}
    prelude = [i for number, source in pipeline.prelude_sources for i in code_imports(source, number)]
    for step in pipeline.steps:
        for requirement in step.config.packages:
            name = requirement_name(requirement)
            try:
                importlib.metadata.distribution(name)
            except importlib.metadata.PackageNotFoundError:
                needed.setdefault(f"{name} (listed in packages of", []).append(step.name)
        environment = pipeline.environments.steps.get(step.name)
        carried = set(environment.local_modules if environment else ())
        own = [i for number, source in step.sources for i in code_imports(source, number)]
        for found in [*prelude, *own]:
            if found.optional or is_standard(found.top) or found.top in carried or found.top in written:
                continue
            if importlib.util.find_spec(found.top) is None:
                steps = needed.setdefault(f"{found.top} (imported by", [])
                if step.name not in steps:
                    steps.append(step.name)
    return sorted(f"{what} {_steps(steps)})" for what, steps in needed.items())


def _steps(names: list[str]) -> str:
    if len(names) == 1:
        return f"step '{names[0]}'"
    return "steps " + ", ".join(f"'{name}'" for name in names)
