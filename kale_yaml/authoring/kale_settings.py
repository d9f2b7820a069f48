"""Kale's step settings (`limit:`, `image:`, `label:`, `annotation:`, `secret:`, `cache:` tags, also as
`steps_defaults`) and its `kubeflow_notebook` notebook metadata, as sidecar keys for `import-kale`.

Whatever has no kale-yaml equivalent goes to `warn`; nothing is dropped in silence.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from kale_yaml import diagnostics as ky
from kale_yaml.authoring.draft import pipeline_name
from kale_yaml.authoring.sidecar_writer import commented, flow, scalar
from kale_yaml.diagnostics import Kind
from kale_yaml.resolve.config import DEFAULT_IMAGE

Warn = Callable[[Kind, str], None]
KALE_METADATA_KEY = "kubeflow_notebook"
_LIMIT_TAG = re.compile(r"^limit:([_a-z\-./]+):([_a-zA-Z0-9.]+)$")
_ACCESS_MODES = {"rom": "ReadOnlyMany", "rwo": "ReadWriteOnce", "rwm": "ReadWriteMany"}
# Metadata the Kale UI keeps for itself, or that a KFP v2 pipeline with artifacts has no use for.
_QUIET_METADATA = frozenset(
    {"snapshot_volumes", "notebook_path", "marshal_volume", "marshal_path", "abs_working_dir"}
)
# Metadata read here (mapped, or left out with its own warning).
_READ_METADATA = frozenset(
    {
        "pipeline_name",
        "pipeline_description",
        "experiment_name",
        "experiment",
        "docker_image",
        "base_image",
        "steps_defaults",
        "katib_run",
        "katib_metadata",
        "kfp_host",
        "timeout",
        "volumes",
        "storage_class_name",
        "volume_access_mode",
        "autosnapshot",
    }
)


@dataclass
class Settings:
    """What a step's (or steps_defaults') tags configure, with the tags that said so."""

    values: dict[str, Any] = field(default_factory=dict)
    sources: list[str] = field(default_factory=list)


def apply_setting(tag: str, settings: Settings, warn: Warn) -> bool:
    """Read one `limit:`, `image:`, `label:`, `annotation:`, `secret:` or `cache:` tag into `settings`
    (a tag of these kinds that says something kale-yaml cannot map is a warning); False for any other tag."""
    kind, _, rest = tag.partition(":")
    values = settings.values
    problem: str | None = None
    if kind == "limit":
        match = _LIMIT_TAG.match(tag)
        if match is None:
            problem = "is not limit:RESOURCE:AMOUNT"
        elif match.group(1) in ("cpu", "memory"):
            values.setdefault("resources", {})[f"{match.group(1)}_limit"] = match.group(2)
        elif match.group(1).endswith("/gpu") and match.group(2).isdigit():
            resources = values.setdefault("resources", {})
            resources["gpu"] = int(match.group(2))
            if match.group(1) != "nvidia.com/gpu":
                resources["gpu_type"] = match.group(1)
        else:
            problem = "sets a limit other than cpu, memory or a whole number of GPUs"
    elif kind == "image" and rest:
        values["image"] = rest
    elif kind in ("label", "annotation") and ":" in rest:
        key, _, value = rest.partition(":")
        values.setdefault(f"{kind}s", {})[key] = value
    elif kind == "secret" and rest:
        parts = rest.split(":")
        if len(parts) not in (2, 3) or not all(parts):
            problem = "is not secret:SECRET:KEY or secret:SECRET:KEY:ENV"
        else:
            env = parts[2] if len(parts) == 3 else re.sub(r"[^A-Za-z0-9_]", "_", parts[1]).upper()
            values.setdefault("secrets", []).append({"secret": parts[0], "key": parts[1], "env": env})
    elif kind == "cache" and rest.lower() in _BOOLEANS:
        values["cache"] = _BOOLEANS[rest.lower()]
    else:
        return False
    if problem is None:
        settings.sources.append(tag)
    else:
        warn(ky.KALE_LEFT_OUT, f"tag '{tag}' {problem}; left out")
    return True


_BOOLEANS = {
    "true": True,
    "false": False,
    "yes": True,
    "no": False,
    "on": True,
    "off": False,
    "enabled": True,
    "disabled": False,
}


def pipeline_lines(kale: dict[str, Any], stem: str, warn: Warn) -> list[str]:
    """The `pipeline:` section from `kubeflow_notebook` (pipeline_name, description, experiment, image,
    steps_defaults); what has no equivalent is a warning."""
    lines = ["pipeline:"]
    raw_name = kale.get("pipeline_name")
    name = pipeline_name(str(raw_name)) if raw_name else pipeline_name(stem)
    source = "kubeflow_notebook.pipeline_name" if raw_name else "no pipeline_name: named after the notebook"
    if raw_name and name != raw_name:
        warn(ky.KALE_RENAMED, f"pipeline name '{raw_name}' is '{name}' here: a Kubernetes name")
    lines.append(commented(f"  name: {name}", source))
    if kale.get("pipeline_description"):
        lines.append(f"  description: {scalar(str(kale['pipeline_description']))}")
    experiment = kale.get("experiment_name")
    if not experiment and isinstance(kale.get("experiment"), dict):
        experiment = kale["experiment"].get("name")
    if experiment:
        lines.append(f"  experiment: {scalar(str(experiment))}")
    image = kale.get("base_image") or kale.get("docker_image")
    if image:
        lines.append(commented(f"  image: {scalar(str(image))}", "kubeflow_notebook.docker_image"))
    else:
        lines.append(commented(f"  # image: {DEFAULT_IMAGE}", "Kale used the notebook server's image"))
    # Kale installed every import of the notebook in every step; auto gives each step its own, pinned.
    lines.append(commented("  packages: auto", "each step installs what its cells import, pinned"))
    defaults = Settings()
    for tag in kale.get("steps_defaults") or []:
        if not isinstance(tag, str) or not apply_setting(tag, defaults, warn):
            warn(ky.KALE_LEFT_OUT, f"steps_defaults entry {tag!r} is not a tag kale-yaml knows; left out")
    for key, value in defaults.values.items():
        lines.append(commented(f"  {key}: {flow(value)}", "kubeflow_notebook.steps_defaults"))
    if kale.get("katib_run"):
        warn(
            ky.KALE_LEFT_OUT,
            "kubeflow_notebook.katib_run: Katib tuning has no kale-yaml equivalent; left out",
        )
    if kale.get("kfp_host"):
        warn(
            ky.KALE_LEFT_OUT,
            "kubeflow_notebook.kfp_host: kale-yaml takes the server per run: kale-yaml run --host URL",
        )
    if kale.get("timeout"):
        warn(
            ky.KALE_LEFT_OUT,
            f"kubeflow_notebook.timeout ({kale['timeout']}s for the whole run) left out: kale-yaml"
            " times steps (steps[].timeout or pipeline.timeout)",
        )
    for key in sorted(set(kale) - _READ_METADATA - _QUIET_METADATA):
        warn(ky.KALE_LEFT_OUT, f"kubeflow_notebook.{key} has no kale-yaml equivalent; left out")
    return lines


def volume_lines(kale: dict[str, Any], warn: Warn) -> list[str]:
    """`volumes:` and `snapshots:` from `kubeflow_notebook` volumes and autosnapshot."""
    volumes: list[tuple[dict[str, Any], str]] = []
    snapshots: list[tuple[str, str, str]] = []
    raw_volumes = kale.get("volumes") or []
    for i, raw in enumerate(raw_volumes if isinstance(raw_volumes, list) else []):
        where = f"kubeflow_notebook.volumes[{i}]"
        volume = _volume(raw, i, where, kale, warn)
        if volume is None:
            continue
        name = volume["name"]
        if raw.get("annotations"):
            warn(ky.KALE_LEFT_OUT, f"{where}.annotations left out: kale-yaml sets no annotations on claims")
        if raw.get("snapshot"):
            snapshots.append((name, "after_run", f"{where}.snapshot"))
            if raw.get("snapshot_name"):
                warn(
                    ky.KALE_LEFT_OUT,
                    f"{where}.snapshot_name left out: kale-yaml names snapshots after the run",
                )
        volumes.append((volume, f"{where}, type {raw['type']}"))
    if kale.get("autosnapshot"):
        for volume, _ in volumes:
            snapshots.append((volume["name"], "before_each_step", "kubeflow_notebook.autosnapshot"))
            snapshots.append((volume["name"], "after_run", "kubeflow_notebook.autosnapshot"))
    lines: list[str] = []
    if volumes:
        lines.append("volumes:")
        for volume, source in volumes:
            lines.append(commented(f"  - name: {scalar(volume['name'])}", source))
            for key in ("mount", "claim", "create"):
                if key in volume:
                    lines.append(f"    {key}: {flow(volume[key])}")
    unique = list(dict.fromkeys((name, when) for name, when, _ in snapshots))
    if unique:
        lines.append("snapshots:")
        for name, when in unique:
            source = next(s for n, w, s in snapshots if (n, w) == (name, when))
            lines.append(f"  - volume: {scalar(name)}")
            lines.append(commented(f"    when: {when}", source))
    return lines


def _volume(raw: Any, index: int, where: str, kale: dict[str, Any], warn: Warn) -> dict[str, Any] | None:
    """One of Kale's volumes as a sidecar volume (None, with a warning, when it cannot be one)."""
    if not isinstance(raw, dict) or not raw.get("name") or not raw.get("mount_point"):
        warn(ky.KALE_LEFT_OUT, f"{where} needs a name and a mount_point; left out")
        return None
    name = (
        re.sub(r"[^a-z0-9-]+", "-", str(raw["name"]).lower()).strip("-")[:63].strip("-") or f"volume-{index}"
    )
    volume: dict[str, Any] = {"name": name, "mount": str(raw["mount_point"])}
    kind = raw.get("type")
    if kind == "pvc":
        volume["claim"] = str(raw["name"])
    elif kind == "new_pvc":
        if not raw.get("size"):
            warn(ky.KALE_LEFT_OUT, f"{where} (new_pvc) has no size; left out")
            return None
        create: dict[str, Any] = {"size": f"{raw['size']}{raw.get('size_type') or ''}"}
        storage_class = raw.get("storage_class_name") or kale.get("storage_class_name")
        if storage_class:
            create["storage_class"] = str(storage_class)
        mode = raw.get("volume_access_mode") or kale.get("volume_access_mode") or "rwm"
        create["access_modes"] = [_ACCESS_MODES.get(str(mode), str(mode))]
        volume["create"] = create
    else:
        warn(
            ky.KALE_LEFT_OUT,
            f"{where} is of type {kind!r}; kale-yaml mounts claims (pvc) and new claims (new_pvc) only;"
            " left out",
        )
        return None
    return volume
