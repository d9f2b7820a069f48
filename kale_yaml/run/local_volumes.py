"""Volumes on a local run: a volume is its mount path as it is on this machine.

Steps run as subprocesses of this Python, so nothing can be mounted and no path is rewritten: the notebook's
code reads and writes the same paths it uses on the cluster.
- `claim`: the folder at the mount path stands for the claim's data and must exist; if it does not, the run
  stops before any step with an error saying so.
- `create`: an existing folder is used as it is; a missing one is made for the run and removed after it (also
  when a step fails) unless `keep: true`. `from_snapshot` is cluster only: such a folder starts empty.
- `steps[].volumes` cannot be enforced: every step sees every path.
Snapshots copy the folder to `.kale/snapshots/RUN/STEP/VOLUME/` (see the local snapshot component).
"""

from __future__ import annotations

import contextlib
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from kale_yaml import diagnostics as ky
from kale_yaml.errors import Collector, RunError
from kale_yaml.resolve.model import Config


@dataclass
class LocalVolumes:
    notes: list[str] = field(default_factory=list)  # how each volume was mapped, for the run's output
    removals: list[Path] = field(default_factory=list)  # volume folders made for the run, keep: false
    made: list[Path] = field(default_factory=list)  # folders made for them and their parents, parents first
    kept: list[Path] = field(default_factory=list)  # volume folders made for the run, keep: true

    def cleanup(self) -> None:
        """Remove the folders made for the run that are not kept, then the parents made for them if empty."""
        for path in self.removals:
            shutil.rmtree(path, ignore_errors=True)
        for path in reversed(self.made):
            with contextlib.suppress(OSError):  # not empty: a kept volume or someone else's file lives there
                path.rmdir()


def check(config: Config) -> None:
    """Raise `RunError` for every `claim` whose folder this machine lacks, before anything is made."""
    errors = Collector()
    for volume in config.volumes:
        path = Path(volume.mount)
        where = volume.where.child("mount")
        if volume.claim is not None and not path.is_dir():
            what = "is not a folder" if path.exists() else "does not exist on this machine"
            message = (
                f"{volume.mount} {what}; a local run uses the mount path as it is: make it a folder holding"
                f" the data of claim '{volume.claim}' (or a copy of it)"
            )
            errors.add(where.at(ky.MISSING_CLAIM_FOLDER, message))
        elif volume.create is not None and path.exists() and not path.is_dir():
            errors.add(where.at(ky.MOUNT_NOT_FOLDER, f"{volume.mount} exists and is not a folder"))
    errors.raise_if_any(RunError)


def prepare(config: Config) -> LocalVolumes:
    """Check the volumes (see `check`), make the missing folders of `create` volumes and describe every
    volume. Call `cleanup` after the run."""
    check(config)
    volumes = LocalVolumes()
    errors = Collector()
    for volume in config.volumes:
        mount = volume.mount
        if volume.create is None:
            volumes.notes.append(f"volume '{volume.name}': {mount} as it is here (claim '{volume.claim}')")
            continue
        path = Path(mount)
        restored = "; from_snapshot is cluster only" if volume.create.from_snapshot is not None else ""
        if path.is_dir():
            volumes.notes.append(
                f"volume '{volume.name}': {mount}, an existing folder, used as it is{restored}"
            )
            continue
        missing = [p for p in (path, *path.parents) if not p.exists()]
        try:
            path.mkdir(parents=True)
        except OSError as exc:
            reason = exc.strerror or str(exc)
            message = (
                f"cannot make {mount} for this run: {reason}; make the folder or choose another mount path"
            )
            errors.add(volume.where.child("mount").at(ky.CANNOT_MAKE_MOUNT, message))
            continue
        if volume.create.keep:
            volumes.made.extend(reversed(missing[1:]))  # parents only: the kept folder stays
            volumes.kept.append(path)
            volumes.notes.append(
                f"volume '{volume.name}': {mount}, made for this run and kept (keep: true){restored}"
            )
        else:
            volumes.made.extend(reversed(missing))
            volumes.removals.append(path)
            volumes.notes.append(
                f"volume '{volume.name}': {mount}, made for this run and removed after it{restored}"
            )
    if errors.errors:  # undo: nothing runs, so nothing is kept either
        volumes.removals += volumes.kept
        volumes.cleanup()
        errors.raise_if_any(RunError)
    return volumes


def snapshot_folders(root: Path) -> list[Path]:
    """The copies a run made: ROOT/STEP/VOLUME, in name order."""
    if not root.is_dir():
        return []
    return sorted(
        volume for step in root.iterdir() if step.is_dir() for volume in step.iterdir() if volume.is_dir()
    )
