"""Section `cli`: `kale-yaml validate` and `kale-yaml build` against the time to import what they need."""

from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path

from bench.common import REPO, Row, Section, Settings, child_env, ratio_row, run_command

EXAMPLES = ("wine", "textstats")
VALIDATE_FLOOR = "import yaml, jsonschema, nbformat"
BUILD_FLOOR = "import kfp.compiler"


def copy_examples(into: Path) -> dict[str, Path]:
    """The examples copied into a temporary folder (nothing is written into the checkout)."""
    copies = {}
    for name in EXAMPLES:
        target = into / name
        shutil.copytree(REPO / "examples" / name, target, ignore=shutil.ignore_patterns(".kale"))
        copies[name] = target
    return copies


def run(settings: Settings, section: Section) -> None:
    n = settings.n(7, quick=3)
    section.info["repeat"] = n
    env = child_env()
    with tempfile.TemporaryDirectory(prefix="kale-bench-cli-") as tmp:
        root = Path(tmp)
        examples = copy_examples(root)

        def ours_validate(name: str) -> float:
            return run_command([sys.executable, "-m", "kale_yaml", "validate", name], cwd=root, env=env)

        def ours_build(name: str) -> float:
            out = root / f"out-{name}"
            shutil.rmtree(out, ignore_errors=True)
            return run_command(
                [sys.executable, "-m", "kale_yaml", "build", name, "-o", str(out)], cwd=root, env=env
            )

        def floor(code: str) -> float:
            return run_command([sys.executable, "-c", code], cwd=root, env=env)

        # One unmeasured pass: bytecode caches written, files in the page cache.
        for name in examples:
            ours_validate(name)
            ours_build(name)
        floor(VALIDATE_FLOOR)
        floor(BUILD_FLOOR)

        samples: dict[str, list[float]] = {}
        for _ in range(n):  # interleaved: each repetition measures ours and its floor back to back
            for name in examples:
                samples.setdefault(f"validate {name}", []).append(ours_validate(name))
                samples.setdefault(f"validate-floor {name}", []).append(floor(VALIDATE_FLOOR))
                samples.setdefault(f"build {name}", []).append(ours_build(name))
                samples.setdefault(f"build-floor {name}", []).append(floor(BUILD_FLOOR))
        rows: list[Row] = []
        for name in examples:
            rows.append(
                ratio_row(
                    f"validate {name}",
                    samples[f"validate {name}"],
                    samples[f"validate-floor {name}"],
                    limit=1.5,
                    baseline_name=f'python -c "{VALIDATE_FLOOR}"',
                )
            )
        for name in examples:
            rows.append(
                ratio_row(
                    f"build {name} -o DIR",
                    samples[f"build {name}"],
                    samples[f"build-floor {name}"],
                    limit=1.5,
                    baseline_name=f'python -c "{BUILD_FLOOR}"',
                )
            )
        section.rows.extend(rows)
