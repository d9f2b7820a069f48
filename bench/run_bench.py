"""Section `run`: `kale-yaml run` on this machine (kale-yaml's own executor; `--runner kfp` is kfp.local).

- each example with --no-cache, against running the notebook's code cells as one plain script, and against
  the same run with kfp's own local runner (`--runner kfp`);
- two independent steps that each sleep 2 s, against the 4 s they would take one after the other;
- per-step overhead on a chain of trivial steps against the same chain hand-written with KFP's DSL
  (bench/handwritten.py): the marginal cost of a step, (T(10 steps) - T(1 step)) / 9, which leaves out what
  both pay once (interpreter start, imports, validate and build for ours);
- `cached`: a second `kale-yaml run` of the wine example (cache on) against the first, and against 0.5 s.
"""

from __future__ import annotations

import shutil
import statistics
import sys
import tempfile
from pathlib import Path

from bench.cli_bench import copy_examples
from bench.common import REPO, Row, Section, Settings, child_env, ratio_row, run_command, run_command_cpu
from bench.notebooks import chain_project, notebook_script, sleepers_project

CHAIN = 10
SLEEP = 2.0
HANDWRITTEN = REPO / "bench" / "handwritten.py"


def run(settings: Settings, section: Section) -> None:
    n = settings.n(3, quick=1)
    n_chain = settings.n(
        5, quick=1
    )  # the chain is cheap and its per-step figure is a difference: more samples
    section.info.update(repeat=n, repeat_chain=n_chain, chain_steps=CHAIN)
    env = child_env()
    with tempfile.TemporaryDirectory(prefix="kale-bench-run-") as tmp:
        root = Path(tmp)
        examples = copy_examples(root / "examples")
        chains = {steps: chain_project(root / f"chain-{steps}", steps) for steps in (1, CHAIN)}
        sleepers = sleepers_project(root / "sleepers", SLEEP)
        scripts = {
            name: notebook_script(next(folder.glob("*.ipynb")), root / f"{name}_script.py")
            for name, folder in examples.items()
        }

        def kale_run(project: Path, *extra: str) -> float:
            return kale_run_cpu(project, *extra)[0]

        def kale_run_cpu(project: Path, *extra: str) -> tuple[float, float]:
            argv = [sys.executable, "-m", "kale_yaml", "run", str(project), *extra]
            return run_command_cpu(argv, cwd=root, env=env)

        def plain_script(name: str) -> float:
            return run_command([sys.executable, str(scripts[name])], cwd=examples[name], env=env)

        def handwritten(steps: int) -> tuple[float, float]:
            pipeline_root = root / "handwritten-outputs"
            shutil.rmtree(pipeline_root, ignore_errors=True)
            argv = [sys.executable, str(HANDWRITTEN), "--steps", str(steps), "--root", str(pipeline_root)]
            return run_command_cpu(argv, cwd=root, env=env)

        def clean_kale(project: Path) -> None:
            shutil.rmtree(project / ".kale", ignore_errors=True)

        # warm-up (bytecode caches, page cache), not measured
        kale_run(chains[1], "--no-cache")
        handwritten(1)

        samples: dict[str, list[float]] = {}

        def add(key: str, value: float) -> None:
            samples.setdefault(key, []).append(value)

        for _ in range(n_chain):
            for steps in (CHAIN, 1):
                clean_kale(chains[steps])
                wall, cpu = kale_run_cpu(chains[steps], "--no-cache")
                add(f"ours {steps}", wall)
                add(f"ours cpu {steps}", cpu)
                wall, cpu = handwritten(steps)
                add(f"hand {steps}", wall)
                add(f"hand cpu {steps}", cpu)
        for _ in range(n):
            for name, project in examples.items():
                clean_kale(project)
                add(f"run {name}", kale_run(project, "--no-cache"))
                add(f"script {name}", plain_script(name))
                clean_kale(project)
                add(f"kfp {name}", kale_run(project, "--no-cache", "--runner", "kfp"))
            clean_kale(sleepers)
            add("sleepers", kale_run(sleepers, "--no-cache"))
            add("sleepers sequential", 2 * SLEEP)
            wine = examples["wine"]
            clean_kale(wine)
            add("cache first", kale_run(wine))
            add("cache second", kale_run(wine))

        rows: list[Row] = []
        limits = {"wine": 1.3}
        for name in examples:
            extra = _difference(samples[f"run {name}"], samples[f"script {name}"])
            rows.append(
                ratio_row(
                    f"run --no-cache {name}",
                    samples[f"run {name}"],
                    samples[f"script {name}"],
                    limit=limits.get(name),
                    baseline_name="code cells as one script",
                    note=f"ours - script: {extra:.2f} s",
                )
            )
            rows.append(
                ratio_row(
                    f"run --no-cache {name}, against --runner kfp",
                    samples[f"run {name}"],
                    samples[f"kfp {name}"],
                    limit=None,
                    baseline_name="kfp.local (--runner kfp)",
                )
            )
        rows.append(
            ratio_row(
                f"two independent {SLEEP:g} s steps, total",
                samples["sleepers"],
                samples["sleepers sequential"],
                limit=2.6 / (2 * SLEEP),
                baseline_name=f"{2 * SLEEP:g} s, the sleeps one after the other",
                note="target: <= 2.6 s",
            )
        )
        rows.append(
            ratio_row(
                f"chain of {CHAIN} steps, total",
                samples[f"ours {CHAIN}"],
                samples[f"hand {CHAIN}"],
                limit=None,
                baseline_name="hand-written kfp.local",
            )
        )
        rows.append(
            ratio_row(
                "chain of 1 step, total",
                samples["ours 1"],
                samples["hand 1"],
                limit=None,
                baseline_name="hand-written kfp.local",
            )
        )
        ours_step = _per_step(samples[f"ours {CHAIN}"], samples["ours 1"])
        hand_step = _per_step(samples[f"hand {CHAIN}"], samples["hand 1"])
        rows.append(
            ratio_row(
                "per-step cost (T10 - T1) / 9",
                ours_step,
                hand_step,
                limit=1.10,
                baseline_name="hand-written kfp.local",
            )
        )
        rows.append(
            ratio_row(
                "per-step cost (T10 - T1) / 9, against 60 ms",
                ours_step,
                [0.060] * len(ours_step),
                limit=1.0,
                baseline_name="the target, 60 ms",
            )
        )
        rows.append(
            ratio_row(
                "per-step CPU (T10 - T1) / 9",
                _per_step(samples[f"ours cpu {CHAIN}"], samples["ours cpu 1"]),
                _per_step(samples[f"hand cpu {CHAIN}"], samples["hand cpu 1"]),
                limit=None,
                baseline_name="hand-written kfp.local",
                note="CPU s of the whole process tree",
            )
        )
        rows.append(
            ratio_row(
                "cached: second run of wine",
                samples["cache second"],
                samples["cache first"],
                limit=None,
                baseline_name="first run, cache on",
            )
        )
        rows.append(
            ratio_row(
                "cached: second run of wine, against 0.5 s",
                samples["cache second"],
                [0.5] * len(samples["cache second"]),
                limit=1.0,
                baseline_name="the target, 0.5 s",
            )
        )
        section.rows.extend(rows)
        section.info["samples"] = {key: values for key, values in samples.items()}
        section.info["per_step_medians"] = {
            "ours": statistics.median(ours_step),
            "handwritten": statistics.median(hand_step),
        }


def _difference(ours: list[float], theirs: list[float]) -> float:
    return statistics.median(ours) - statistics.median(theirs)


def _per_step(long: list[float], short: list[float]) -> list[float]:
    """The marginal cost of a step, repetition by repetition: (T(CHAIN steps) - T(1 step)) / (CHAIN - 1)."""
    return [(a - b) / (CHAIN - 1) for a, b in zip(long, short, strict=True)]
