"""A validated sidecar: the sidecar's path with its planned pipeline, as every later stage takes it."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from kale_yaml.errors import Diagnostic
from kale_yaml.plan.dag import Pipeline
from kale_yaml.plan.environment import Environments
from kale_yaml.resolve.model import Config


@dataclass(frozen=True)
class Project:
    """A validated sidecar: everything needed to render, run or describe the pipeline."""

    sidecar: Path
    pipeline: Pipeline

    @property
    def config(self) -> Config:
        return self.pipeline.config

    @property
    def environments(self) -> Environments:
        return self.pipeline.environments

    @property
    def warnings(self) -> tuple[Diagnostic, ...]:
        return (*self.pipeline.warnings, *self.pipeline.environments.findings)
