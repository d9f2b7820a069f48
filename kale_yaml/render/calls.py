"""A step's cluster settings as kfp task methods and kfp-kubernetes calls, from the checked, typed settings.

Every value is plain data (str, int, list, dict) that the template writes with `pyliteral.literal`; the only
non-literal arguments are expressions kale-yaml itself makes (`Code`).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, fields
from typing import Any

from kale_yaml.resolve.model import Cluster, Resources, Toleration


@dataclass(frozen=True)
class Code:
    """A Python expression kale-yaml made (a task output, a parameter name), written into the code as is."""

    text: str


@dataclass(frozen=True)
class Call:
    """One statement configuring a step's task: `task.NAME(...)` (method) or `kubernetes.NAME(task, ...)`.

    `arguments` are (keyword, value) pairs; values are plain data or `Code`.
    """

    name: str
    arguments: tuple[tuple[str, Any], ...] = ()
    method: bool = False


def env_calls(cluster: Cluster) -> tuple[Call, ...]:
    """`env:`, the one setting a local run applies too."""
    pairs = cluster.env.value if cluster.env is not None else ()
    return tuple(Call("set_env_variable", (("name", n), ("value", v)), method=True) for n, v in pairs)


def cluster_calls(cluster: Cluster) -> tuple[Call, ...]:
    """Every setting, in `resolve.cluster.DEFAULT_KEYS` order (volume mounts come from the volume plan)."""
    calls: list[Call] = []
    if cluster.resources is not None:
        calls += _resources(cluster.resources.value)
    if cluster.retries:
        calls.append(Call("set_retry", (("num_retries", cluster.retries),), method=True))
    if cluster.timeout is not None:
        calls.append(Call("set_timeout", (("seconds", cluster.timeout.value),)))
    calls += env_calls(cluster)
    for setting in cluster.secrets:
        secret = setting.value
        arguments = (("secret_name", secret.secret), ("secret_key_to_env", {secret.key: secret.env}))
        calls.append(Call("use_secret_as_env", arguments))
    for key, value in cluster.node_selector:
        calls.append(Call("add_node_selector", (("label_key", key), ("label_value", value))))
    for toleration in cluster.tolerations:
        calls.append(Call("add_toleration", tuple(_written(toleration.value))))
    for key, value in cluster.labels:
        calls.append(Call("add_pod_label", (("label_key", key), ("label_value", value))))
    for key, value in cluster.annotations:
        calls.append(Call("add_pod_annotation", (("annotation_key", key), ("annotation_value", value))))
    return tuple(calls)


def _resources(resources: Resources) -> Iterator[Call]:
    for method, cpu in (("set_cpu_request", resources.cpu), ("set_cpu_limit", resources.cpu_limit)):
        if cpu is not None:
            yield Call(method, (("cpu", cpu),), method=True)
    for method, memory in (
        ("set_memory_request", resources.memory),
        ("set_memory_limit", resources.memory_limit),
    ):
        if memory is not None:
            yield Call(method, (("memory", memory),), method=True)
    if resources.gpu_type is not None:
        yield Call("set_accelerator_type", (("accelerator", resources.gpu_type),), method=True)
    if resources.gpu is not None:
        yield Call("set_accelerator_limit", (("limit", resources.gpu),), method=True)


def _written(toleration: Toleration) -> Iterator[tuple[str, Any]]:
    """The toleration's keys as written, in kfp-kubernetes' order."""
    for field in fields(toleration):
        value = getattr(toleration, field.name)
        if value is not None:
            yield field.name, value
