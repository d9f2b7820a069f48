"""The pipeline as a DAG: data edges from analysis plus `after:` edges, in a stable topological order."""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from kale_yaml import diagnostics as ky
from kale_yaml.analysis.steps import Analysis, StepFlow
from kale_yaml.errors import Collector, Diagnostic, PlanError
from kale_yaml.plan.environment import Environments
from kale_yaml.resolve.model import Config, StepConfig
from kale_yaml.suggest import did_you_mean

PROVIDED_EVERYWHERE = ("prelude", "parameter")


@dataclass(frozen=True)
class Transfer:
    """A variable that travels as an artifact from `producer` into a step."""

    variable: str
    producer: str


@dataclass(frozen=True)
class Edge:
    source: str
    target: str
    variables: tuple[str, ...]  # empty for an `after:`-only edge

    @property
    def explicit_only(self) -> bool:
        return not self.variables


@dataclass(frozen=True)
class PlannedStep:
    config: StepConfig
    parameters: tuple[str, ...]  # pipeline parameters the step's code reads
    inputs: tuple[Transfer, ...]
    outputs: tuple[str, ...]
    upstream: tuple[str, ...]  # every step this one waits for, in notebook order
    sources: tuple[tuple[int, str], ...]  # (cell number, code to execute), prelude not included
    replay: tuple[tuple[int, str], ...] = ()  # (cell number, statement) of earlier steps it runs again first
    sets: tuple[tuple[int, str], ...] = ()  # (cell number, what) of the process state it leaves later steps

    @property
    def name(self) -> str:
        return self.config.name


@dataclass(frozen=True)
class Pipeline:
    config: Config
    steps: tuple[PlannedStep, ...]  # topological order; ties keep notebook order
    edges: tuple[Edge, ...]
    prelude_sources: tuple[tuple[int, str], ...]
    warnings: tuple[Diagnostic, ...]
    # What each step installs and carries (plan/packages.py): known once the notebook's folder is read.
    environments: Environments = field(default_factory=Environments)
    steps_by_name: Mapping[str, PlannedStep] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        # Frozen: the mapping is made once here, from the steps it indexes.
        object.__setattr__(self, "steps_by_name", MappingProxyType({s.name: s for s in self.steps}))

    def step(self, name: str) -> PlannedStep:
        return self.steps_by_name[name]


def plan(config: Config, analysis: Analysis, prelude_sources: tuple[tuple[int, str], ...]) -> Pipeline:
    flows = {flow.name: flow for flow in analysis.steps}
    order = {step.name: step.index for step in config.steps}
    edges = _edges(config, flows)
    upstream: dict[str, set[str]] = {s.name: set() for s in config.steps}
    for edge in edges:
        upstream[edge.target].add(edge.source)
    problems = _metric_problems(config, flows)
    try:
        _check_acyclic(config, upstream)
    except PlanError as exc:
        problems.extend(exc.diagnostics)
    if problems:
        raise PlanError(problems)

    planned: dict[str, PlannedStep] = {}
    for step in config.steps:
        flow = flows[step.name]
        parameters = {v for v, p in flow.reads.items() if p == "parameter"}
        if config.metrics and config.metrics.step == step.name:  # a metric may report a parameter's value
            parameters |= set(config.metrics.names) & {p.name for p in config.parameters}
        planned[step.name] = PlannedStep(
            config=step,
            parameters=tuple(sorted(parameters)),
            inputs=tuple(
                Transfer(v, p)
                for v, p in sorted(flow.reads.items())
                if p not in PROVIDED_EVERYWHERE and p in flows
            ),
            outputs=flow.outputs,
            upstream=tuple(sorted(upstream[step.name], key=order.__getitem__)),
            sources=flow.sources,
            replay=flow.replay,
            sets=flow.sets,
        )
    return Pipeline(
        config=config,
        steps=tuple(planned[name] for name in _topological(config, upstream)),
        edges=edges,
        prelude_sources=prelude_sources,
        warnings=analysis.warnings,
    )


def _edges(config: Config, flows: dict[str, StepFlow]) -> tuple[Edge, ...]:
    variables: dict[tuple[str, str], list[str]] = {}
    for step in config.steps:
        for variable, producer in flows[step.name].reads.items():
            if producer in flows and producer != step.name:
                variables.setdefault((producer, step.name), []).append(variable)
        for other in step.after:
            variables.setdefault((other, step.name), [])
    order = {step.name: step.index for step in config.steps}
    return tuple(
        Edge(source, target, tuple(sorted(names)))
        for (source, target), names in sorted(
            variables.items(), key=lambda kv: (order[kv[0][1]], order[kv[0][0]])
        )
    )


def _metric_problems(config: Config, flows: dict[str, StepFlow]) -> list[Diagnostic]:
    """Each metric must be a variable its step defines or receives, or a pipeline parameter; else an error at
    `metrics.names[i]`."""
    if config.metrics is None or config.metrics.step not in flows:
        return []
    step = config.metrics.step
    flow = flows[step]
    known = set(flow.defines) | set(flow.reads) | {p.name for p in config.parameters}
    problems: list[Diagnostic] = []
    for i, name in enumerate(config.metrics.names):
        if name in known:
            continue
        makers = [s.name for s in config.steps if name in flows[s.name].defines]
        if makers:
            hint = (
                f"; step '{makers[-1]}' defines it: make that the metrics step, or add '{name}' to"
                f" the inputs of step '{step}'"
            )
        else:
            hint = did_you_mean(name, known)
        message = f"'{name}' is not a variable step '{step}' defines or receives{hint}"
        problems.append(config.metrics.where.child("names", i).at(ky.UNKNOWN_METRIC, message))
    return problems


def _check_acyclic(config: Config, upstream: dict[str, set[str]]) -> None:
    """Data edges always point forward in the notebook; only `after:` can close a cycle."""
    state: dict[str, int] = {}  # 1 visiting, 2 done
    stack: list[str] = []
    errors = Collector()

    def visit(name: str) -> None:
        state[name] = 1
        stack.append(name)
        for before in sorted(upstream[name]):
            if state.get(before) == 1:
                cycle = [*stack[stack.index(before) :], before]
                _report_cycle(config, cycle, errors)
            elif before not in state:
                visit(before)
        stack.pop()
        state[name] = 2

    for step in config.steps:
        if step.name not in state:
            visit(step.name)
    errors.raise_if_any(PlanError)


def _report_cycle(config: Config, cycle: list[str], errors: Collector) -> None:
    # `cycle` lists steps each waiting for the next; point at an `after:` entry that closes it.
    path = " -> ".join(f"'{name}'" for name in reversed(cycle))
    for waiting, before in itertools.pairwise(cycle):
        step = config.step(waiting)
        if before in step.after:
            where = step.where.child("after", step.after.index(before))
            errors.add(where.at(ky.CYCLE, f"steps form a cycle: {path}"))
            return
    errors.add(config.where.child("steps").at(ky.CYCLE, f"steps form a cycle: {path}"))


def _topological(config: Config, upstream: dict[str, set[str]]) -> list[str]:
    remaining = {name: set(before) for name, before in upstream.items()}
    ordered: list[str] = []
    while remaining:
        ready = next(s.name for s in config.steps if s.name in remaining and not remaining[s.name])
        ordered.append(ready)
        del remaining[ready]
        for before in remaining.values():
            before.discard(ready)
    return ordered
