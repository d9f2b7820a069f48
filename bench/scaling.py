"""Section `scaling`: validate and build on generated notebooks of 50 to 2000 code cells (time, peak RSS)."""

from __future__ import annotations

import shutil
import statistics
import tempfile
from pathlib import Path

from bench.common import Row, Section, Settings, run_module_measured
from bench.notebooks import CELLS_PER_STEP, scaling_project

SIZES = (50, 200, 500, 2000)


def run(settings: Settings, section: Section) -> None:
    n = settings.n(3, quick=1)
    section.info.update(repeat=n, sizes=list(SIZES), cells_per_step=CELLS_PER_STEP)
    with tempfile.TemporaryDirectory(prefix="kale-bench-scaling-") as tmp:
        root = Path(tmp)
        projects = {size: scaling_project(root / f"cells-{size}", size) for size in SIZES}
        rss_file = root / "rss"
        times: dict[tuple[str, int], list[float]] = {}
        peaks: dict[tuple[str, int], list[float]] = {}

        def measure(command: str, size: int, record: bool) -> None:
            args = [command, projects[size].name]
            if command == "build":
                out = root / f"out-{size}"
                shutil.rmtree(out, ignore_errors=True)
                args += ["-o", str(out)]
            elapsed, rss = run_module_measured("kale_yaml", args, cwd=root, rss_file=rss_file)
            if record:
                times.setdefault((command, size), []).append(elapsed)
                peaks.setdefault((command, size), []).append(rss)

        for command in ("validate", "build"):  # warm-up: bytecode and page caches
            measure(command, SIZES[0], record=False)
        for _ in range(n):
            for size in SIZES:
                for command in ("validate", "build"):
                    measure(command, size, record=True)

        rows: list[Row] = []
        for command in ("validate", "build"):
            small = times[(command, SIZES[0])]
            base = statistics.median(small)
            for size in SIZES:
                row = Row(
                    what=f"{command} {size} cells",
                    ours=statistics.median(times[(command, size)]),
                    baseline=base,
                    baseline_name=f"{SIZES[0]} cells",
                    ours_samples=times[(command, size)],
                    baseline_samples=small,
                    note=f"{-(-(size - 3) // CELLS_PER_STEP) + 1} steps",
                )
                if size == max(SIZES):
                    limit = 2 + 1 / base  # time <= 2 x the 50-cell time + 1 s, as a ratio
                    row.target = f"<= {limit:.2f} (2x+1s)"
                    row.met = row.ours <= 2 * base + 1
                rows.append(row)
        for command in ("validate", "build"):
            small_rss = peaks[(command, SIZES[0])]
            for size in SIZES[1:]:
                rows.append(
                    Row(
                        what=f"peak RSS {command} {size} cells",
                        ours=statistics.median(peaks[(command, size)]),
                        baseline=statistics.median(small_rss),
                        unit="MiB",
                        baseline_name=f"{SIZES[0]} cells",
                        ours_samples=peaks[(command, size)],
                        baseline_samples=small_rss,
                    )
                )
        section.rows.extend(rows)
