"""From the view of a planned pipeline (view.py: every name and setting, computed once) to the text of
`NAME.pipeline.py` (KFP v2 DSL), through one Jinja template, for the cluster or the local variant."""

from __future__ import annotations

from functools import cache

import jinja2

from kale_yaml.plan.project import Project
from kale_yaml.render import pyliteral
from kale_yaml.render.calls import Code
from kale_yaml.render.runtime_code import runtime_function
from kale_yaml.render.view import PipelineView, pipeline_view
from kale_yaml.resources import data_dir

TEMPLATE = "pipeline.py.j2"


@cache
def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(data_dir("templates"))),
        autoescape=False,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
        undefined=jinja2.StrictUndefined,
    )
    env.filters["py"] = pyliteral.literal
    env.filters["block"] = pyliteral.block
    env.filters["comment"] = pyliteral.comment
    env.filters["arg"] = _argument
    return env


def _argument(value: object) -> str:
    """A call's argument: an expression kale-yaml made, or a value written as a literal."""
    return value.text if isinstance(value, Code) else pyliteral.literal(value)


def project_source(project: Project, *, local: bool = False) -> str:
    """The text of `NAME.pipeline.py` (or of the local variant that `kale-yaml run` executes)."""
    return render(pipeline_view(project), local=local)


def render(view: PipelineView, *, local: bool = False) -> str:
    """The generated DSL file. `local=True` is what `kale-yaml run` executes: no `packages_to_install`, no
    cluster-only settings, and snapshots copy folders instead of making VolumeSnapshots."""
    pipeline = view.pipeline
    config = pipeline.config
    steps = view.variant(local)
    volumes = view.volumes
    # Locally the metrics come back as the pipeline's output, so a run reports them even from kfp's cache.
    metrics_output = ""
    for rendered in steps:
        if local and rendered.metrics_port:
            metrics_output = f"{rendered.task}.outputs[{pyliteral.literal(rendered.metrics_port)}]"
    return (
        _environment()
        .get_template(TEMPLATE)
        .render(
            pipeline=pipeline,
            config=config,
            function=view.function,
            steps=steps,
            prelude=view.prelude,
            parameters=view.parameters,
            sidecar_name=view.sidecar_name,
            notebook_name=config.notebook_name,
            runtime=runtime_function(),
            local=local,
            metrics_output=metrics_output,
            returns=" -> dsl.Metrics" if metrics_output else "",
            volumes=volumes,
            nested=volumes.nested and not local,
            kubernetes=not local and bool(volumes.volumes or any(step.calls for step in steps)),
            snapshot_function=view.snapshot_function,
            steps_function=view.steps_function,
            delete_function=view.delete_function,
            cleanup_task=view.cleanup_task,
            snapshot_image=config.image,
        )
    )
