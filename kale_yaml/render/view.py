"""What the template writes, computed once per pipeline and shared by the cluster and the local variant:
every name in the generated code, each step's ports and arguments, its settings as calls, and the volumes.

Names in the generated code are computed here, never taken raw from the sidecar where they could clash:
component functions are `<step>_step`, artifact ports `in_<var>` / `out_<var>`, locals start with `_`.
"""

from __future__ import annotations

import dataclasses
import keyword
import re
from collections.abc import Iterable
from dataclasses import dataclass

from kale_yaml.analysis.process_state import port_stem
from kale_yaml.load.cells import cells_phrase
from kale_yaml.names import unique_name
from kale_yaml.plan.dag import Pipeline, PlannedStep
from kale_yaml.plan.environment import StepEnvironment
from kale_yaml.plan.project import Project
from kale_yaml.plan.shipping import Shipped
from kale_yaml.render import pyliteral
from kale_yaml.render.calls import Call, cluster_calls, env_calls
from kale_yaml.render.runtime_code import FUNCTION as RUNTIME_FUNCTION
from kale_yaml.render.volumes import Snapshot, VolumePlan, plan_volumes
from kale_yaml.resolve.parameters import JSON_TYPES, KfpValue, encode, kfp_type, received

_PORT_SAFE = re.compile(r"^[A-Za-z0-9_]+$")
REPORT_PORT = "kale_yaml_report"  # each step's HTML report, as KFP's UI shows it


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
class Ports:
    parameters: tuple[Port, ...]
    inputs: tuple[Port, ...]
    outputs: tuple[Port, ...]
    metrics: str | None  # the dsl.Metrics output of the metrics step
    report: str | None  # the dsl.HTML output the step writes its report to, unless reports are off


@dataclass(frozen=True)
class RenderedStep:
    """One step as the template writes it (`calls` and `packages` are the cluster variant's)."""

    step: PlannedStep
    function: str
    task: str
    ports: tuple[Port, ...]
    parameters: tuple[Port, ...]
    decodes_json: bool  # a list or dict parameter arrives: the component imports json
    inputs: tuple[Port, ...]
    outputs: tuple[Port, ...]
    metrics_port: str | None
    report_port: str | None
    metric_names: tuple[str, ...]
    arguments: tuple[Argument, ...]
    after: tuple[str, ...]  # task variables to wait for beyond data edges
    docstring: str
    packages: tuple[str, ...]  # what the container installs: the runtime's dill, then the step's own
    shipped: tuple[tuple[str, str, str], ...]  # (path, "text" | "base64", literal): modules and files
    workdir: bool  # its cells run in the folder of its shipped files
    cache: bool
    calls: tuple[Call, ...]  # settings of the task: resources, env, secrets, volume mounts, ...
    local_calls: tuple[Call, ...]  # the settings a local run applies
    snapshots: tuple[Snapshot, ...]  # taken just before the step
    replay: tuple[tuple[int, str], ...] = ()  # (cell number, source as a literal): earlier steps' state


@dataclass(frozen=True)
class PipelineView:
    pipeline: Pipeline
    sidecar_name: str  # as the sidecar's folder names it, never relative to the working folder
    function: str  # the pipeline function
    parameters: tuple[PipelineParameter, ...]
    steps: tuple[RenderedStep, ...]
    prelude: tuple[tuple[int, str], ...]  # (cell number, source as a literal)
    volumes: VolumePlan
    snapshot_function: str  # "" when no snapshot is taken
    steps_function: str  # the pipeline of the steps, when an exit handler deletes volumes
    delete_function: str
    cleanup_task: str

    def variant(self, local: bool) -> tuple[RenderedStep, ...]:
        """The steps as the cluster variant writes them, or the local one: no packages, only local calls."""
        if not local:
            return self.steps
        return tuple(dataclasses.replace(s, packages=(), calls=s.local_calls) for s in self.steps)


def pipeline_view(project: Project) -> PipelineView:
    pipeline = project.pipeline
    config = pipeline.config
    function = function_name(pipeline)
    taken = {p.name for p in config.parameters} | {function, RUNTIME_FUNCTION}
    taken |= {step_function_name(step.name) for step in pipeline.steps}
    tasks = {step.name: unique_name(f"{step.name}_task", taken) for step in pipeline.steps}
    volumes = plan_volumes(pipeline, tasks, taken)
    ports = {step.name: _ports(step, pipeline) for step in pipeline.steps}
    steps = tuple(
        _step(step, pipeline, tasks, ports, volumes, project.environments.steps.get(step.name))
        for step in pipeline.steps
    )
    snapshots = volumes.before or volumes.after_run
    return PipelineView(
        pipeline=pipeline,
        sidecar_name=project.sidecar.name,
        function=function,
        parameters=tuple(
            PipelineParameter(p.name, kfp_type(p.type_name), encode(p.default)) for p in config.parameters
        ),
        steps=steps,
        prelude=tuple((number, pyliteral.block(source)) for number, source in pipeline.prelude_sources),
        volumes=volumes,
        # In this order, as the template used to ask for them: same input, same names.
        snapshot_function=unique_name("snapshot_volume", taken) if snapshots else "",
        steps_function=unique_name(f"{function}_steps", taken),
        delete_function=unique_name("delete_volumes", taken),
        cleanup_task=unique_name("delete_volumes_task", taken),
    )


def function_name(pipeline: Pipeline) -> str:
    """The name of the generated pipeline function."""
    return _identifier(pipeline.config.name.replace("-", "_"), "pipeline_")


def step_function_name(step: str) -> str:
    """The name of a step's component function; `kale-yaml run` knows a step's process by it."""
    return f"{step}_step"


def _ports(step: PlannedStep, pipeline: Pipeline) -> Ports:
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
    metrics = None
    if config.metrics and config.metrics.step == step.name:
        metrics = unique_name("metrics", taken)
    report = unique_name(REPORT_PORT, taken) if step.config.report else None
    return Ports(parameters, inputs, outputs, metrics, report)


def _step(
    step: PlannedStep,
    pipeline: Pipeline,
    tasks: dict[str, str],
    ports: dict[str, Ports],
    volumes: VolumePlan,
    environment: StepEnvironment | None,
) -> RenderedStep:
    config = pipeline.config
    own = ports[step.name]
    arguments = [Argument(p.name, p.variable) for p in own.parameters]
    for port, transfer in zip(own.inputs, step.inputs, strict=True):
        out_port = next(p.name for p in ports[transfer.producer].outputs if p.variable == transfer.variable)
        arguments.append(
            Argument(port.name, f"{tasks[transfer.producer]}.outputs[{pyliteral.literal(out_port)}]")
        )
    data_sources = {t.producer for t in step.inputs}
    snapshots = volumes.before.get(step.name, ())
    after = tuple(tasks[name] for name in step.upstream if name not in data_sources)
    after += tuple(snapshot.task for snapshot in snapshots)
    all_ports = (*own.parameters, *own.inputs, *own.outputs)
    if own.metrics:
        all_ports = (*all_ports, Port(own.metrics, "", "dsl.Output[dsl.Metrics]"))
    if own.report:
        all_ports = (*all_ports, Port(own.report, "", "dsl.Output[dsl.HTML]"))
    mounts = tuple(
        Call("mount_pvc", (("pvc_name", claim), ("mount_path", volume.mount)))
        for volume, claim in volumes.mounts.get(step.name, ())
    )
    types = {p.name: p.type_name for p in config.parameters}
    return RenderedStep(
        step=step,
        function=step_function_name(step.name),
        task=tasks[step.name],
        ports=all_ports,
        parameters=own.parameters,
        decodes_json=any(types[port.variable] in JSON_TYPES for port in own.parameters),
        inputs=own.inputs,
        outputs=own.outputs,
        metrics_port=own.metrics,
        report_port=own.report,
        metric_names=config.metrics.names if own.metrics and config.metrics else (),
        arguments=tuple(arguments),
        after=after,
        docstring=f"Step '{step.name}': {config.notebook_name} {cells_phrase(step.config.cells)}.",
        packages=environment.install if environment else _packages(step.config.packages),
        shipped=tuple(shipped_literal(item) for item in (environment.shipped if environment else ())),
        workdir=environment.workdir if environment else False,
        cache=step.config.cache and not volumes.uncached(step.name),
        calls=(*cluster_calls(step.config.cluster), *mounts),
        local_calls=env_calls(step.config.cluster),
        snapshots=snapshots,
        replay=tuple((number, pyliteral.block(source)) for number, source in step.replay),
    )


def _parameter_port(port: str, variable: str, type_name: str) -> Port:
    return Port(port, variable, kfp_type(type_name), received=received(type_name, port))


def shipped_literal(item: Shipped) -> tuple[str, str, str]:
    """(path, encoding, content as a literal): text stays readable in the generated code."""
    text = pyliteral.block(item.text) if item.encoding == "text" else pyliteral.literal(item.text)
    return item.path, item.encoding, text


def _packages(wanted: Iterable[str]) -> tuple[str, ...]:
    own = tuple(wanted)
    has_dill = any(re.match(r"^dill\b", p) for p in own)
    return own if has_dill else ("dill", *own)


def _port_base(prefix: str, variable: str) -> str:
    # KFP port names must start with a letter and use only ASCII letters, digits and _.
    stem = port_stem(variable)  # a random generator's state
    if stem is not None:
        base = f"{prefix}{stem}"
    elif _PORT_SAFE.match(variable):
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
