"""A step's cluster settings, typed with the pipeline's defaults merged, and checked where kfp or Kubernetes
would reject what the schema let through.

Defaults: `pipeline:` may hold resources, retries, timeout, env, secrets, node_selector, tolerations, labels
and annotations for every step. A step's own key replaces the default of the same key as a whole (a step's
`resources: {memory: 8Gi}` drops `pipeline.resources.cpu` for that step; a step's `env:` replaces, and does
not extend, `pipeline.env`), as the schema's descriptions say.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from decimal import Decimal, InvalidOperation
from typing import Any

from kale_yaml import diagnostics as ky
from kale_yaml.diagnostics import Kind
from kale_yaml.errors import ClusterError as ClusterError  # it lives in errors.py now
from kale_yaml.errors import Diagnostic
from kale_yaml.resolve.model import Cluster, Config, Resources, SecretEnv, Setting, Toleration
from kale_yaml.resolve.where import Where

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
# Keys of a step that configure its task rather than its code: the defaults, and the volumes it mounts.
STEP_KEYS = (*DEFAULT_KEYS, "volumes")
LOCAL_KEYS = ("env",)  # the only ones a local run applies
CLUSTER_ONLY = tuple(key for key in DEFAULT_KEYS if key not in LOCAL_KEYS)
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

Problem = Callable[[Where, Kind, str], None]


def read_cluster(
    step: Mapping[str, Any], step_where: Where, pipeline: Mapping[str, Any], pipeline_where: Where
) -> Cluster:
    """The step's cluster settings: its own keys, else the pipeline-wide defaults; `volumes` only its own."""
    found: dict[str, Any] = {}
    for key in DEFAULT_KEYS:
        if key in step:
            value, where = step[key], step_where.child(key)
        elif key in pipeline:
            value, where = pipeline[key], pipeline_where.child(key)
        else:
            continue
        found[key] = _typed(key, value, where)
    return Cluster(**found)


def _typed(key: str, value: Any, where: Where) -> Any:
    if key == "resources":
        return Setting(_resources(value), where)
    if key == "retries":
        return int(value)
    if key == "timeout":
        return Setting(duration_seconds(value), where)
    if key == "env":
        return Setting(tuple((name, env_text(text)) for name, text in value.items()), where)
    if key == "secrets":
        return tuple(
            Setting(SecretEnv(s["secret"], s["key"], s["env"]), where.child(i)) for i, s in enumerate(value)
        )
    if key == "tolerations":
        return tuple(Setting(Toleration(**t), where.child(i)) for i, t in enumerate(value))
    return tuple((name, text) for name, text in value.items())  # node_selector, labels, annotations


def _resources(value: Mapping[str, Any]) -> Resources:
    accelerator = "gpu" in value or "gpu_type" in value
    return Resources(
        cpu=cpu_text(value["cpu"]) if "cpu" in value else None,
        cpu_limit=cpu_text(value["cpu_limit"]) if "cpu_limit" in value else None,
        memory=quantity_text(value["memory"]) if "memory" in value else None,
        memory_limit=quantity_text(value["memory_limit"]) if "memory_limit" in value else None,
        gpu=int(value["gpu"]) if "gpu" in value else None,
        gpu_type=value.get("gpu_type", DEFAULT_GPU_TYPE) if accelerator else None,
    )


def cluster_problems(config: Config) -> list[Diagnostic]:
    """What kfp or Kubernetes would reject in each step's settings; a `pipeline:` default's problem once,
    however many steps inherit it."""
    problems: list[Diagnostic] = []

    def problem(where: Where, kind: Kind, message: str) -> None:
        problems.append(where.at(kind, message))

    for step in config.steps:
        _check(step.cluster, problem)
    return list(dict.fromkeys(problems))


def _check(cluster: Cluster, problem: Problem) -> None:
    if cluster.resources is not None:
        _check_resources(cluster.resources, problem)
    if cluster.timeout is not None and cluster.timeout.value < 1:
        problem(cluster.timeout.where, ky.TIMEOUT_TOO_SHORT, "a timeout must be at least 1 second")
    env_names: dict[str, Where] = {}
    if cluster.env is not None:
        for name, _ in cluster.env.value:
            where = cluster.env.where.child(name)
            if not _reserved_env(name, where, problem):
                env_names[name] = where
    for secret in cluster.secrets:
        where, name = secret.where.child("env"), secret.value.env
        if _reserved_env(name, where, problem):
            continue
        if name in env_names:
            other = env_names[name].key
            problem(
                where,
                ky.ENV_SET_TWICE,
                f"{name} is already set by {other}; an environment variable gets one value",
            )
            continue
        env_names[name] = where
    for toleration in cluster.tolerations:
        _check_toleration(toleration, problem)


def _check_resources(setting: Setting[Resources], problem: Problem) -> None:
    resources, where = setting.value, setting.where
    cpu: dict[str, Decimal] = {}
    for key, text in (("cpu", resources.cpu), ("cpu_limit", resources.cpu_limit)):
        if text is None:
            continue
        millis = cpu_millis(text)
        if millis <= 0:
            problem(where.child(key), ky.ZERO_AMOUNT, f"{text} CPU: a CPU amount must be more than 0")
        elif millis != millis.to_integral_value():
            exact = f"{millis.normalize():f}m"
            problem(
                where.child(key),
                ky.CPU_PRECISION,
                f"{text} CPU is {exact}; Kubernetes counts CPU in whole millicores (1m = 0.001)",
            )
        else:
            cpu[key] = millis
    memory: dict[str, int] = {}
    for key, text in (("memory", resources.memory), ("memory_limit", resources.memory_limit)):
        if text is None:
            continue
        if memory_bytes(text) <= 0:
            problem(where.child(key), ky.ZERO_AMOUNT, f"{text}: an amount of memory must be more than 0")
        else:
            memory[key] = memory_bytes(text)
    if "cpu" in cpu and "cpu_limit" in cpu and cpu["cpu_limit"] < cpu["cpu"]:
        problem(
            where.child("cpu_limit"),
            ky.LIMIT_BELOW_REQUEST,
            _below(resources.cpu_limit, "cpu", resources.cpu),
        )
    if "memory" in memory and "memory_limit" in memory and memory["memory_limit"] < memory["memory"]:
        problem(
            where.child("memory_limit"),
            ky.LIMIT_BELOW_REQUEST,
            _below(resources.memory_limit, "memory", resources.memory),
        )


def _below(limit: str | None, key: str, request: str | None) -> str:
    return (
        f"the limit {limit} is less than the request ({key}: {request}); Kubernetes rejects a limit below it"
    )


def _reserved_env(name: str, where: Where, problem: Problem) -> bool:
    if name.startswith(RESERVED_ENV_PREFIX):
        problem(
            where,
            ky.RESERVED_ENV,
            f"{name}: names starting with {RESERVED_ENV_PREFIX} are kale-yaml's own; use another",
        )
        return True
    return False


def _check_toleration(setting: Setting[Toleration], problem: Problem) -> None:
    toleration, where = setting.value, setting.where
    key, operator = toleration.key or "", toleration.operator or "Equal"
    if key and not _QUALIFIED_NAME.match(key):
        problem(
            where.child("key"),
            ky.TAINT_KEY,
            f"{key!r} is not a valid taint key (e.g. gpu, example.com/dedicated)",
        )
    if not key and operator != "Exists":
        problem(
            where,
            ky.BAD_TOLERATION,
            "a toleration without a key must use operator: Exists (it then tolerates every taint)",
        )
    if operator == "Exists" and toleration.value:
        problem(
            where.child("value"),
            ky.BAD_TOLERATION,
            "with operator: Exists a toleration takes no value (any value matches)",
        )
    if toleration.toleration_seconds is not None and toleration.effect != "NoExecute":
        problem(
            where.child("toleration_seconds"), ky.BAD_TOLERATION, "toleration_seconds needs effect: NoExecute"
        )


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
