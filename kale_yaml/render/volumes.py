"""Volumes and snapshots of a run, planned once for the cluster and the local variant of the pipeline.

- `claim` volumes mount an existing PersistentVolumeClaim; `create` volumes are made for the run with
  kfp-kubernetes' CreatePVC and, unless `keep: true`, deleted by DeletePVC as the exit task of an exit handler
  around every step, so they go also when a step fails. kfp allows an exit task only inputs that no other
  task produces, so the steps then run inside a pipeline of their own (`nested`) that receives the new claims'
  names as parameters.
- `steps[].volumes` limits which volumes a step mounts (default: every declared volume). A step that mounts a
  `create` volume is never taken from the cache: the volume is new in every run, and a cached step would not
  write to it.
- Snapshots: `before_each_step` before every step that mounts the volume (once the steps it waits for are
  done), `after_run` once every step is done. On a cluster a generated component makes a VolumeSnapshot named
  `VOLUME-STEP-RUNID` (`VOLUME-after-run-RUNID`); a local run copies the folder to
  `.kale/snapshots/RUN/STEP/VOLUME/` (`after_run` for STEP).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from kale_yaml.errors import Diagnostic
from kale_yaml.names import unique_name
from kale_yaml.plan.dag import Pipeline
from kale_yaml.resolve.cluster import Code, memory_bytes, quantity_text
from kale_yaml.resolve.model import Config

SNAPSHOT_GROUP = "snapshot.storage.k8s.io"
AFTER_RUN = "after_run"
RUN_ID_LENGTH = 36  # a KFP run id is a UUID
_NAME_ROOM = 253 - 1 - RUN_ID_LENGTH  # a Kubernetes object name is at most 253 characters


@dataclass(frozen=True)
class Volume:
    name: str
    index: int  # position in `volumes:`, for messages
    mount: str
    claim: str | None  # the existing claim; None for a volume made for the run
    create: tuple[tuple[str, Any], ...]  # CreatePVC's keyword arguments
    keep: bool
    variable: str  # the CreatePVC task in the pipeline function
    parameter: str  # the new claim's name as a parameter of the steps' own pipeline

    @property
    def created(self) -> bool:
        return self.claim is None


@dataclass(frozen=True)
class Snapshot:
    task: str  # the snapshot task's variable
    volume: str
    step: str | None  # the step it is taken before; None: after the run
    name: str  # the VolumeSnapshot's name, before `-RUNID`
    claim: Any  # the claim's name: a literal, or Code for a claim made for the run
    path: str  # the mount path: what a local run copies
    folder: str  # .kale/snapshots/RUN/FOLDER/VOLUME on a local run
    labels: dict[str, str]
    after: tuple[str, ...]  # tasks it waits for


@dataclass(frozen=True)
class VolumePlan:
    volumes: tuple[Volume, ...]
    mounts: dict[str, tuple[tuple[Volume, Any], ...]]  # step -> (volume, claim expression) it mounts
    before: dict[str, tuple[Snapshot, ...]]  # step -> snapshots taken just before it
    after_run: tuple[Snapshot, ...]
    nested: bool  # the steps run in a pipeline of their own whose exit handler deletes `deleted`
    deleted: tuple[Volume, ...]

    def uncached(self, step: str) -> bool:
        return any(volume.created for volume, _ in self.mounts.get(step, ()))


def plan_volumes(
    pipeline: Pipeline, task_names: dict[str, str], taken: set[str], problems: list[Diagnostic]
) -> VolumePlan:
    config = pipeline.config
    volumes = tuple(_volume(config, i, raw, taken, problems) for i, raw in enumerate(config.volumes))
    _check_mounts(config, volumes, problems)
    nested = any(v.created and not v.keep for v in volumes)

    def claim(volume: Volume) -> Any:
        if volume.claim is not None:
            return volume.claim
        return Code(volume.parameter if nested else f"{volume.variable}.outputs['name']")

    by_name = {v.name: v for v in volumes}
    mounts: dict[str, tuple[tuple[Volume, Any], ...]] = {}
    for step in pipeline.steps:
        names = step.config.settings.get("volumes", [v.name for v in volumes])
        mounts[step.name] = tuple((by_name[n], claim(by_name[n])) for n in names if n in by_name)

    before: dict[str, list[Snapshot]] = {}
    after_run: list[Snapshot] = []
    used_names: set[str] = set()
    seen: dict[tuple[str, str], int] = {}
    every_task = tuple(task_names[s.name] for s in pipeline.steps)
    for i, raw in enumerate(config.snapshots):
        volume = by_name.get(raw["volume"])
        if volume is None:  # pragma: no cover - resolve reports unknown volumes
            continue
        when = raw["when"]
        if (volume.name, when) in seen:
            message = (
                f"volume '{volume.name}' already has a {when} snapshot (snapshots[{seen[volume.name, when]}])"
            )
            problems.append(config.document.diagnostic(("snapshots", i), message))
            continue
        seen[volume.name, when] = i
        if when == AFTER_RUN:
            after_run.append(_snapshot(config, volume, claim(volume), None, every_task, taken, used_names))
            continue
        for step in pipeline.steps:
            if any(v is volume for v, _ in mounts[step.name]):
                waits = tuple(task_names[name] for name in step.upstream)
                snapshot = _snapshot(config, volume, claim(volume), step.name, waits, taken, used_names)
                before.setdefault(step.name, []).append(snapshot)
    if after_run and AFTER_RUN in before:
        message = (
            f"step '{AFTER_RUN}' and an after_run snapshot would share the folder"
            f" .kale/snapshots/RUN/{AFTER_RUN}/; rename the step"
        )
        problems.append(config.document.diagnostic(("steps", config.step(AFTER_RUN).index, "name"), message))
    return VolumePlan(
        volumes=volumes,
        mounts=mounts,
        before={step: tuple(snapshots) for step, snapshots in before.items()},
        after_run=tuple(after_run),
        nested=nested,
        deleted=tuple(v for v in volumes if v.created and not v.keep),
    )


def _volume(
    config: Config, index: int, raw: dict[str, Any], taken: set[str], problems: list[Diagnostic]
) -> Volume:
    base = _identifier(raw["name"])
    create: dict[str, Any] = raw.get("create") or {}
    arguments: list[tuple[str, Any]] = []
    if "create" in raw:
        size = quantity_text(create["size"])
        if memory_bytes(size) <= 0:
            problems.append(
                config.document.diagnostic(
                    ("volumes", index, "create", "size"), f"{size}: a size must be more than 0"
                )
            )
        arguments = [
            ("pvc_name_suffix", f"-{raw['name']}"),
            ("access_modes", list(create.get("access_modes") or ["ReadWriteOnce"])),
            ("size", size),
        ]
        if "storage_class" in create:
            arguments.append(("storage_class_name", create["storage_class"]))
        if "from_snapshot" in create:
            source = {"apiGroup": SNAPSHOT_GROUP, "kind": "VolumeSnapshot", "name": create["from_snapshot"]}
            arguments.append(("data_source", source))
    return Volume(
        name=raw["name"],
        index=index,
        mount=raw["mount"],
        claim=raw.get("claim"),
        create=tuple(arguments),
        keep=bool(create.get("keep", False)),
        variable=unique_name(f"{base}_volume", taken) if "create" in raw else "",
        parameter=unique_name(f"{base}_claim", taken) if "create" in raw else "",
    )


def _check_mounts(config: Config, volumes: tuple[Volume, ...], problems: list[Diagnostic]) -> None:
    first: dict[str, Volume] = {}
    for volume in volumes:
        path = volume.mount.rstrip("/") or "/"
        other = first.setdefault(path, volume)
        if other is not volume:
            message = f"volume '{other.name}' is mounted at {other.mount} too; a path holds one volume"
            problems.append(config.document.diagnostic(("volumes", volume.index, "mount"), message))


def _snapshot(
    config: Config,
    volume: Volume,
    claim: Any,
    step: str | None,
    after: tuple[str, ...],
    taken: set[str],
    used_names: set[str],
) -> Snapshot:
    part = step.replace("_", "-") if step else "after-run"
    name = f"{volume.name}-{part}"[:_NAME_ROOM].rstrip("-")
    candidate, n = name, 1
    while candidate in used_names:  # "data" + "x_y" and "data-x" + "y" would otherwise meet
        n += 1
        candidate = f"{name[: _NAME_ROOM - len(str(n)) - 1]}-{n}"
    used_names.add(candidate)
    labels = {"kale-yaml/pipeline": config.name, "kale-yaml/volume": volume.name}
    if step is None or len(step) <= 63:
        labels["kale-yaml/step"] = step or AFTER_RUN
    base = _identifier(volume.name)
    task = f"snapshot_{base}_before_{step}" if step else f"snapshot_{base}_after_run"
    return Snapshot(
        task=unique_name(task, taken),
        volume=volume.name,
        step=step,
        name=candidate,
        claim=claim,
        path=volume.mount,
        folder=step or AFTER_RUN,
        labels=labels,
        after=after,
    )


def _identifier(name: str) -> str:
    text = re.sub(r"[^A-Za-z0-9_]", "_", name)
    return text if text[:1].isalpha() else f"v{text}"
