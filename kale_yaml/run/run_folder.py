"""A local run's folder, `.kale/runs/NAME-STAMP/`, and the process settings a run holds while it goes on."""

from __future__ import annotations

import contextlib
import datetime
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from kale_yaml.load.paths import DEFAULT_OUTPUT_DIR
from kale_yaml.plan.project import Project

EVENTS_ENV = "KALE_YAML_EVENTS"
SNAPSHOTS_ENV = "KALE_YAML_SNAPSHOTS"


@dataclass(frozen=True)
class RunFolder:
    """`.kale/runs/NAME-STAMP/`: the local variant it runs, kfp's artifacts, events, logs."""

    kale_dir: Path
    run_dir: Path

    @property
    def module(self) -> Path:
        return self.run_dir / "pipeline.local.py"

    @property
    def spec(self) -> Path:
        return self.run_dir / "pipeline.local.json"

    @property
    def artifacts(self) -> Path:
        return self.run_dir / "artifacts"

    @property
    def tasks(self) -> Path:
        return self.run_dir / "tasks"

    @property
    def events(self) -> Path:
        return self.run_dir / "events.jsonl"

    @property
    def log(self) -> Path:
        return self.run_dir / "run.log"

    @property
    def snapshots(self) -> Path:
        return self.kale_dir / "snapshots" / self.run_dir.name

    @property
    def cache(self) -> Path:
        return self.kale_dir / "cache"

    def environment(self) -> dict[str, str]:
        # Absolute: a cell may change the working directory.
        return {EVENTS_ENV: str(self.events.absolute()), SNAPSHOTS_ENV: str(self.snapshots.absolute())}


def new_run_folder(project: Project) -> RunFolder:
    kale_dir = project.sidecar.parent / DEFAULT_OUTPUT_DIR
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S-%f")
    folder = RunFolder(kale_dir, kale_dir / "runs" / f"{project.config.name}-{stamp}")
    folder.run_dir.mkdir(parents=True, exist_ok=False)
    folder.events.touch()
    return folder


@contextlib.contextmanager
def environment(values: dict[str, str]) -> Iterator[None]:
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@contextlib.contextmanager
def captured(log_path: Path) -> Iterator[None]:
    """What kfp prints, and its logs, go to run.log, not the terminal."""
    root = logging.getLogger()
    with open(log_path, "a", encoding="utf-8") as log:
        saved_handlers, saved_level = root.handlers[:], root.level
        handler = logging.StreamHandler(log)
        try:
            with contextlib.redirect_stdout(log), contextlib.redirect_stderr(log):
                root.handlers = [handler]
                yield
        finally:
            root.handlers, root.level = saved_handlers, saved_level


def load_pipeline(path: Path, function: str) -> object:
    """The pipeline function of a rendered variant, loaded from its file."""
    import importlib.util

    name = f"_kale_yaml_local_{abs(hash(str(path)))}"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:  # pragma: no cover - a real file always has a spec
        raise RuntimeError(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return getattr(module, function)
