"""kale-yaml benchmarks: `python -m bench [--quick] [--only SECTION ...] [--repeat N]`.

The machine may be noisy, so every figure is a ratio against a baseline measured in the same run, ours and the
baseline interleaved and repeated (the median of N is shown). Tables go to the terminal; everything, samples
included, to bench/results/<timestamp>.json. Nothing is written into the checkout but that file: examples and
generated notebooks are copied into temporary folders.
"""

from __future__ import annotations

import argparse
import time
import traceback
from collections.abc import Callable

from bench import capture_bench, cli_bench, kale_bench, marshal_bench, run_bench, scaling
from bench.common import Section, Settings, console, print_section, save_results

SECTIONS: dict[str, tuple[str, Callable[[Settings, Section], None]]] = {
    "cli": ("validate and build, fresh interpreter, vs importing their libraries", cli_bench.run),
    "scaling": ("validate and build on generated notebooks, vs the 50-cell one", scaling.run),
    "marshal": ("save_value + load_value round trip, vs native formats and dill", marshal_bench.run),
    "capture": ("a step keeping its report (outputs captured), vs the same step without", capture_bench.run),
    "run": ("kale-yaml run, vs plain script / --runner kfp / sleeps / hand-written KFP", run_bench.run),
    "kale": ("build from import-kale's sidecar, vs kale --nb (kubeflow-kale 2.3.0)", kale_bench.run),
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n")[0])
    parser.add_argument(
        "--quick", action="store_true", help="fewer repetitions, smaller values (a smoke run)"
    )
    parser.add_argument(
        "--only",
        action="append",
        choices=list(SECTIONS),
        metavar="SECTION",
        help=f"run only this section (repeatable): {', '.join(SECTIONS)}",
    )
    parser.add_argument(
        "--repeat", type=int, metavar="N", help="repetitions of every measurement (median of N)"
    )
    args = parser.parse_args(argv)
    if args.repeat is not None and args.repeat < 1:
        parser.error("--repeat must be at least 1")
    settings = Settings(quick=args.quick, repeat=args.repeat)
    chosen = args.only or list(SECTIONS)

    started = time.perf_counter()
    sections: list[Section] = []
    for name in chosen:
        title, function = SECTIONS[name]
        section = Section(name, title)
        sections.append(section)
        console.print(f"[bold]{name}[/]: {title} ...")
        section_start = time.perf_counter()
        try:
            function(settings, section)
        except Exception as error:  # report what was measured, and go on with the next section
            section.error = f"{type(error).__name__}: {error}"
            section.info["traceback"] = traceback.format_exc()
        section.seconds = time.perf_counter() - section_start
        print_section(section)
    total = time.perf_counter() - started
    path = save_results(sections, settings, total)

    rows = [row for section in sections for row in section.rows if row.met is not None]
    missed = [row.what for row in rows if not row.met]
    console.print(
        f"[bold]{len(rows) - len(missed)} of {len(rows)} targets met[/] in {total:.0f} s; results: {path}"
    )
    for what in missed:
        console.print(f"  [red]missed:[/] {what}")
    return 1 if any(section.error for section in sections) else 0


if __name__ == "__main__":
    raise SystemExit(main())
