"""Shared fixtures: snapshots live in tests/snapshots/, generated code as real .py files."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from syrupy.assertion import SnapshotAssertion
from syrupy.extensions.amber import AmberSnapshotExtension
from syrupy.extensions.single_file import SingleFileSnapshotExtension, WriteMode
from syrupy.location import PyTestLocation

TESTS = Path(__file__).parent
CASES = TESTS / "cases"
SNAPSHOTS = TESTS / "snapshots"
REPO = TESTS.parent


class TextSnapshots(AmberSnapshotExtension):
    @classmethod
    def dirname(cls, *, test_location: PyTestLocation) -> str:
        return str(SNAPSHOTS)


class PythonSnapshots(SingleFileSnapshotExtension):
    """One reviewable .py file per generated pipeline."""

    _write_mode = WriteMode.TEXT
    file_extension = "py"

    @classmethod
    def dirname(cls, *, test_location: PyTestLocation) -> str:
        return str(SNAPSHOTS / test_location.basename)


@pytest.fixture(autouse=True)
def _no_kfp_server(monkeypatch: pytest.MonkeyPatch) -> None:
    """A developer's KFP_HOST must not send the tests' runs to a real server."""
    monkeypatch.delenv("KFP_HOST", raising=False)


@pytest.fixture
def snapshot(snapshot: SnapshotAssertion) -> SnapshotAssertion:
    return snapshot.use_extension(TextSnapshots)


@pytest.fixture
def code_snapshot(snapshot: SnapshotAssertion) -> SnapshotAssertion:
    return snapshot.use_extension(PythonSnapshots)


def case_dirs(kind: str) -> list[Path]:
    return sorted(p for p in (CASES / kind).iterdir() if (p / "pipeline.kale.yaml").is_file())


CopyCase = Callable[[Path], Path]


@pytest.fixture
def copy_case(tmp_path: Path) -> CopyCase:
    """Copy a case or example folder to a temporary place, so builds never write into the repo."""

    def copy(source: Path) -> Path:
        target = tmp_path / source.name
        shutil.copytree(source, target, ignore=shutil.ignore_patterns(".kale"))
        return target

    return copy
