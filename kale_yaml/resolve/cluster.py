"""A step's cluster settings as kfp task methods and kfp-kubernetes calls, checked where kfp or Kubernetes
would reject what the schema let through.

Defaults: `pipeline:` may hold resources, retries, timeout, env, secrets, node_selector, tolerations, labels
and annotations for every step. A step's own key replaces the default of the same key as a whole (a step's
`resources: {memory: 8Gi}` drops `pipeline.resources.cpu` for that step; a step's `env:` replaces, and does
not extend, `pipeline.env`), as the schema's descriptions say.

Every value becomes plain data (str, int, list, dict) that the template writes with `pyliteral.literal`; the
only non-literal arguments are expressions kale-yaml itself makes (`Code`).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from kale_yaml.errors import Diagnostic, KaleYamlError
from kale_yaml.load.document import KeyPath, format_path
from kale_yaml.resolve.model import Config, StepConfig

# Keys `pipeline:` may set for every step, in the order their calls appear in the generated code.
DEFAULT_KEYS = (
    "resources",
    "retries",
    "timeout",
    "env",
    "secrets",
    "node_selector",
    "tolerations",
    "labels",
    "annotations",
)
DEFAULT_GPU_TYPE = "nvidia.com/gpu"
RESERVED_ENV_PREFIX = "KALE_YAML_"
_MEMORY_FACTORS = {
    "": 1,
    "K": 10**3,
    "M": 10**6,
    "G": 10**9,
    "T": 10**12,
    "P": 10**15,
    "E": 10**18,
    "Ki": 2**10,
    "Mi": 2**20,
    "Gi": 2**30,
    "Ti": 2**40,
    "Pi": 2**50,
    "Ei": 2**60,
}
_MEMORY = re.compile(r"^([0-9]+)(Ei|Pi|Ti|Gi|Mi|Ki|E|P|T|G|M|K)?$")
_DURATION = re.compile(r"^(?:([0-9]+)h)?(?:([0-9]+)m)?(?:([0-9]+)s)?$")
_QUALIFIED_NAME = re.compile(
    r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$"
)


class ClusterError(KaleYamlError):
    """A cluster setting that kfp or Kubernetes would reject, although the schema allows its form."""


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


Problem = Callable[[KeyPath, str], None]


@dataclass(frozen=True)
class Setting:
    """A step's effective value for one key, and where it is written (the step's key or `pipeline.KEY`)."""

    value: Any
    path: KeyPath


def effective(config: Config, step: StepConfig) -> dict[str, Setting]:
    """The step's cluster keys: its own, else the pipeline-wide default; `volumes` only from the step."""
    pipeline: dict[str, Any] = config.document.data.get("pipeline") or {}
    found: dict[str, Setting] = {}
    for key in DEFAULT_KEYS:
        if key in step.settings:
            found[key] = Setting(step.settings[key], ("steps", step.index, key))
        elif key in pipeline:
            found[key] = Setting(pipeline[key], ("pipeline", key))
    return found


def step_calls(config: Config, step: StepConfig, problems: list[Diagnostic]) -> list[Call]:
    """The calls for every key but volumes (see volumes.py), in DEFAULT_KEYS order; problems are appended."""
    settings = effective(config, step)
    document = config.document
    calls: list[Call] = []

    def problem(path: KeyPath, message: str) -> None:
        problems.append(document.diagnostic(path, message))

    if "resources" in settings:
        calls += _resources(settings["resources"], problem)
    if "retries" in settings and settings["retries"].value:
        calls.append(Call("set_retry", (("num_retries", int(settings["retries"].value)),), method=True))
    if "timeout" in settings:
        seconds = duration_seconds(settings["timeout"].value)
        if seconds < 1:
            problem(settings["timeout"].path, "a timeout must be at least 1 second")
        else:
            calls.append(Call("set_timeout", (("seconds", seconds),)))
    env_names: dict[str, KeyPath] = {}
    if "env" in settings:
        for name, value in settings["env"].value.items():
            path = (*settings["env"].path, name)
            if _reserved_env(name, path, problem):
                continue
            env_names[name] = path
            calls.append(Call("set_env_variable", (("name", name), ("value", env_text(value))), method=True))
    if "secrets" in settings:
        for i, secret in enumerate(settings["secrets"].value):
            path = (*settings["secrets"].path, i, "env")
            name = secret["env"]
            if _reserved_env(name, path, problem):
                continue
            if name in env_names:
                other = format_path(env_names[name])
                problem(path, f"{name} is already set by {other}; an environment variable gets one value")
                continue
            env_names[name] = path
            calls.append(
                Call(
                    "use_secret_as_env",
                    (("secret_name", secret["secret"]), ("secret_key_to_env", {secret["key"]: name})),
                )
            )
    if "node_selector" in settings:
        for key, value in settings["node_selector"].value.items():
            calls.append(Call("add_node_selector", (("label_key", key), ("label_value", value))))
    if "tolerations" in settings:
        for i, toleration in enumerate(settings["tolerations"].value):
            path = (*settings["tolerations"].path, i)
            if _toleration_ok(toleration, path, problem):
                calls.append(Call("add_toleration", tuple(_toleration_arguments(toleration))))
    if "labels" in settings:
        for key, value in settings["labels"].value.items():
            calls.append(Call("add_pod_label", (("label_key", key), ("label_value", value))))
    if "annotations" in settings:
        for key, value in settings["annotations"].value.items():
            calls.append(Call("add_pod_annotation", (("annotation_key", key), ("annotation_value", value))))
    return calls


def _resources(setting: Setting, problem: Problem) -> Iterator[Call]:
    resources: dict[str, Any] = setting.value
    cpu: dict[str, Decimal] = {}
    for key, method in (("cpu", "set_cpu_request"), ("cpu_limit", "set_cpu_limit")):
        if key in resources:
            text = cpu_text(resources[key])
            millis = cpu_millis(text)
            path = (*setting.path, key)
            if millis <= 0:
                problem(path, f"{text} CPU: a CPU amount must be more than 0")
            elif millis != millis.to_integral_value():
                exact = f"{millis.normalize():f}m"
                problem(
                    path, f"{text} CPU is {exact}; Kubernetes counts CPU in whole millicores (1m = 0.001)"
                )
            else:
                cpu[key] = millis
                yield Call(method, (("cpu", text),), method=True)
    memory: dict[str, int] = {}
    for key, method in (("memory", "set_memory_request"), ("memory_limit", "set_memory_limit")):
        if key in resources:
            text = quantity_text(resources[key])
            if memory_bytes(text) <= 0:
                problem((*setting.path, key), f"{text}: an amount of memory must be more than 0")
            else:
                memory[key] = memory_bytes(text)
                yield Call(method, (("memory", text),), method=True)
    if "cpu" in cpu and "cpu_limit" in cpu and cpu["cpu_limit"] < cpu["cpu"]:
        limit, request = cpu_text(resources["cpu_limit"]), cpu_text(resources["cpu"])
        problem((*setting.path, "cpu_limit"), _below(limit, "cpu", request))
    if "memory" in memory and "memory_limit" in memory and memory["memory_limit"] < memory["memory"]:
        limit, request = quantity_text(resources["memory_limit"]), quantity_text(resources["memory"])
        problem((*setting.path, "memory_limit"), _below(limit, "memory", request))
    if "gpu" in resources or "gpu_type" in resources:
        accelerator = resources.get("gpu_type", DEFAULT_GPU_TYPE)
        yield Call("set_accelerator_type", (("accelerator", accelerator),), method=True)
        if "gpu" in resources:
            yield Call("set_accelerator_limit", (("limit", int(resources["gpu"])),), method=True)


def _below(limit: str, key: str, request: str) -> str:
    return (
        f"the limit {limit} is less than the request ({key}: {request}); Kubernetes rejects a limit below it"
    )


def _reserved_env(name: str, path: KeyPath, problem: Problem) -> bool:
    if name.startswith(RESERVED_ENV_PREFIX):
        problem(path, f"{name}: names starting with {RESERVED_ENV_PREFIX} are kale-yaml's own; use another")
        return True
    return False


def _toleration_ok(toleration: dict[str, Any], path: KeyPath, problem: Problem) -> bool:
    ok = True
    key, operator = toleration.get("key", ""), toleration.get("operator", "Equal")
    if key and not _QUALIFIED_NAME.match(key):
        problem((*path, "key"), f"{key!r} is not a valid taint key (e.g. gpu, example.com/dedicated)")
        ok = False
    if not key and operator != "Exists":
        problem(path, "a toleration without a key must use operator: Exists (it then tolerates every taint)")
        ok = False
    if operator == "Exists" and toleration.get("value"):
        problem((*path, "value"), "with operator: Exists a toleration takes no value (any value matches)")
        ok = False
    if "toleration_seconds" in toleration and toleration.get("effect") != "NoExecute":
        problem((*path, "toleration_seconds"), "toleration_seconds needs effect: NoExecute")
        ok = False
    return ok


def _toleration_arguments(toleration: dict[str, Any]) -> Iterator[tuple[str, Any]]:
    for key in ("key", "operator", "value", "effect", "toleration_seconds"):
        if key in toleration:
            yield key, toleration[key]


def cpu_text(value: int | float | str) -> str:
    """A CPU amount as kfp takes it: "500m", "2", "0.5" (numbers written without an exponent)."""
    if isinstance(value, str):
        return value
    if isinstance(value, int):
        return str(value)
    return format(Decimal(repr(value)).normalize(), "f")


def cpu_millis(text: str) -> Decimal:
    try:
        return Decimal(text[:-1]) if text.endswith("m") else Decimal(text) * 1000
    except InvalidOperation:  # pragma: no cover - the schema's pattern admits only numbers
        return Decimal(0)


def quantity_text(value: int | str) -> str:
    """A memory or storage amount as kfp and Kubernetes take it: "4Gi", or a number of bytes as text."""
    return value if isinstance(value, str) else str(value)


def memory_bytes(text: str) -> int:
    match = _MEMORY.match(text)
    if not match:  # pragma: no cover - the schema's pattern admits only these forms
        return 0
    return int(match.group(1)) * _MEMORY_FACTORS[match.group(2) or ""]


def duration_seconds(value: int | str) -> int:
    """`90s`, `30m`, `2h`, `1h30m` or a whole number of seconds, in seconds."""
    if isinstance(value, int):
        return value
    match = _DURATION.match(value)
    if not match:  # pragma: no cover - the schema's pattern admits only these forms
        return 0
    hours, minutes, seconds = (int(g) if g else 0 for g in match.groups())
    return hours * 3600 + minutes * 60 + seconds


def env_text(value: str | int | float | bool) -> str:
    """An environment value as text: true/false for booleans (as YAML writes them), numbers as Python does."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
