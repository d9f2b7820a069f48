"""From a planned `Pipeline` to the text of `NAME.pipeline.py` (KFP v2 DSL), through one Jinja template.

Names in the generated code are computed here, never taken raw from the sidecar where they could clash:
component functions are `<step>_step`, artifact ports `in_<var>` / `out_<var>`, locals start with `_`.
Cluster settings, volumes and snapshots are planned by cluster.py and volumes.py.
"""

from __future__ import annotations

import keyword
import re
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING

from kale_yaml.errors import Diagnostic
from kale_yaml.names import unique_name
from kale_yaml.plan.dag import Pipeline, PlannedStep
from kale_yaml.plan.project import Project
from kale_yaml.render import pyliteral
from kale_yaml.render.volumes import Snapshot, VolumePlan, plan_volumes
from kale_yaml.resolve.cluster import Call, ClusterError, Code, step_calls
from kale_yaml.resolve.config import DEFAULT_IMAGE
from kale_yaml.resolve.parameters import JSON_TYPES, KfpValue, encode, kfp_type, received
from kale_yaml.resources import data_dir, runtime_source

if TYPE_CHECKING:
    import jinja2

TEMPLATE = "pipeline.py.j2"
_PORT_SAFE = re.compile(r"^[A-Za-z0-9_]+$")


@dataclass(frozen=True)
class Port:
    """One argument of a component function."""

    name: str  # the Python/KFP name of the argument
    variable: str  # the notebook variable (or parameter) it carries
    annotation: str
    received: str = ""  # a parameter's value as the cells receive it: the port, or its JSON decoded


@dataclass(frozen=True)
class PipelineParameter:
    """One argument of the pipeline function: lists and dicts are `str`, their default the JSON text."""

    name: str
    annotation: str
    default: KfpValue


@dataclass(frozen=True)
class Argument:
    port: str
    expression: str  # what the pipeline function passes


@dataclass(frozen=True)
class RenderedStep:
    step: PlannedStep
    function: str
    task: str
    ports: tuple[Port, ...]
    parameters: tuple[Port, ...]
    decodes_json: bool  # a list or dict parameter arrives: the component imports json
    inputs: tuple[Port, ...]
    outputs: tuple[Port, ...]
    metrics_port: str | None
    metric_names: tuple[str, ...]
    arguments: tuple[Argument, ...]
    after: tuple[str, ...]  # task variables to wait for beyond data edges
    docstring: str
    packages: tuple[str, ...]  # what the container installs: the runtime's dill, then the step's own
    cache: bool
    calls: tuple[Call, ...]  # settings of the task: resources, env, secrets, volume mounts, ...
    snapshots: tuple[Snapshot, ...]  # taken just before the step


@cache
def _environment() -> jinja2.Environment:
    import jinja2  # here, not at the top: `validate` checks cluster settings through this module

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
    # Names as the sidecar writes them, never relative to the working folder: same input, same bytes.
    return render(
        project.pipeline,
        sidecar_name=project.sidecar.name,
        notebook_name=str(project.config.document.data["notebook"]),
        local=local,
    )


def render(pipeline: Pipeline, *, sidecar_name: str, notebook_name: str, local: bool = False) -> str:
    """The generated DSL file. `local=True` is what `kale-yaml run` executes: no `packages_to_install`, no
    cluster-only settings, and snapshots copy folders instead of making VolumeSnapshots.

    Raises `ClusterError` for settings kfp or Kubernetes would reject."""
    config = pipeline.config
    function = function_name(pipeline)
    problems: list[Diagnostic] = []
    taken, task_names, volumes, calls = _plan(pipeline, function, problems)
    if problems:
        raise ClusterError(problems)
    steps = [
        _step(
            step,
            pipeline,
            task_names,
            notebook_name,
            local,
            _cluster_calls(calls[step.name], step, volumes, local),
            volumes,
        )
        for step in pipeline.steps
    ]
    prelude = [(number, pyliteral.block(source)) for number, source in pipeline.prelude_sources]
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
            function=function,
            steps=steps,
            prelude=prelude,
            parameters=[
                PipelineParameter(p.name, kfp_type(p.type_name), encode(p.default)) for p in config.parameters
            ],
            sidecar_name=sidecar_name,
            notebook_name=notebook_name,
            runtime=pyliteral.block(runtime_source()),
            local=local,
            metrics_output=metrics_output,
            returns=" -> dsl.Metrics" if metrics_output else "",
            volumes=volumes,
            nested=volumes.nested and not local,
            kubernetes=not local and bool(volumes.volumes or any(step.calls for step in steps)),
            snapshot_function=unique_name("snapshot_volume", taken)
            if volumes.before or volumes.after_run
            else "",
            steps_function=unique_name(f"{function}_steps", taken),
            delete_function=unique_name("delete_volumes", taken),
            cleanup_task=unique_name("delete_volumes_task", taken),
            snapshot_image=config.document.data["pipeline"].get("image") or DEFAULT_IMAGE,
        )
    )


def cluster_problems(pipeline: Pipeline) -> list[Diagnostic]:
    """What `render` would reject in the cluster keys, found without rendering (kfp is not imported)."""
    problems: list[Diagnostic] = []
    _plan(pipeline, function_name(pipeline), problems)
    return problems


def _plan(
    pipeline: Pipeline, function: str, problems: list[Diagnostic]
) -> tuple[set[str], dict[str, str], VolumePlan, dict[str, list[Call]]]:
    """Names taken in the generated module, each step's task variable, volumes and each step's settings."""
    taken = {p.name for p in pipeline.config.parameters} | {function}
    taken |= {step_function_name(step.name) for step in pipeline.steps}
    task_names: dict[str, str] = {}
    for step in pipeline.steps:
        task_names[step.name] = unique_name(f"{step.name}_task", taken)
    volumes = plan_volumes(pipeline, task_names, taken, problems)
    calls = {step.name: step_calls(pipeline.config, step.config, problems) for step in pipeline.steps}
    problems[:] = dict.fromkeys(problems)  # a default's problem is found once for every step that inherits it
    return taken, task_names, volumes, calls


def _cluster_calls(
    calls: list[Call], step: PlannedStep, volumes: VolumePlan, local: bool
) -> tuple[Call, ...]:
    """Locally only `env` applies; on a cluster every setting, then the volume mounts."""
    if local:
        return tuple(call for call in calls if call.name == "set_env_variable")
    mounts = [
        Call("mount_pvc", (("pvc_name", claim), ("mount_path", volume.mount)))
        for volume, claim in volumes.mounts.get(step.name, ())
    ]
    return (*calls, *mounts)


def function_name(pipeline: Pipeline) -> str:
    """The name of the generated pipeline function."""
    return _identifier(pipeline.config.name.replace("-", "_"), "pipeline_")


def step_function_name(step: str) -> str:
    """The name of a step's component function; `kale-yaml run` knows a step's process by it."""
    return f"{step}_step"


def _step(
    step: PlannedStep,
    pipeline: Pipeline,
    task_names: dict[str, str],
    notebook_name: str,
    local: bool,
    calls: tuple[Call, ...],
    volumes: VolumePlan,
) -> RenderedStep:
    config = pipeline.config
    types = {p.name: p.type_name for p in config.parameters}
    taken: set[str] = set()
    parameters = tuple(
        _parameter_port(unique_name(_port_base("", name), taken), name, types[name])
        for name in step.parameters
    )
    inputs = tuple(
        Port(unique_name(_port_base("in_", t.variable), taken), t.variable, "dsl.Input[dsl.Artifact]")
        for t in step.inputs
    )
    outputs = tuple(
        Port(unique_name(_port_base("out_", v), taken), v, "dsl.Output[dsl.Artifact]") for v in step.outputs
    )
    metric_names: tuple[str, ...] = ()
    metrics_port = None
    if config.metrics and config.metrics.step == step.name:
        metric_names = config.metrics.names
        metrics_port = unique_name("metrics", taken)
    arguments = [Argument(p.name, p.variable) for p in parameters]
    for port, transfer in zip(inputs, step.inputs, strict=True):
        producer = pipeline.step(transfer.producer)
        out_port = _output_port(producer, transfer.variable)
        arguments.append(
            Argument(port.name, f"{task_names[transfer.producer]}.outputs[{pyliteral.literal(out_port)}]")
        )
    data_sources = {t.producer for t in step.inputs}
    snapshots = volumes.before.get(step.name, ())
    after = tuple(task_names[name] for name in step.upstream if name not in data_sources)
    after += tuple(snapshot.task for snapshot in snapshots)
    ports = (*parameters, *inputs, *outputs)
    if metrics_port:
        ports = (*ports, Port(metrics_port, "", "dsl.Output[dsl.Metrics]"))
    return RenderedStep(
        step=step,
        function=step_function_name(step.name),
        task=task_names[step.name],
        ports=ports,
        parameters=parameters,
        decodes_json=any(types[port.variable] in JSON_TYPES for port in parameters),
        inputs=inputs,
        outputs=outputs,
        metrics_port=metrics_port,
        metric_names=metric_names,
        arguments=tuple(arguments),
        after=after,
        docstring=f"Step '{step.name}': {notebook_name} {_cells_phrase(step.config.cells)}.",
        packages=() if local else _packages(step.config.packages),
        cache=step.config.cache and not volumes.uncached(step.name),
        calls=calls,
        snapshots=snapshots,
    )


def _parameter_port(port: str, variable: str, type_name: str) -> Port:
    return Port(port, variable, kfp_type(type_name), received=received(type_name, port))


def _packages(wanted: Iterable[str]) -> tuple[str, ...]:
    own = tuple(wanted)
    has_dill = any(re.match(r"^dill\b", p) for p in own)
    return own if has_dill else ("dill", *own)


def _output_port(producer: PlannedStep, variable: str) -> str:
    """The same port name `_step` gives the producer's output (names are computed deterministically)."""
    taken: set[str] = set()
    for name in producer.parameters:
        unique_name(_port_base("", name), taken)
    for transfer in producer.inputs:
        unique_name(_port_base("in_", transfer.variable), taken)
    for v in producer.outputs:
        port = unique_name(_port_base("out_", v), taken)
        if v == variable:
            return port
    raise KeyError(variable)  # pragma: no cover - plan guarantees the producer outputs it


def _port_base(prefix: str, variable: str) -> str:
    # KFP port names must start with a letter and use only ASCII letters, digits and _.
    if _PORT_SAFE.match(variable):
        base = f"{prefix}{variable}"
    else:
        base = prefix + "var_" + "_".join(f"{ord(c):x}" if not _PORT_SAFE.match(c) else c for c in variable)
    if not base[0].isalpha():
        base = "v" + base
    return base


def _identifier(name: str, prefix: str) -> str:
    if name.isidentifier() and not keyword.iskeyword(name) and name[0].isalpha():
        return name
    return prefix + name


def _cells_phrase(cells: Iterable[int]) -> str:
    numbers = list(cells)
    spans: list[str] = []
    start = prev = numbers[0]
    for n in [*numbers[1:], None]:
        if n is not None and n == prev + 1:
            prev = n
            continue
        spans.append(str(start) if start == prev else f"{start}-{prev}")
        if n is not None:
            start = prev = n
    return ("cell " if len(numbers) == 1 else "cells ") + ", ".join(spans)
