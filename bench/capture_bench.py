"""Section `capture`: a step that keeps a report (its cells' outputs captured) against the same step without.

Measured in this process with the runtime's `run_step`, the report written to a temporary folder: once with
`report=PATH` (what every generated step does unless the sidecar says `report: false`), once without, the two
interleaved sample by sample. Two steps: cells that print and end with a table, and cells that draw figures
(a step with a report draws each figure as PNG, which one without never does: the row shows that cost too).
"""

from __future__ import annotations

import contextlib
import io
import tempfile
from pathlib import Path

from bench.common import Section, Settings, ratio_row, timed
from kale_yaml.runtime import run_step

_PRINTS = [
    (1, "import pandas as pd\nrows = []"),
    *[
        (n, f"for i in range(200):\n    rows.append((i, i * {n}))\nprint('cell {n}:', len(rows), 'rows')")
        for n in range(2, 30)
    ],
    (30, "df = pd.DataFrame(rows, columns=['i', 'v'])\ndf.describe()"),
    (31, "df.head(20)"),
]
_FIGURES = [
    (1, "import matplotlib.pyplot as plt\nimport numpy as np\nx = np.linspace(0, 10, 500)"),
    (2, "plt.figure()\nplt.plot(x, np.sin(x))\nplt.show()"),
    (3, "fig, ax = plt.subplots()\nax.hist(np.cos(x) * 3, bins=30)\nprint('drawn')"),
]


def run(settings: Settings, section: Section) -> None:
    n = settings.n(7, quick=2)
    section.info.update(repeat=n)
    quiet = contextlib.redirect_stdout(io.StringIO())  # the cells' prints are not the benchmark's output
    with tempfile.TemporaryDirectory(prefix="kale-bench-capture-") as tmp, quiet:
        report = str(Path(tmp) / "report.html")
        for title, cells in (("prints and tables", _PRINTS), ("two matplotlib figures", _FIGURES)):

            def step(path: str | None, cells: list[tuple[int, str]] = cells) -> None:
                run_step(
                    step="bench",
                    notebook="bench.ipynb",
                    cells=cells,
                    parameters={},
                    inputs={},
                    outputs={},
                    report=path,
                )

            step(report)  # warm-up: imports (pandas, matplotlib), not measured
            step(None)
            ours: list[float] = []
            baseline: list[float] = []
            for _ in range(n):
                ours.append(timed(lambda: step(report)))
                baseline.append(timed(lambda: step(None)))
            section.rows.append(
                ratio_row(
                    f"step of {len(cells)} cells, {title}: with report",
                    ours,
                    baseline,
                    limit=None,
                    baseline_name="same step without report",
                )
            )
