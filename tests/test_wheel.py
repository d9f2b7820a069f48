"""The schema and templates reach an installed, non-editable wheel used outside the checkout."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

from tests.conftest import REPO, CopyCase


def test_wheel_builds_an_example_from_another_folder(tmp_path: Path, copy_case: CopyCase) -> None:
    wheels = tmp_path / "wheels"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(wheels),
            str(REPO),
        ],
        check=True,
        capture_output=True,
    )
    (wheel,) = wheels.glob("kale_yaml-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "kale_yaml/schemas/pipeline.kale.schema.json" in names
    assert "kale_yaml/templates/pipeline.py.j2" in names
    assert "kale_yaml/templates/report/run.html.j2" in names

    # Install the wheel's package alone into its own folder; the dependencies come from this environment.
    target = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(target), str(wheel)],
        check=True,
        capture_output=True,
    )
    example = copy_case(REPO / "examples" / "wine")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {**os.environ, "PYTHONPATH": str(target)}
    where = subprocess.run(
        [sys.executable, "-c", "import kale_yaml, sys; print(kale_yaml.__file__)"],
        cwd=elsewhere,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    assert where.stdout.strip().startswith(str(target))
    done = subprocess.run(
        [sys.executable, "-m", "kale_yaml", "build", str(example), "-o", str(elsewhere / "out")],
        cwd=elsewhere,
        env=env,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    assert (elsewhere / "out" / "wine-quality.pipeline.yaml").is_file()
