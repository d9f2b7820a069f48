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

from kale_yaml.names import unique_name
from kale_yaml.plan.dag import Pipeline
from kale_yaml.render.calls import Code
from kale_yaml.resolve.model import Config, VolumeConfig
from kale_yaml.resolve.volumes import AFTER_RUN, mounted

SNAPSHOT_GROUP = "snapshot.storage.k8s.io"
RUN_ID_LENGTH = 36  # a KFP run id is a UUID
_NAME_ROOM = 253 - 1 - RUN_ID_LENGTH  # a Kubernetes object name is at most 253 characters


@dataclass(frozen=True)
class Volume:
    name: str
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


def plan_volumes(pipeline: Pipeline, task_names: dict[str, str], taken: set[str]) -> VolumePlan:
    """Names for the volumes' and snapshots' tasks (added to `taken`), and who mounts what; the settings
    were checked by resolve."""
    config = pipeline.config
    volumes = {v.name: _volume(v, taken) for v in config.volumes}
    nested = any(v.created and not v.keep for v in volumes.values())

    def claim(volume: Volume) -> Any:
        if volume.claim is not None:
            return volume.claim
        return Code(volume.parameter if nested else f"{volume.variable}.outputs['name']")

    mounts: dict[str, tuple[tuple[Volume, Any], ...]] = {}
    for step in pipeline.steps:
        mounted_here = (volumes[v.name] for v in mounted(step.config, config.volumes))
        mounts[step.name] = tuple((volume, claim(volume)) for volume in mounted_here)

    before: dict[str, list[Snapshot]] = {}
    after_run: list[Snapshot] = []
    used_names: set[str] = set()
    every_task = tuple(task_names[s.name] for s in pipeline.steps)
    for name, when in dict.fromkeys((s.volume, s.when) for s in config.snapshots):  # resolve refused repeats
        volume = volumes[name]
        if when == AFTER_RUN:
            after_run.append(_snapshot(config, volume, claim(volume), None, every_task, taken, used_names))
            continue
        for step in pipeline.steps:
            if any(v is volume for v, _ in mounts[step.name]):
                waits = tuple(task_names[name] for name in step.upstream)
                taken_before = _snapshot(config, volume, claim(volume), step.name, waits, taken, used_names)
                before.setdefault(step.name, []).append(taken_before)
    return VolumePlan(
        volumes=tuple(volumes.values()),
        mounts=mounts,
        before={step: tuple(snapshots) for step, snapshots in before.items()},
        after_run=tuple(after_run),
        nested=nested,
        deleted=tuple(v for v in volumes.values() if v.created and not v.keep),
    )


def _volume(config: VolumeConfig, taken: set[str]) -> Volume:
    base = _identifier(config.name)
    arguments: list[tuple[str, Any]] = []
    create = config.create
    if create is not None:
        arguments = [
            ("pvc_name_suffix", f"-{config.name}"),
            ("access_modes", list(create.access_modes)),
            ("size", create.size),
        ]
        if create.storage_class is not None:
            arguments.append(("storage_class_name", create.storage_class))
        if create.from_snapshot is not None:
            source = {"apiGroup": SNAPSHOT_GROUP, "kind": "VolumeSnapshot", "name": create.from_snapshot}
            arguments.append(("data_source", source))
    return Volume(
        name=config.name,
        mount=config.mount,
        claim=config.claim,
        create=tuple(arguments),
        keep=create is not None and create.keep,
        variable=unique_name(f"{base}_volume", taken) if create is not None else "",
        parameter=unique_name(f"{base}_claim", taken) if create is not None else "",
    )


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
