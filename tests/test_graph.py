"""`kale-yaml graph`: text, Mermaid and dot pictures of the planned DAG."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
from syrupy.assertion import SnapshotAssertion

from kale_yaml import api
from kale_yaml.cli.main import main
from kale_yaml.plan.dag import Edge
from kale_yaml.plan.graph import dot_id, edge_label, graph_text, mermaid_id, mermaid_label
from tests.conftest import CASES, REPO, CopyCase

WINE = REPO / "examples" / "wine"
AFTER = CASES / "valid" / "after_edge"

# Every line of our Mermaid output is one of these (checked against mermaid 10's parser by hand).
_MERMAID_LINE = re.compile(
    r'^(```mermaid|```|flowchart TD|    %% .*|    step_\w+\["[^"]*"\]|    step_\w+ -->\|"[^"]*"\| step_\w+|'
    r"    step_\w+ -\.-> step_\w+)$"
)


@pytest.mark.parametrize("fmt", ["text", "mermaid", "dot"])
def test_wine_graph(fmt: str, capsys: pytest.CaptureFixture[str], snapshot: SnapshotAssertion) -> None:
    assert main(["graph", str(WINE), "--format", fmt]) == 0
    assert capsys.readouterr().out == snapshot


def test_mermaid_is_a_fenced_flowchart_github_renders() -> None:
    text = graph_text(api.validate(WINE).pipeline, "mermaid")
    lines = text.splitlines()
    assert lines[:2] == ["```mermaid", "flowchart TD"] and lines[-1] == "```"
    assert all(_MERMAID_LINE.match(line) for line in lines), text
    assert '    step_split -->|"X_train_s, y_train"| step_train_logreg' in lines


def test_after_only_edges_are_dashed() -> None:
    pipeline = api.validate(AFTER).pipeline
    assert [(e.source, e.target, e.variables) for e in pipeline.edges] == [("first", "second", ())]
    assert "    step_first -.-> step_second" in graph_text(pipeline, "mermaid").splitlines()
    assert '  "first" -> "second" [style=dashed];' in graph_text(pipeline, "dot").splitlines()
    assert "  first -> second: after" in graph_text(pipeline, "text").splitlines()


def test_many_variables_are_truncated_in_labels() -> None:
    edge = Edge("a", "b", tuple(f"v{i}" for i in range(7)))
    assert edge_label(edge) == "v0, v1, v2, +4 more"
    assert edge_label(Edge("a", "b", ("x", "y", "z", "w"))) == "x, y, z, w"


def test_labels_and_ids_are_escaped() -> None:
    assert mermaid_label('say "hi" <b> | #1') == "say #quot;hi#quot; #lt;b#gt; #124; #35;1"
    assert mermaid_id("end") == "step_end"  # `end` alone would close a Mermaid subgraph
    assert dot_id('a "quoted" \\ name') == '"a \\"quoted\\" \\\\ name"'


def test_step_named_like_a_mermaid_keyword(copy_case: CopyCase) -> None:
    folder = copy_case(AFTER)
    sidecar = folder / "pipeline.kale.yaml"
    sidecar.write_text(sidecar.read_text().replace("first", "end").replace("second", "graph"))
    text = graph_text(api.validate(folder).pipeline, "mermaid")
    assert '    step_end["end"]' in text and "    step_end -.-> step_graph" in text


@pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz is not installed")
def test_dot_output_is_valid_graphviz(tmp_path: Path) -> None:
    source = tmp_path / "wine.dot"
    source.write_text(graph_text(api.validate(WINE).pipeline, "dot"))
    subprocess.run(["dot", "-Tsvg", str(source), "-o", str(tmp_path / "wine.svg")], check=True)
    assert (tmp_path / "wine.svg").stat().st_size > 0


def test_graph_of_an_invalid_sidecar_is_an_input_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["graph", str(CASES / "invalid" / "plan_cycle_through_after"), "--format", "mermaid"]) == 1
    captured = capsys.readouterr()
    assert captured.out == "" and "cycle" in captured.err
