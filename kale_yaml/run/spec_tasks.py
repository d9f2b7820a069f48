"""The compiled local variant read as tasks: what each runs, what it waits for, where its inputs come from.

The executor runs the pipeline spec kfp compiled, not the Python that made it, so that a step gets the same
executor input (parameters, artifact paths and URIs, its outputs' places) a KFP backend would give it. Only
what kale-yaml's own template produces is read: a flat DAG of Python-function components whose inputs are the
pipeline's parameters, constants and upstream outputs.
"""

from __future__ import annotations

import itertools
import os
from dataclasses import dataclass, field
from typing import Any

from kale_yaml.resolve.parameters import KfpValue

# kfp's lightweight-component command writes its last element, the component's module, to a file it then
# loads; that element follows the one naming the file.
_MODULE_FILE = "ephemeral_component.py"


@dataclass(frozen=True)
class Upstream:
    """A value a task receives from another task's output."""

    task: str
    key: str


@dataclass(frozen=True)
class Task:
    name: str  # kfp's task name, e.g. "split-step"
    component: dict[str, Any]  # its ComponentSpec as JSON (kfp's message is made only to launch it)
    source: str  # the component's module, as the container would load it
    function: str  # the component function in it
    env: dict[str, str]
    upstream: tuple[str, ...]  # every task this one waits for (data and `after:`)
    parameters: dict[str, KfpValue | Upstream]
    artifacts: dict[str, Upstream]
    cache: bool

    @property
    def output_ports(self) -> set[str]:
        definitions = self.component.get("outputDefinitions", {})
        return set(definitions.get("parameters", {})) | set(definitions.get("artifacts", {}))

    def component_message(self) -> Any:
        """kfp's ComponentSpec message, which kfp.local's executor-input helpers take."""
        from google.protobuf import json_format
        from kfp.pipeline_spec import pipeline_spec_pb2

        return json_format.ParseDict(self.component, pipeline_spec_pb2.ComponentSpec())


@dataclass(frozen=True)
class SpecPlan:
    name: str  # the pipeline's name
    tasks: dict[str, Task]  # in the spec's order
    defaults: dict[str, KfpValue]  # the pipeline parameters' defaults
    outputs: dict[str, Upstream] = field(default_factory=dict)  # the pipeline's own outputs

    def downstream(self, names: set[str]) -> set[str]:
        """`names` and every task that waits for one of them, directly or not."""
        found = set(names)
        changed = True
        while changed:
            changed = False
            for task in self.tasks.values():
                if task.name not in found and found.intersection(task.upstream):
                    found.add(task.name)
                    changed = True
        return found

    def upstream_of(self, names: set[str]) -> set[str]:
        """Every task that one of `names` waits for, directly or not (not `names` themselves)."""
        found: set[str] = set()
        todo = [u for name in names for u in self.tasks[name].upstream]
        while todo:
            name = todo.pop()
            if name not in found:
                found.add(name)
                todo.extend(self.tasks[name].upstream)
        return found - names


class UnsupportedSpec(Exception):
    """The spec holds something kale-yaml's template never makes (a bug of ours, not the user's)."""


def read_spec(document: dict[str, Any]) -> SpecPlan:
    """The tasks of a compiled pipeline spec (kfp's PipelineSpec message as JSON)."""
    executors = document["deploymentSpec"]["executors"]
    root = document["root"]
    tasks: dict[str, Task] = {}
    for name, task in root["dag"].get("tasks", {}).items():
        component = document["components"][task["componentRef"]["name"]]
        if "executorLabel" not in component:
            raise UnsupportedSpec(f"task {name!r} is not a container component")
        container = executors[component["executorLabel"]]["container"]
        tasks[name] = Task(
            name=name,
            component=component,
            source=_module_source(name, container.get("command", [])),
            function=_argument(container.get("args", []), "--function_to_execute", name),
            env={item["name"]: item["value"] for item in container.get("env", [])},
            upstream=tuple(task.get("dependentTasks", [])),
            parameters={
                port: _parameter(name, port, binding)
                for port, binding in task.get("inputs", {}).get("parameters", {}).items()
            },
            artifacts={
                port: _upstream(name, port, binding, "taskOutputArtifact", "outputArtifactKey")
                for port, binding in task.get("inputs", {}).get("artifacts", {}).items()
            },
            cache=bool(task.get("cachingOptions", {}).get("enableCache", False)),
        )
    defaults = {
        name: parameter["defaultValue"]
        for name, parameter in root.get("inputDefinitions", {}).get("parameters", {}).items()
        if "defaultValue" in parameter
    }
    outputs = {
        port: Upstream(selectors[0]["producerSubtask"], selectors[0]["outputArtifactKey"])
        for port, item in root["dag"].get("outputs", {}).get("artifacts", {}).items()
        if (selectors := item.get("artifactSelectors"))
    }
    return SpecPlan(document["pipelineInfo"]["name"], tasks, defaults, outputs)


def _module_source(task: str, command: list[str]) -> str:
    for index, part in enumerate(command[:-1]):
        if _MODULE_FILE in part:
            return command[index + 1]
    raise UnsupportedSpec(f"task {task!r} is not a Python function component")


def _argument(args: list[str], flag: str, task: str) -> str:
    for name, value in itertools.pairwise(args):
        if name == flag:
            return value
    raise UnsupportedSpec(f"task {task!r} names no {flag}")


def _parameter(task: str, port: str, binding: dict[str, Any]) -> KfpValue | Upstream:
    if "componentInputParameter" in binding:
        return Upstream("", binding["componentInputParameter"])  # "": the pipeline's own parameters
    if "runtimeValue" in binding:
        constant: KfpValue = binding["runtimeValue"]["constant"]
        return constant
    return _upstream(task, port, binding, "taskOutputParameter", "outputParameterKey")


def _upstream(task: str, port: str, binding: dict[str, Any], kind: str, key: str) -> Upstream:
    if kind not in binding:
        raise UnsupportedSpec(f"input {port!r} of task {task!r}: {sorted(binding)}")
    return Upstream(binding[kind]["producerTask"], binding[kind][key])


def task_root(artifacts: os.PathLike[str], pipeline_resource: str, task: str) -> str:
    """Where a task's outputs go, laid out as kfp.local lays them out: ROOT/PIPELINE-STAMP/TASK."""
    return os.path.join(artifacts, pipeline_resource, task)
