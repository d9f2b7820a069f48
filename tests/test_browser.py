"""The pages in a real browser: headless Chromium loads the run page and the view page from a file, and the
DOM has every step, every figure (decoded) and every table, and the page made no request but its own file.

A screenshot of each page is saved under pytest's temporary folder (printed), or, with
KALE_YAML_SCREENSHOTS=DIR, in DIR (`make screenshots` refreshes docs/images/ this way).
Skipped, saying why, where Chromium is not installed (`make test` installs it when it can).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from kale_yaml import api
from kale_yaml.cli.main import main
from kale_yaml.report.records import read_records
from kale_yaml.report.run_page import write_run_reports
from tests.browser import Page, chromium, find_chromium
from tests.report_fixtures import FakeRun, Status, notebook_records

WINE = Path(__file__).resolve().parent.parent / "examples" / "wine"
EXECUTABLE = find_chromium()
pytestmark = pytest.mark.skipif(
    EXECUTABLE is None,
    reason="Chromium is not installed (`make test` installs Debian's chromium when run as root with apt-get;"
    " or set CHROMIUM=/path/to/chrome)",
)

DOM = """(() => ({
  steps: [...document.querySelectorAll('#steps tr[data-step]')].map(r => r.dataset.step),
  nodes: [...document.querySelectorAll('svg.dag g.node')].map(g => g.dataset.step),
  asides: [...document.querySelectorAll('aside.step')].map(a => a.dataset.step),
  images: [...document.querySelectorAll('.output.image img')].map(i => [i.src.slice(0, 22), i.naturalWidth]),
  tables: [...document.querySelectorAll('table')]
    .map(t => t.closest('.output') ? t.closest('article').id : t.className),
  cells: document.querySelectorAll('article.cell').length,
  problems: [...document.querySelectorAll('.problem')].map(p => p.closest('article').id),
  width: document.documentElement.scrollWidth,
}))()"""


@pytest.fixture(scope="module")
def browser() -> Iterator[Page]:
    assert EXECUTABLE is not None
    with chromium(EXECUTABLE) as page:
        yield page


@pytest.fixture(scope="module")
def screenshots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    chosen = os.environ.get("KALE_YAML_SCREENSHOTS")
    return Path(chosen) if chosen else tmp_path_factory.mktemp("screenshots")


def test_the_run_page_in_a_browser(
    browser: Page, screenshots: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    project = api.validate(WINE)
    folder = tmp_path / "wine-quality-20261202-120000"
    reports = notebook_records(project, folder)
    steps = {s.name: Status("done", 2.0 + 0.7 * i) for i, s in enumerate(project.pipeline.steps)}
    run = FakeRun(folder, steps, {"accuracy": 0.978, "f1": 0.977}, None, reports)
    page = write_run_reports(project, run, {"seed": "3"}).page
    loaded = browser.load(page)
    assert loaded.network == [page.resolve().as_uri()]
    dom = browser.evaluate(DOM)
    names = [s.name for s in project.pipeline.steps]
    assert sorted(dom["steps"]) == sorted(dom["nodes"]) == sorted(dom["asides"]) == sorted(names)
    assert dom["images"] == [["data:image/png;base64,", dom["images"][0][1]]] and dom["images"][0][1] > 100
    # every table of every output: the scores (cell 16), and the ones in scikit-learn's views of a model
    shown = [run.outputs for record in read_records(reports).values() for run in record.cells]
    html = [o["data"].get("text/html", "") for outputs in shown for o in outputs if "data" in o]
    assert len([t for t in dom["tables"] if t.startswith("cell-")]) == sum(h.count("<table") for h in html)
    assert "cell-16" in dom["tables"]
    assert {"steps", "metrics", "parameters"} <= set(dom["tables"])
    assert dom["cells"] == len(project.config.notebook.cells)
    assert dom["width"] <= 1400  # nothing wider than the window
    browser.screenshot(screenshots / "report.png")
    with capsys.disabled():
        print(f"\nscreenshot: {screenshots / 'report.png'}")


def test_the_view_page_of_a_sidecar_with_errors_in_a_browser(
    browser: Page, screenshots: Path, tmp_path: Path
) -> None:
    cases = Path(__file__).resolve().parent / "cases" / "invalid"
    page = tmp_path / "view.html"
    assert main(["view", str(cases / "analysis_undefined_name"), "-o", str(page)]) == 1
    loaded = browser.load(page)
    assert loaded.network == [page.resolve().as_uri()]
    dom = browser.evaluate(DOM)
    assert dom["problems"] == ["cell-8"] and dom["nodes"] == []
    browser.screenshot(screenshots / "view-errors.png")


def test_the_view_page_in_a_browser(browser: Page, screenshots: Path, tmp_path: Path) -> None:
    page = tmp_path / "view.html"
    assert main(["view", str(WINE), "-o", str(page)]) == 0
    loaded = browser.load(page)
    assert loaded.network == [page.resolve().as_uri()]
    dom = browser.evaluate(DOM)
    names = [s.name for s in api.validate(WINE).pipeline.steps]
    assert sorted(dom["steps"]) == sorted(dom["nodes"]) == sorted(dom["asides"]) == sorted(names)
    assert dom["tables"] == ["steps"] and dom["images"] == []
    browser.screenshot(screenshots / "view.png")
