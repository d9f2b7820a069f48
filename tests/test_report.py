"""The pages of issue 13: the executed notebook and run page of a local run, and `kale-yaml view`.

Runs here are made of step records in the report contract's format (tests/report_fixtures.py), made by
running the notebook's cells, so the pages are tested with real prints, tables and figures.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import Any

import nbformat
import pytest
from hypothesis import given
from hypothesis import strategies as st
from syrupy.assertion import SnapshotAssertion

from kale_yaml import api
from kale_yaml import diagnostics as ky
from kale_yaml.cli.main import main
from kale_yaml.plan.project import Project
from kale_yaml.report.dag_svg import Link, layers
from kale_yaml.report.model import markdown_html
from kale_yaml.report.outputs import output_html
from kale_yaml.report.records import clean_output, read_records
from kale_yaml.report.run_page import RunReports, write_run_reports
from kale_yaml.runtime.record import read_record
from tests.conftest import CASES, REPO, CopyCase
from tests.report_fixtures import FakeRun, Status, notebook_records, outline, record_page

WINE = REPO / "examples" / "wine"
PRINTS, TABLE, FIGURE, SKIPPED = 6, 16, 18, 7  # wine.ipynb's cells


@pytest.fixture(scope="module")
def wine() -> Project:
    return api.validate(WINE)


def wine_run(project: Project, folder: Path, fail_at: int | None = None, **changes: Any) -> RunReports:
    reports = notebook_records(project, folder, fail_at)
    states = {s.name: Status("done", 1.0 + i) for i, s in enumerate(project.pipeline.steps)}
    run = FakeRun(folder, states, {"accuracy": 0.978, "f1": 0.977}, None, reports)
    for name, value in changes.items():
        setattr(run, name, value)
    return write_run_reports(project, run, {"seed": "3"})


def cell_outputs(notebook: Any, number: int) -> list[Any]:
    return list(notebook.cells[number - 1].outputs)


def test_the_executed_notebook_holds_each_cells_outputs_and_owner(wine: Project, tmp_path: Path) -> None:
    before = hashlib.sha256(wine.config.notebook.path.read_bytes()).hexdigest()
    written = wine_run(wine, tmp_path / "run")
    assert written.notebook == tmp_path / "run" / "wine.ipynb"
    notebook = nbformat.read(written.notebook, as_version=4)
    nbformat.validate(notebook)
    assert [c.source for c in notebook.cells] == [c.source for c in wine.config.notebook.cells]
    assert [o.output_type for o in cell_outputs(notebook, PRINTS)] == ["stream"]
    assert "(178, 14)" in cell_outputs(notebook, PRINTS)[0].text
    (table,) = cell_outputs(notebook, TABLE)
    assert table.output_type == "execute_result" and "<table" in table.data["text/html"]
    assert [o.data.get("image/png", "")[:8] for o in cell_outputs(notebook, FIGURE)] == ["iVBORw0K"]
    assert notebook.cells[TABLE - 1].metadata["kale_yaml"] == {"step": "evaluate"}
    assert notebook.cells[SKIPPED - 1].metadata["kale_yaml"] == {"owner": "skip"}
    assert notebook.cells[SKIPPED - 1].outputs == [] and notebook.cells[SKIPPED - 1].execution_count is None
    assert notebook.cells[1].metadata["kale_yaml"] == {"owner": "prelude"}
    assert notebook.metadata["kernelspec"]["name"] == "python3"
    assert hashlib.sha256(wine.config.notebook.path.read_bytes()).hexdigest() == before


def test_the_run_page_shows_every_step_table_figure_and_parameter(
    wine: Project, tmp_path: Path, snapshot: SnapshotAssertion
) -> None:
    page = wine_run(wine, tmp_path / "run1").page.read_text(encoding="utf-8")
    assert page.count('class="node ') == len(wine.pipeline.steps)
    assert page.count("data:image/png;base64,") == 1
    assert "<td><code>3</code></td><td>--param</td>" in page
    # scikit-learn's HTML brings a script along; the page's policy forbids it to run
    assert 'http-equiv="Content-Security-Policy" content="default-src &#39;none&#39;;' in page
    assert "script-src" not in page
    assert outline(page) == snapshot


def test_the_view_page_shows_owners_flows_and_the_dag(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], snapshot: SnapshotAssertion
) -> None:
    target = tmp_path / "view.html"
    assert main(["view", str(WINE), "-o", str(target)]) == 0
    assert f"wrote {target}" in capsys.readouterr().out
    page = target.read_text(encoding="utf-8")
    assert 'data-owner="parameters"' in page and 'data-owner="skip"' in page
    assert "from split: X_train_s, y_train" in page
    assert outline(page) == snapshot


def test_view_writes_beside_the_sidecar_by_default(copy_case: CopyCase) -> None:
    folder = copy_case(CASES / "valid" / "after_edge")
    assert main(["view", str(folder)]) == 0
    assert (folder / ".kale" / "view.html").is_file()


def test_a_failed_step_shows_its_error_in_the_notebook_and_the_report(wine: Project, tmp_path: Path) -> None:
    failure = ky.STEP_FAILED.at("wine.ipynb", "step 'evaluate' failed: ValueError", cell=17)
    written = wine_run(wine, tmp_path / "run", fail_at=17, failure=failure)
    notebook = nbformat.read(written.notebook, as_version=4)
    nbformat.validate(notebook)
    (error,) = cell_outputs(notebook, 17)
    assert (error.output_type, error.ename) == ("error", "ValueError")
    assert cell_outputs(notebook, FIGURE) == []  # it did not run
    page = written.page.read_text(encoding="utf-8")
    cell = page[page.index('id="cell-17"') : page.index('id="cell-18"')]
    assert '<pre class="output error">' in cell and "ValueError: cell 17 failed on purpose" in cell
    assert '<span class="badge bad">failed</span>' in page


def test_a_failure_without_records_is_shown_at_its_cell(wine: Project, tmp_path: Path) -> None:
    failure = ky.STEP_FAILED.at("wine.ipynb", "step 'train_logreg' failed: <boom>", cell=12)
    states = {s.name: Status("not run") for s in wine.pipeline.steps}
    run = FakeRun(tmp_path, states, failure=failure)
    page = write_run_reports(wine, run, {}).page.read_text(encoding="utf-8")
    cell = page[page.index('id="cell-12"') : page.index('id="cell-13"')]
    assert '<div class="problem">step &#39;train_logreg&#39; failed: &lt;boom&gt;</div>' in cell
    assert 'id="no-outputs"' in page


def test_view_shows_a_broken_sidecars_errors_at_their_cells(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], snapshot: SnapshotAssertion
) -> None:
    target = tmp_path / "view.html"
    assert main(["view", str(CASES / "invalid" / "analysis_undefined_name"), "-o", str(target)]) == 1
    assert "'X_test' is read here but no earlier cell defines it" in capsys.readouterr().err
    page = target.read_text(encoding="utf-8")
    cell = page[page.index('id="cell-8"') :]
    assert "error: &#39;X_test&#39; is read here" in cell[: cell.index("</article>")]
    assert outline(page) == snapshot


def test_view_colours_what_a_sidecar_with_errors_can_tell(tmp_path: Path) -> None:
    target = tmp_path / "view.html"
    assert main(["view", str(CASES / "invalid" / "ownership_overlapping_steps"), "-o", str(target)]) == 1
    page = target.read_text(encoding="utf-8")
    assert 'class="cell code conflict" id="cell-6"' in page and 'data-owner="load + train"' in page
    assert '<span class="badge bad">1 error</span>' in page


def test_view_never_writes_over_the_notebook(copy_case: CopyCase, capsys: pytest.CaptureFixture[str]) -> None:
    folder = copy_case(CASES / "valid" / "after_edge")
    notebook = folder / "nb.ipynb"
    before = notebook.read_bytes()
    assert main(["view", str(folder), "-o", str(notebook)]) == 1
    assert "which is the notebook" in capsys.readouterr().err
    assert notebook.read_bytes() == before


def test_page_text_is_escaped(copy_case: CopyCase) -> None:
    folder = copy_case(CASES / "valid" / "after_edge")
    notebook = folder / "nb.ipynb"
    text = notebook.read_text(encoding="utf-8").replace(
        'first_value = \\"one\\"', 'first_value = \\"</pre><script>x()</script>\\"'
    )
    notebook.write_text(text, encoding="utf-8")
    assert main(["view", str(folder)]) == 0
    page = (folder / ".kale" / "view.html").read_text(encoding="utf-8")
    assert "<script" not in page and "&lt;/pre&gt;&lt;script&gt;x()&lt;/script&gt;" in page


def test_run_writes_the_executed_notebook_and_the_report(
    copy_case: CopyCase, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = copy_case(CASES / "valid" / "after_edge")
    assert main(["run", str(folder)]) == 0
    last = capsys.readouterr().out.strip().splitlines()[-2:]
    assert last[0].startswith("executed notebook: ") and last[0].endswith("/nb.ipynb")
    assert last[1].startswith("report: ") and last[1].endswith("/report.html")
    run_dir = next((folder / ".kale" / "runs").iterdir())
    nbformat.validate(nbformat.read(run_dir / "nb.ipynb", as_version=4))
    assert 'data-step="second"' in (run_dir / "report.html").read_text(encoding="utf-8")


# -- records ------------------------------------------------------------------------------------------------
def test_a_record_survives_any_text_in_its_outputs(tmp_path: Path) -> None:
    hostile = "</script><script>alert(1)</script> \u2028 <!--"
    cells = [
        {
            "cell": 2,
            "execution_count": 1,
            "outputs": [{"output_type": "stream", "name": "stdout", "text": hostile}],
        }
    ]
    page = record_page("a", "nb.ipynb", "finished", cells)
    assert page.count("</script>") == 1
    path = tmp_path / "a.html"
    path.write_text(page, encoding="utf-8")
    (run,) = read_records({"a": path})["a"].cells
    assert run.outputs[0]["text"] == hostile


@pytest.mark.parametrize(
    "text",
    [
        "",
        "<html></html>",
        '<script type="application/json" id="kale-yaml-record">{not json</script>',
        '<script type="application/json" id="kale-yaml-record">[1, 2]</script>',
        '<script type="application/json" id="kale-yaml-record">' + "[" * 100_000 + "</script>",
    ],
)
def test_a_page_without_a_good_record_reads_as_none(text: str) -> None:
    assert read_record(text) is None


def test_malformed_outputs_are_left_out() -> None:
    assert clean_output({"output_type": "stream", "name": "stdin", "text": "x"}) is None
    assert clean_output({"output_type": "display_data", "data": {"image/png": "not base64!"}}) is None
    assert clean_output({"output_type": "execute_result", "data": {"text/plain": ["a", "b"]}, "x": 1}) == {
        "output_type": "execute_result",
        "data": {"text/plain": "ab"},
        "metadata": {},
        "execution_count": None,
    }
    assert clean_output(["not", "a", "dict"]) is None


def test_missing_or_unreadable_reports_are_skipped(tmp_path: Path) -> None:
    (tmp_path / "folder").mkdir()
    assert read_records({"a": tmp_path / "missing", "b": tmp_path / "folder"}) == {}


# -- layout -------------------------------------------------------------------------------------------------
def test_a_long_edge_passes_beside_the_steps_between() -> None:
    links = [Link("a", "b", "x"), Link("b", "c", "y"), Link("a", "c", "z")]
    rows, chains = layers(["a", "b", "c"], links)
    assert [[n for n in row if not n.startswith("\0")] for row in rows] == [["a"], ["b"], ["c"]]
    assert len(chains[links[2]]) == 3 and chains[links[2]][1] in rows[1]


def test_layers_keep_a_diamond_uncrossed() -> None:
    links = [Link("a", "b", ""), Link("a", "c", ""), Link("b", "d", ""), Link("c", "d", "")]
    rows, _ = layers(["a", "b", "c", "d"], links)
    assert rows == [["a"], ["b", "c"], ["d"]]


def test_the_outline_leaves_out_cell_html() -> None:
    cell_html = '<table class="x"><tr><td>1</td></tr></table>'
    page = f'<div class="a"><div class="output html">{cell_html}</div><p class="b"></p></div>'
    assert outline(page) == "  div.a\n    div.output.html\n    p.b\n"




# -- escaping -----------------------------------------------------------------------------------------------
@given(st.text())
def test_any_printed_text_is_shown_as_text(text: str) -> None:
    shown = str(output_html({"output_type": "stream", "name": "stdout", "text": text}))
    inner = shown.removeprefix('<pre class="output stream stdout">').removesuffix("</pre>")
    assert "<" not in inner and ">" not in inner


@given(st.text())
def test_any_markdown_is_shown_as_text(text: str) -> None:
    shown = re.sub(r"</?(h[2-6]|p|code)( class=\"md\")?>", "", str(markdown_html(text)))
    assert "<" not in shown and ">" not in shown
