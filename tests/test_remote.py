"""`kale-yaml run --host`: submitting with the real kfp.Client to a small fake KFP API server on 127.0.0.1
that records what the client sends and answers with minimal valid JSON."""

from __future__ import annotations

import json
import socket
import threading
import time
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from kale_yaml import api
from kale_yaml.cli import main
from kale_yaml.errors import KaleYamlError
from kale_yaml.remote import SubmitError, follow, submit
from tests.conftest import CASES, CopyCase

API = "/apis/v2beta1"
LIFETIME = 60.0  # the server stops by itself after this long, whatever the test does


@dataclass
class Recorded:
    method: str
    path: str
    query: dict[str, list[str]]
    body: Any


@dataclass
class FakeKfp:
    """What the server knows and what it was sent. `states` are the run's states, one per GET of the run."""

    states: list[str] = field(default_factory=lambda: ["PENDING", "RUNNING", "SUCCEEDED"])
    refuse_run: bool = False
    experiments: dict[str, str] = field(default_factory=lambda: {"existing": "exp-0"})
    requests: list[Recorded] = field(default_factory=list)
    url: str = ""

    def sent(self, method: str, path: str) -> list[Recorded]:
        return [r for r in self.requests if r.method == method and r.path == path]

    def answer(self, method: str, path: str, query: dict[str, list[str]], body: Any) -> tuple[int, Any]:
        if method == "GET" and path == f"{API}/healthz":
            return 200, {"multi_user": False}
        if method == "GET" and path == f"{API}/experiments":
            wanted = (
                json.loads(query["filter"][0])["predicates"][0]["stringValue"] if "filter" in query else ""
            )
            if wanted in self.experiments:
                found = {"experiment_id": self.experiments[wanted], "display_name": wanted}
                return 200, {"experiments": [found], "total_size": 1}
            return 200, {}
        if method == "POST" and path == f"{API}/experiments":
            made = f"exp-{len(self.experiments)}"
            self.experiments[body["display_name"]] = made
            return 200, {"experiment_id": made, "display_name": body["display_name"]}
        if method == "POST" and path == f"{API}/runs":
            if self.refuse_run:
                message = "Invalid input error: the pipeline spec is invalid: no executor for task 'load'"
                return 400, {"error": message, "code": 3, "message": message, "details": []}
            return 200, {"run_id": "run-1", "display_name": body["display_name"], "state": "PENDING"}
        if method == "GET" and path == f"{API}/runs/run-1":
            gets = len(self.sent("GET", path))
            state = self.states[min(gets, len(self.states)) - 1]
            tasks = [{"display_name": "load", "state": "SUCCEEDED" if state == "SUCCEEDED" else "RUNNING"}]
            run: dict[str, Any] = {"run_id": "run-1", "state": state, "run_details": {"task_details": tasks}}
            if state == "FAILED":
                run["error"] = {"code": 2, "message": "task 'load' failed"}
            return 200, run
        return 404, {"error": f"no route {method} {path}", "code": 5, "message": "not found"}


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[FakeKfp]:
    import kfp.client.client

    # The client reads ~/.config/kfp/context.json when it exists; this test's client must not.
    monkeypatch.setattr(kfp.client.client.Client, "_LOCAL_KFP_CONTEXT", str(tmp_path / "no-context.json"))
    for name in ("KFP_HOST", "KF_PIPELINES_UI_ENDPOINT", "KF_PIPELINES_ENDPOINT"):
        monkeypatch.delenv(name, raising=False)
    fake = FakeKfp()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def _serve(self) -> None:
            parsed = urllib.parse.urlparse(self.path)
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            body = json.loads(raw) if raw else None
            query = urllib.parse.parse_qs(parsed.query)
            fake.requests.append(Recorded(self.command, parsed.path, query, body))
            status, answer = fake.answer(self.command, parsed.path, query, body)
            data = json.dumps(answer).encode("utf-8")
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = _serve

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.timeout = 0.1
    stop = threading.Event()
    deadline = time.monotonic() + LIFETIME

    def serve() -> None:
        while not stop.is_set() and time.monotonic() < deadline:
            httpd.handle_request()

    thread = threading.Thread(target=serve, name="fake-kfp", daemon=True)
    thread.start()
    fake.url = f"http://127.0.0.1:{httpd.server_address[1]}"
    try:
        yield fake
    finally:
        stop.set()
        thread.join(timeout=5)
        httpd.server_close()


def built(copy_case: CopyCase, name: str) -> api.BuildResult:
    return api.build(copy_case(CASES / "valid" / name))


def test_submit_creates_the_experiment_and_a_run_with_the_spec_and_typed_parameters(
    server: FakeKfp, copy_case: CopyCase
) -> None:
    result = built(copy_case, "parameter_override")
    sent = submit(
        result.project, result.yaml_path, server.url, experiment="tests", params={"n": "5", "label": "yy"}
    )

    assert sent.experiment == "tests"
    assert sent.run_id == "run-1"
    assert sent.url == f"{server.url}/#/runs/details/run-1"
    assert sent.arguments == {"n": 5, "label": "yy"}
    lookup = server.sent("GET", f"{API}/experiments")
    assert json.loads(lookup[0].query["filter"][0])["predicates"][0]["stringValue"] == "tests"
    (created,) = server.sent("POST", f"{API}/experiments")
    assert created.body["display_name"] == "tests"
    (run,) = server.sent("POST", f"{API}/runs")
    assert run.body["experiment_id"] == server.experiments["tests"]
    assert run.body["display_name"] == sent.run_name
    assert run.body["runtime_config"]["parameters"] == {"n": 5, "label": "yy"}
    spec = run.body["pipeline_spec"]
    assert spec["pipelineInfo"]["name"] == "parameter-override"
    assert set(spec["root"]["dag"]["tasks"]) == {"repeat-step", "pad-step"}


def test_an_existing_experiment_is_reused_and_the_platform_spec_is_sent(
    server: FakeKfp, copy_case: CopyCase
) -> None:
    result = built(copy_case, "cluster_everything")
    sent = submit(result.project, result.yaml_path, server.url, experiment="existing")
    assert sent.experiment_id == "exp-0"
    assert not server.sent("POST", f"{API}/experiments")
    (run,) = server.sent("POST", f"{API}/runs")
    body = run.body["pipeline_spec"]
    assert set(body) == {"pipeline_spec", "platform_spec"}
    executors = body["platform_spec"]["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
    assert executors["exec-train-step"]["secretAsEnv"][1]["secretName"] == "s3-creds"
    assert run.body["runtime_config"]["parameters"] == {}


def test_experiment_defaults_to_the_sidecar_then_default(server: FakeKfp, copy_case: CopyCase) -> None:
    with_experiment = built(copy_case, "cluster_everything")
    assert (
        submit(with_experiment.project, with_experiment.yaml_path, server.url).experiment == "cluster-tests"
    )
    without = built(copy_case, "after_edge")
    assert submit(without.project, without.yaml_path, server.url).experiment == "Default"


def test_no_cache_turns_caching_off_in_every_dag(server: FakeKfp, copy_case: CopyCase) -> None:
    result = built(copy_case, "cluster_everything")
    submit(result.project, result.yaml_path, server.url, use_cache=False)
    spec = server.sent("POST", f"{API}/runs")[0].body["pipeline_spec"]["pipeline_spec"]
    dags = [spec["root"]["dag"], *(c["dag"] for c in spec["components"].values() if "dag" in c)]
    tasks = [task for dag in dags for task in dag["tasks"].values()]
    assert len(tasks) > 5
    assert all(not task.get("cachingOptions", {}).get("enableCache") for task in tasks)


def test_follow_reports_each_change_until_the_run_ends(server: FakeKfp, copy_case: CopyCase) -> None:
    result = built(copy_case, "after_edge")
    sent = submit(result.project, result.yaml_path, server.url)
    seen = list(follow(sent, interval=0, sleep=lambda _: None))
    assert [p.state for p in seen] == ["PENDING", "RUNNING", "SUCCEEDED"]
    assert seen[-1].finished and seen[-1].succeeded
    assert seen[-1].tasks == (("load", "SUCCEEDED"),)


def test_cli_submits_with_kfp_host_and_waits(
    server: FakeKfp, copy_case: CopyCase, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    server.states = ["SUCCEEDED"]
    monkeypatch.setenv("KFP_HOST", server.url)
    folder = copy_case(CASES / "valid" / "parameter_override")
    assert main(["run", str(folder), "--param", "n=2", "--experiment", "cli", "--wait"]) == 0
    out = capsys.readouterr().out
    assert f"run: {server.url}/#/runs/details/run-1" in out
    assert "experiment 'cli'" in out
    assert "succeeded" in out and "load" in out
    assert server.sent("POST", f"{API}/runs")[0].body["runtime_config"]["parameters"] == {"n": 2}
    assert not (folder / ".kale" / "runs").exists()  # nothing ran here


def test_a_failed_run_exits_one_with_the_servers_reason(
    server: FakeKfp, copy_case: CopyCase, capsys: pytest.CaptureFixture[str]
) -> None:
    server.states = ["FAILED"]
    folder = copy_case(CASES / "valid" / "after_edge")
    assert main(["run", str(folder), "--host", server.url, "--wait"]) == 1
    err = capsys.readouterr().err
    assert "the run ended failed: task 'load' failed" in err


def test_a_refused_run_is_a_plain_error_without_traceback(
    server: FakeKfp, copy_case: CopyCase, capsys: pytest.CaptureFixture[str]
) -> None:
    server.refuse_run = True
    folder = copy_case(CASES / "valid" / "after_edge")
    assert main(["run", str(folder), "--host", server.url]) == 1
    err = capsys.readouterr().err
    assert (
        f"error: {server.url}: the KFP server refused submitting the run: 400 Bad Request: Invalid input"
        in err
    )
    assert "Traceback" not in err


def test_an_unreachable_server_is_a_plain_error(copy_case: CopyCase) -> None:
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    result = built(copy_case, "after_edge")
    started = time.monotonic()
    with pytest.raises(SubmitError) as caught:
        submit(result.project, result.yaml_path, f"127.0.0.1:{port}")
    assert time.monotonic() - started < 10
    assert str(caught.value).startswith(f"http://127.0.0.1:{port}: cannot reach the KFP server: ")


def test_bad_params_fail_before_anything_is_sent(server: FakeKfp, copy_case: CopyCase) -> None:
    result = built(copy_case, "parameter_override")
    with pytest.raises(KaleYamlError, match="n: 'many' is not an integer"):
        submit(result.project, result.yaml_path, server.url, params={"n": "many"})
    assert server.requests == []


@pytest.mark.parametrize("flag", ["--wait", "--experiment=x"])
def test_remote_flags_without_a_host_are_usage_errors(
    flag: str, copy_case: CopyCase, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("KFP_HOST", raising=False)
    folder = copy_case(CASES / "valid" / "after_edge")
    assert main(["run", str(folder), flag]) == 2
    assert "need --host URL (or KFP_HOST)" in capsys.readouterr().err


def test_local_runs_here_even_when_kfp_host_is_set(
    server: FakeKfp, copy_case: CopyCase, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KFP_HOST", server.url)
    folder = copy_case(CASES / "valid" / "after_edge")
    assert main(["run", str(folder), "--local"]) == 0
    assert server.requests == []
    assert (folder / ".kale" / "runs").is_dir()
    assert main(["run", str(folder), "--local", "--host", server.url]) == 2
