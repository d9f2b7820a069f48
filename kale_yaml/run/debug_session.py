"""`kale-yaml debug STEP`: a step's namespace as its cells would find it, for a console to run them by hand.

The prelude runs in a fresh `__main__` module (so classes it defines are found when values load, as in a
step), the step's parameters are set (defaults, or `--param`), and the values it receives are loaded from the
outputs of the steps before it: from a named run's folder (`--run RUN`), else from each step's last
successful run (the cache's `latest/`). It works for a step that failed: only what it receives must exist.
"""

from __future__ import annotations

import sys
import types
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kale_yaml import diagnostics as ky
from kale_yaml.errors import Diagnostic, RunError
from kale_yaml.load.paths import DEFAULT_OUTPUT_DIR, display_path
from kale_yaml.plan.dag import PlannedStep
from kale_yaml.plan.project import Project
from kale_yaml.render.view import PipelineView, RenderedStep, pipeline_view
from kale_yaml.resolve.parameters import parse_params
from kale_yaml.run.local_steps import task_key
from kale_yaml.run.step_cache import StepCache
from kale_yaml.runtime.events import summary
from kale_yaml.suggest import did_you_mean


@dataclass
class DebugSession:
    step: str
    namespace: dict[str, Any]
    cells: dict[int, str]  # the step's own cells by notebook number, in order
    loaded: dict[str, str]  # variable -> where its value came from
    parameters: dict[str, Any]
    notebook: str

    def run(self, number: int) -> None:
        """Run the step's cell `number` (the notebook's numbering) in the namespace."""
        if number not in self.cells:
            numbers = ", ".join(map(str, self.cells))
            raise LookupError(f"cell {number} is not one of step '{self.step}''s cells ({numbers})")
        exec(compile(self.cells[number], f"<{self.notebook} cell {number}>", "exec"), self.namespace)

    def banner(self) -> str:
        lines = [f"kale-yaml debug: step '{self.step}' of {self.notebook}; the prelude has run."]
        if self.parameters:
            lines.append("parameters: " + ", ".join(f"{k} = {v!r}" for k, v in self.parameters.items()))
        for variable, source in self.loaded.items():
            lines.append(f"loaded {variable} from {source}")
        numbers = ", ".join(map(str, self.cells))
        lines.append(f"the step's cells: {numbers}. run(N) runs cell N, run_all() runs them all in order,")
        lines.append("show(N) prints cell N. Ctrl-D leaves.")
        return "\n".join(lines)


def open_session(project: Project, step_name: str, params: dict[str, str], run: str | None) -> DebugSession:
    """The session for `step_name`; a located RunError when the step, or a value it receives, is not found."""
    sidecar = project.config.where.file
    pipeline = project.pipeline
    planned = pipeline.steps_by_name.get(step_name)
    if planned is None:
        known = ", ".join(s.name for s in pipeline.steps)
        hint = did_you_mean(step_name, pipeline.steps_by_name)
        message = f"debug {step_name}: no such step{hint}; steps: {known}"
        raise RunError([ky.UNKNOWN_RUN_STEP.at(sidecar, message)])
    view = pipeline_view(project)
    values = {p.name: p.default for p in pipeline.config.parameters}
    values.update(parse_params(pipeline.config.parameters, params))
    parameters = {name: values[name] for name in planned.parameters}
    sources = _value_sources(project, view, planned, run)
    notebook = project.config.notebook.path.name
    namespace = _namespace(project, planned, parameters, sources)
    loaded = {variable: display_path(path) for variable, path in sources.items()}
    return DebugSession(step_name, namespace, dict(planned.sources), loaded, parameters, notebook)


def _value_sources(
    project: Project, view: PipelineView, planned: PlannedStep, run: str | None
) -> dict[str, Path]:
    """variable -> the artifact holding the value the step receives."""
    by_name = {rendered.step.name: rendered for rendered in view.steps}
    kale_dir = project.sidecar.parent / DEFAULT_OUTPUT_DIR
    cache = StepCache(kale_dir / "cache", project.config.name)
    runs = kale_dir / "runs"
    problems: list[Diagnostic] = []
    found: dict[str, Path] = {}
    if run is not None and not (runs / run).is_dir():
        known = sorted(p.name for p in runs.iterdir()) if runs.is_dir() else []
        message = f"--run {run}: no such run in {display_path(runs)}{did_you_mean(run, known)}"
        raise RunError([ky.NO_EARLIER_RUN.at(project.config.where.file, message)])
    for transfer in planned.inputs:
        producer = by_name[transfer.producer]
        port = _output_port(producer, transfer.variable)
        path = _artifact(runs / run, producer, port) if run else _latest(cache, producer, port)
        if path is None:
            where = f"run {run}" if run else "any earlier run"
            problems.append(
                ky.NO_EARLIER_RUN.at(
                    project.config.where.file,
                    f"step '{planned.config.name}' needs {transfer.variable} from step"
                    f" '{transfer.producer}', which {where} did not produce; run the pipeline first",
                )
            )
        else:
            found[transfer.variable] = path
    if problems:
        raise RunError(problems)
    return found


def _output_port(producer: RenderedStep, variable: str) -> str:
    return next(port.name for port in producer.outputs if port.variable == variable)


def _artifact(run_dir: Path, producer: RenderedStep, port: str) -> Path | None:
    return next(iter(sorted((run_dir / "artifacts").glob(f"*/{task_key(producer.function)}/{port}"))), None)


def _latest(cache: StepCache, producer: RenderedStep, port: str) -> Path | None:
    entry = cache.last_success(task_key(producer.function))
    path = entry.folder / port if entry is not None else None
    return path if path is not None and path.exists() else None


def _namespace(
    project: Project, planned: PlannedStep, parameters: dict[str, Any], sources: dict[str, Path]
) -> dict[str, Any]:
    """The step's namespace as its cells find it in a run: parameters, the prelude, what earlier steps left in
    the process (imports, settings, files) run again, the values it receives, then the generator states."""
    from kale_yaml.runtime.generators import is_generator, restore_generator
    from kale_yaml.runtime.marshal import load_value

    notebook = project.config.notebook.path.name
    sidecar = project.config.where.file
    # The notebook's own modules (helpers.py beside it), which values of its classes need to load.
    sys.path.insert(0, str(project.sidecar.parent))
    module = types.ModuleType("__main__")
    namespace: dict[str, Any] = module.__dict__
    sys.modules["__main__"] = module  # classes the prelude defines are found there when values load
    namespace.update(parameters)
    for number, source in [*project.pipeline.prelude_sources, *planned.replay]:
        try:
            exec(compile(source, f"<{notebook} cell {number}>", "exec"), namespace)
        except Exception as error:
            message = f"debug: cell {number}, which runs before the step's cells, failed: {summary(error)}"
            raise RunError([ky.STEP_FAILED.at(notebook, message, cell=number)]) from None
    ordered = sorted(sources.items(), key=lambda item: is_generator(item[0]))  # generators last, as in a run
    for variable, path in ordered:
        try:
            if is_generator(variable):
                restore_generator(variable, str(path))
            else:
                namespace[variable] = load_value(str(path))
        except Exception as error:
            message = f"debug: cannot load {variable} from {display_path(path)}: {summary(error)}"
            raise RunError([ky.STEP_FAILED.at(sidecar, message)]) from None
    return namespace

