"""A step: parameters and inputs in, cells run as in a notebook, metrics and outputs out."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from kale_yaml.runtime.cells import main_module, run_cell
from kale_yaml.runtime.errors import MetricError, StepError
from kale_yaml.runtime.events import Progress, reporting
from kale_yaml.runtime.files import make_folders, open_file, parent_folder
from kale_yaml.runtime.generators import is_generator, restore_generator, save_generator
from kale_yaml.runtime.marshal import load_value, save_value
from kale_yaml.runtime.pickling import pickling_session, remember_prelude

# Taken when the runtime loads, as files.py takes its functions: a cell may patch the json module.
_metrics_text = json.JSONEncoder(indent=2, sort_keys=True).encode


def run_step(
    *,
    step: str,
    notebook: str,
    cells: list[tuple[int, str]],
    parameters: dict[str, object],
    inputs: dict[str, str],
    outputs: dict[str, str],
    metrics: Any = None,
    metric_names: Iterable[str] = (),
    prelude: int = 0,
) -> dict[str, object]:
    """Run cells in a fresh __main__ module holding parameters and inputs; log metrics; save outputs.

    The first `prelude` cells run before the inputs are loaded; the classes and functions they define travel
    by name, so every step (which runs the prelude too) shares one definition of each, as the notebook does.
    Generated code counts there, after the prelude, what earlier steps left in the process (imports, settings,
    files). Inputs and outputs named like `<numpy.random>` are a global random generator's state
    (generators.py): restored after the values are loaded, saved before them.
    """
    progress = Progress(step, notebook)
    with reporting(progress), main_module() as namespace, pickling_session():
        namespace.update(parameters)
        for number, source in cells[:prelude]:
            run_cell(progress, number, source, namespace)
        remember_prelude(namespace)
        if inputs:
            progress.emit("loading")
        generators = [(name, path) for name, path in inputs.items() if is_generator(name)]
        for name, path in [*((n, p) for n, p in inputs.items() if not is_generator(n)), *generators]:
            try:
                if is_generator(name):  # last: loading a value may draw (importing its library can)
                    restore_generator(name, path)
                    continue
                namespace[name] = load_value(path)
            except Exception as error:
                problem = f"cannot load variable {name!r} from {path}: {type(error).__name__}: {error}"
                raise StepError(f"step {step!r}: {problem}") from error
        for number, source in cells[prelude:]:
            run_cell(progress, number, source, namespace)
        for name, path in outputs.items():  # first: saving a value may draw
            if is_generator(name):
                save_generator(name, path)
        progress.emit("saving")
        _log_metrics(step, metrics, {name: _metric(step, name, namespace) for name in metric_names})
        for name, path in outputs.items():
            if is_generator(name):
                continue
            if name not in namespace:
                raise StepError(f"step {step!r}: variable {name!r} is not defined after the step's cells ran")
            save_value(name, namespace[name], path, step=step)
        return namespace


def _log_metrics(step: str, metrics: Any, logged: dict[str, float]) -> None:
    if metrics is None or not logged:
        return
    for name, value in logged.items():
        metrics.log_metric(name, value)
    # A file at the artifact's path as well: the values are readable there, and kfp's local cache treats an
    # artifact without a file as missing.
    make_folders(parent_folder(metrics.path))
    with open_file(metrics.path, "w", encoding="utf-8") as handle:
        handle.write(_metrics_text(logged))


def _metric(step: str, name: str, namespace: dict[str, Any]) -> float:
    value = namespace.get(name)
    try:
        if name in namespace and not isinstance(value, (str, bytes)):
            return float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        pass
    problem = f"is a {type(value).__name__}, not a number" if name in namespace else "is not defined"
    raise MetricError(f"step {step!r}: metric {name!r} {problem} after the step's cells ran")
