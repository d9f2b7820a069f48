"""A step: parameters and inputs in, cells run as in a notebook, metrics and outputs out."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterable, Iterator
from typing import Any

from kale_yaml.runtime.capture import StepCapture, capturing
from kale_yaml.runtime.cells import main_module, run_cell
from kale_yaml.runtime.errors import MetricError, StepError
from kale_yaml.runtime.events import Progress, reporting
from kale_yaml.runtime.files import make_folders, open_file, parent_folder
from kale_yaml.runtime.generators import is_generator, restore_generator, save_generator
from kale_yaml.runtime.marshal import load_value, save_value
from kale_yaml.runtime.pickling import pickling_session, remember_prelude
from kale_yaml.runtime.record import make_record
from kale_yaml.runtime.report_html import write_report
from kale_yaml.runtime.shipped import shipped_folder

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
    shipped: Iterable[tuple[str, str, str]] = (),
    workdir: bool = False,
    report: str | None = None,
) -> dict[str, object]:
    """Run cells in a fresh __main__ module holding parameters and inputs; log metrics; save outputs.

    The first `prelude` cells run before the inputs are loaded; the classes and functions they define travel
    by name, so every step (which runs the prelude too) shares one definition of each, as the notebook does.
    `shipped` are the notebook folder's modules and files the step carries (shipped.py); with `workdir` the
    cells run in the folder that holds them. With `report` (a file path), what the cells show is captured and
    written there as an HTML page, when the step finishes and when it fails.
    Generated code counts there, after the prelude, what earlier steps left in the process (imports, settings,
    files). Inputs and outputs named like `<numpy.random>` are a global random generator's state
    (generators.py): restored after the values are loaded, saved before them.
    """
    progress = Progress(step, notebook)
    carried = list(shipped)
    shown = _shown(progress, report, cells)  # entered last: the report is written before the step's end
    with (
        reporting(progress),
        shipped_folder(carried, workdir),
        main_module() as namespace,
        pickling_session(),
        shown as capture,
    ):
        namespace.update(parameters)
        for number, source in cells[:prelude]:
            run_cell(progress, number, source, namespace, capture)
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
            run_cell(progress, number, source, namespace, capture)
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


@contextlib.contextmanager
def _shown(
    progress: Progress, path: str | None, cells: list[tuple[int, str]]
) -> Iterator[StepCapture | None]:
    """What the cells show, captured when the step keeps a report (path), which is written when the step
    ends, finished or failed; a report that cannot be written is a warning, never the step's error."""
    capture = StepCapture() if path else None
    with capturing(capture):
        if path is None or capture is None:
            yield None
            return
        status = "failed"
        try:
            yield capture
            status = "finished"
        finally:
            try:
                record = make_record(progress.step, progress.notebook, status, capture.records())
                write_report(path, record, cells)
            except Exception as error:
                where = f"step {progress.step!r}: cannot write its report to {path}"
                progress.warn(f"kale-yaml: {where}: {type(error).__name__}: {error}")


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
