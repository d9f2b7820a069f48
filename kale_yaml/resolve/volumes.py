"""Volumes and snapshots, typed, and checked where Kubernetes or the run's folders would clash.

- `steps[].volumes` limits which volumes a step mounts (default: every declared volume).
- A snapshot is taken `before_each_step` that mounts its volume, or once `after_run`; one of each per volume.
  A local run copies a snapshot to `.kale/snapshots/RUN/STEP/VOLUME/` (`after_run` for STEP), so a step named
  `after_run` cannot have snapshots beside an after_run snapshot.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from kale_yaml import diagnostics as ky
from kale_yaml.errors import Diagnostic
from kale_yaml.resolve.cluster import memory_bytes, quantity_text
from kale_yaml.resolve.model import Config, NewClaim, SnapshotConfig, StepConfig, VolumeConfig
from kale_yaml.resolve.where import Locator

AFTER_RUN = "after_run"
DEFAULT_ACCESS_MODES = ("ReadWriteOnce",)


def read_volumes(raw: Sequence[Mapping[str, Any]], locator: Locator) -> tuple[VolumeConfig, ...]:
    return tuple(_volume(index, volume, locator) for index, volume in enumerate(raw))


def _volume(index: int, raw: Mapping[str, Any], locator: Locator) -> VolumeConfig:
    create: NewClaim | None = None
    if "create" in raw:
        spec: Mapping[str, Any] = raw["create"] or {}
        create = NewClaim(
            size=quantity_text(spec["size"]),
            access_modes=tuple(spec.get("access_modes") or DEFAULT_ACCESS_MODES),
            storage_class=spec.get("storage_class"),
            from_snapshot=spec.get("from_snapshot"),
            keep=bool(spec.get("keep", False)),
        )
    return VolumeConfig(
        name=raw["name"],
        index=index,
        mount=raw["mount"],
        claim=raw.get("claim"),
        create=create,
        where=locator.at(("volumes", index)),
    )


def read_snapshots(raw: Sequence[Mapping[str, Any]], locator: Locator) -> tuple[SnapshotConfig, ...]:
    return tuple(
        SnapshotConfig(volume=s["volume"], when=s["when"], where=locator.at(("snapshots", i)))
        for i, s in enumerate(raw)
    )


def mounted(step: StepConfig, volumes: Sequence[VolumeConfig]) -> tuple[VolumeConfig, ...]:
    """The volumes a step mounts, in the order it names them (every declared volume if it names none)."""
    by_name = {volume.name: volume for volume in volumes}
    names = step.volumes if step.volumes is not None else tuple(by_name)
    return tuple(by_name[name] for name in names if name in by_name)


def volume_problems(config: Config) -> list[Diagnostic]:
    """Sizes of volumes made for the run, mount paths, and snapshots that would clash."""
    problems: list[Diagnostic] = []
    first: dict[str, VolumeConfig] = {}
    for volume in config.volumes:
        if volume.create is not None and memory_bytes(volume.create.size) <= 0:
            where = volume.where.child("create", "size")
            problems.append(where.at(ky.ZERO_AMOUNT, f"{volume.create.size}: a size must be more than 0"))
        other = first.setdefault(volume.mount.rstrip("/") or "/", volume)
        if other is not volume:
            message = f"volume '{other.name}' is mounted at {other.mount} too; a path holds one volume"
            problems.append(volume.where.child("mount").at(ky.SHARED_MOUNT, message))
    problems += _snapshot_problems(config)
    return problems


def _snapshot_problems(config: Config) -> list[Diagnostic]:
    problems: list[Diagnostic] = []
    known = {volume.name for volume in config.volumes}
    seen: dict[tuple[str, str], int] = {}
    before_each: set[str] = set()
    for i, snapshot in enumerate(config.snapshots):
        if snapshot.volume not in known:  # pragma: no cover - resolve reports unknown volumes
            continue
        if (snapshot.volume, snapshot.when) in seen:
            earlier = seen[snapshot.volume, snapshot.when]
            message = (
                f"volume '{snapshot.volume}' already has a {snapshot.when} snapshot (snapshots[{earlier}])"
            )
            problems.append(snapshot.where.at(ky.DUPLICATE_SNAPSHOT, message))
            continue
        seen[snapshot.volume, snapshot.when] = i
        if snapshot.when != AFTER_RUN:
            before_each.add(snapshot.volume)
    step = config.steps_by_name.get(AFTER_RUN)
    after_run = any(when == AFTER_RUN for _, when in seen)
    if step is not None and after_run and any(v.name in before_each for v in mounted(step, config.volumes)):
        message = (
            f"step '{AFTER_RUN}' and an after_run snapshot would share the folder"
            f" .kale/snapshots/RUN/{AFTER_RUN}/; rename the step"
        )
        problems.append(step.where.child("name").at(ky.SNAPSHOT_FOLDER_CLASH, message))
    return problems
