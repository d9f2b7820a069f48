"""Shared pieces of the benchmarks: rows, timing, subprocess runs and tables.

Every figure is a ratio against a baseline measured in the same run, ours and the baseline interleaved
repetition by repetition, so that the machine's noise hits both alike; a row keeps every sample.
"""

from __future__ import annotations

import json
import os
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

REPO = Path(__file__).resolve().parent.parent
console = Console(width=None if sys.stdout.isatty() else 160)  # full rows when piped or logged


@dataclass
class Settings:
    """What the command line chose: how many repetitions, and --quick."""

    quick: bool = False
    repeat: int | None = None  # None: each measurement's own default

    def n(self, default: int, quick: int = 1) -> int:
        """Repetitions for one measurement: --repeat if given, else its default (quick: its quick default)."""
        if self.repeat is not None:
            return self.repeat
        return quick if self.quick else default


@dataclass
class Row:
    """One line of a section's table: ours against a baseline, with the target the ratio should meet."""

    what: str
    ours: float
    baseline: float
    unit: str = "s"
    target: str = ""  # e.g. "<= 1.5"; "" for figures reported without a target
    met: bool | None = None
    baseline_name: str = ""
    ours_samples: list[float] = field(default_factory=list)
    baseline_samples: list[float] = field(default_factory=list)
    note: str = ""
    failed: str = ""  # why there is no figure to compare (e.g. the baseline tool failed); shown in the table

    @property
    def ratio(self) -> float:
        return self.ours / self.baseline if self.baseline else float("inf")

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["ratio"] = None if self.failed else self.ratio
        return data


def ratio_row(
    what: str,
    ours: Sequence[float],
    baseline: Sequence[float],
    *,
    limit: float | None,
    baseline_name: str,
    unit: str = "s",
    note: str = "",
) -> Row:
    """A row whose target is ratio <= limit (None: reported without a target)."""
    row = Row(
        what=what,
        ours=statistics.median(ours),
        baseline=statistics.median(baseline),
        unit=unit,
        baseline_name=baseline_name,
        ours_samples=list(ours),
        baseline_samples=list(baseline),
        note=note,
    )
    if limit is not None:
        row.target = f"<= {limit:g}"
        row.met = row.ratio <= limit
    return row


@dataclass
class Section:
    name: str
    title: str
    rows: list[Row] = field(default_factory=list)
    seconds: float = 0.0
    error: str = ""
    info: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "title": self.title,
            "seconds": self.seconds,
            "error": self.error,
            "info": self.info,
            "rows": [row.to_json() for row in self.rows],
        }


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


def timed(function: Callable[[], object]) -> float:
    start = time.perf_counter()
    function()
    return time.perf_counter() - start


class CommandFailed(RuntimeError):
    pass


def run_command(
    argv: Sequence[str], *, cwd: Path | None = None, env: dict[str, str] | None = None, timeout: float = 600
) -> float:
    """Run argv to completion and return its wall time; raise CommandFailed when it fails."""
    return run_command_cpu(argv, cwd=cwd, env=env, timeout=timeout)[0]


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_command_cpu(
    argv: Sequence[str], *, cwd: Path | None = None, env: dict[str, str] | None = None, timeout: float = 600
) -> tuple[float, float]:
    """Run argv to completion; return (wall seconds, CPU seconds of it and all its descendants).

    The CPU time is the growth of RUSAGE_CHILDREN: the benchmarks run one child at a time.
    """
    cpu_before = _children_cpu()
    start = time.perf_counter()
    done = subprocess.run(
        list(argv), cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )
    elapsed = time.perf_counter() - start
    cpu = _children_cpu() - cpu_before
    if done.returncode != 0:
        tail = (done.stdout + done.stderr).strip().splitlines()[-15:]
        raise CommandFailed(f"{' '.join(argv)} exited {done.returncode}:\n" + "\n".join(tail))
    return elapsed, cpu


# Runs `python -m MODULE ARGS...` in a fresh interpreter and writes the process's peak RSS (KiB) to a file at
# exit; it adds nothing to the child but runpy, which `python -m` uses anyway. The peak is VmHWM, which
# belongs to the new address space: on Linux ru_maxrss survives exec, so a child of a process that once held
# gigabytes (the marshal section) would report the parent's peak.
_RSS_WRAPPER = """\
import resource, runpy, sys
out, module = sys.argv[1], sys.argv[2]
sys.argv = [module, *sys.argv[3:]]
try:
    runpy.run_module(module, run_name="__main__", alter_sys=True)
finally:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    try:
        with open("/proc/self/status") as status:
            peak = next(int(line.split()[1]) for line in status if line.startswith("VmHWM:"))
    except (OSError, StopIteration):
        pass
    with open(out, "w") as handle:
        handle.write(str(peak))
"""


def run_module_measured(
    module: str,
    args: Sequence[str],
    *,
    cwd: Path,
    rss_file: Path,
    python: str | Path | None = None,
    env: dict[str, str] | None = None,
    timeout: float = 600,
) -> tuple[float, float]:
    """Run `python -m module args` in a fresh interpreter (this one, or `python`); return (wall seconds,
    peak RSS in MiB)."""
    argv = [str(python or sys.executable), "-c", _RSS_WRAPPER, str(rss_file), module, *args]
    elapsed = run_command(argv, cwd=cwd, env=env, timeout=timeout)
    rss_kib = float(rss_file.read_text().strip())
    rss_file.unlink()
    return elapsed, rss_kib / 1024


def child_env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.pop("KALE_YAML_EVENTS", None)
    env.update(extra)
    return env


def _fmt(value: float, unit: str) -> str:
    if unit == "s":
        return f"{value * 1000:.1f} ms" if value < 1 else f"{value:.2f} s"
    if unit == "MiB":
        return f"{value:.0f} MiB"
    return f"{value:.3g} {unit}"


def print_section(section: Section) -> None:
    table = Table(title=f"{section.name}: {section.title}", title_justify="left")
    for column in ("what", "ours", "baseline", "ratio", "target", "met?"):
        table.add_column(column, justify="left" if column in ("what", "baseline") else "right")
    for row in section.rows:
        what = escape(row.what) + (f" [dim]{escape(f'[{row.note}]')}[/]" if row.note else "")
        if row.failed:
            table.add_row(what, "-", f"[red]failed:[/] {escape(row.failed)}", "-", row.target or "-", "-")
            continue
        baseline = _fmt(row.baseline, row.unit)
        if row.baseline_name:
            baseline = f"{baseline} ({row.baseline_name})"
        met = "-" if row.met is None else ("[green]yes[/]" if row.met else "[red]NO[/]")
        table.add_row(
            what, _fmt(row.ours, row.unit), escape(baseline), f"{row.ratio:.2f}", row.target or "-", met
        )
    console.print(table)
    if section.error:
        console.print(f"[red]section {section.name} failed:[/] {section.error}")
    console.print(f"[dim]{section.name}: {section.seconds:.0f} s[/]")


def save_results(sections: list[Section], settings: Settings, total: float) -> Path:
    folder = REPO / "bench" / "results"
    folder.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    path = folder / f"{stamp}{'-quick' if settings.quick else ''}.json"
    data = {
        "timestamp": stamp,
        "settings": asdict(settings),
        "python": sys.version,
        "platform": sys.platform,
        "cpus": os.cpu_count(),
        "loadavg_at_end": list(os.getloadavg()),
        "total_seconds": total,
        "targets": [
            {
                "section": section.name,
                "what": row.what,
                "ratio": row.ratio,
                "target": row.target,
                "met": row.met,
            }
            for section in sections
            for row in section.rows
            if row.met is not None
        ],
        "sections": [section.to_json() for section in sections],
    }
    path.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    return path
