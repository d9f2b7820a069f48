"""`kale-yaml run --host`: submitting with the real kfp.Client to a small fake KFP API server on 127.0.0.1
that records what the client sends and answers with minimal valid JSON."""

from __future__ import annotations

import json
import logging
import os
import re
import socket
import subprocess
import sys
import threading
import time
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from syrupy.assertion import SnapshotAssertion

from kale_yaml import api
from kale_yaml.cli.main import main
from kale_yaml.errors import KaleYamlError, SubmitError
from kale_yaml.run.remote import follow, host_from_environment, submit
from kale_yaml.run.remote_client import MAX_REDIRECTS
from kale_yaml.run.remote_limits import MAX_ANSWER_BYTES
from tests.conftest import CASES, CopyCase

API = "/apis/v2beta1"
LIFETIME = 60.0  # the server stops by itself after this long, whatever the test does
LOGIN_PAGE = b"<!doctype html><html><head><title>Sign in</title></head><body><form></form></body></html>"
TRICKLE = 0.25  # seconds between the bytes of a trickling answer: far less than any socket timeout here
ENDLESS_CHUNK = b" " * 65536
SOCKET_BUFFERS = 16 * 1024 * 1024  # more than the kernel holds on its way from the server to the client


@dataclass
class Recorded:
    method: str
    path: str
    query: dict[str, list[str]]
    body: Any
    headers: dict[str, str] = field(default_factory=dict)  # names in lower case


@dataclass
class FakeKfp:
    """What the server knows and what it was sent. `states` are the run's states, one per GET of the run."""

    states: list[str] = field(default_factory=lambda: ["PENDING", "RUNNING", "SUCCEEDED"])
    refuse_run: bool = False
    # How the server misbehaves: "kfp" does not; "garbage" answers bytes that are not HTTP; "hangup" closes
    # the connection without an answer; "html" answers a login page to everything; "redirect" sends
    # everything to a login page; "empty-json" answers `{}` to everything; "hang" answers the health check
    # and never the API; "error" answers 500 to everything. Slow or endless answers: "trickle-body" sends the
    # headers, then a byte every TRICKLE seconds; "trickle-headers" trickles a header line; "trickle-run" does
    # as "trickle-body" only while the run is followed; "endless" sends a body without end until the client
    # hangs up, "endless-chunked" the same in chunked encoding, "huge-length" declares a terabyte; "loop"
    # redirects every request to itself.
    mode: str = "kfp"
    experiments: dict[str, str] = field(default_factory=lambda: {"existing": "exp-0"})
    requests: list[Recorded] = field(default_factory=list)
    url: str = ""
    body_bytes_sent: int = 0  # of endless bodies: what the client let the server send before it hung up

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
    stop = threading.Event()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def _serve(self) -> None:
            parsed = urllib.parse.urlparse(self.path)
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            body = json.loads(raw) if raw else None
            query = urllib.parse.parse_qs(parsed.query)
            headers = {name.lower(): value for name, value in self.headers.items()}
            fake.requests.append(Recorded(self.command, parsed.path, query, body, headers))
            if fake.mode == "garbage":
                self.close_connection = True
                self.wfile.write(b"\x00\x17 not HTTP at all\r\n\r\n")
            elif fake.mode == "hangup":
                self.close_connection = True
            elif fake.mode == "html" or (fake.mode == "redirect" and parsed.path == "/login"):
                self._send(200, "text/html; charset=utf-8", LOGIN_PAGE)
            elif fake.mode == "redirect":
                self.send_response(302)
                self.send_header("Location", "/login")
                self.send_header("Content-Length", "0")
                self.end_headers()
            elif fake.mode == "empty-json":
                self._send(200, "application/json", b"{}")
            elif fake.mode == "error":
                failure = {"error": "database is down", "code": 13, "message": "database is down"}
                self._send(500, "application/json", json.dumps(failure).encode("utf-8"))
            elif fake.mode == "hang" and parsed.path != f"{API}/healthz":
                self.close_connection = True
                stop.wait(LIFETIME)  # until the test ends, then hang up without an answer
            elif fake.mode == "loop":
                self.send_response(302)
                self.send_header("Location", parsed.path)
                self.send_header("Content-Length", "0")
                self.end_headers()
            elif fake.mode in ("trickle-body", "trickle-headers") or (
                fake.mode == "trickle-run" and parsed.path == f"{API}/runs/run-1"
            ):
                self._trickle(fake.mode == "trickle-headers")
            elif fake.mode in ("endless", "endless-chunked", "huge-length"):
                self._endless(fake.mode)
            else:
                status, answer = fake.answer(self.command, parsed.path, query, body)
                self._send(status, "application/json", json.dumps(answer).encode("utf-8"))

        def _send(self, status: int, content_type: str, data: bytes) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _trickle(self, in_headers: bool) -> None:
            self.close_connection = True
            head = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
            head += b"X-Slow: " if in_headers else b"Content-Length: 100000\r\n\r\n{"
            self.wfile.write(head)
            while not stop.wait(TRICKLE):  # until the client hangs up or the test ends
                try:
                    self.wfile.write(b"a" if in_headers else b" ")
                except OSError:
                    return

        def _endless(self, mode: str) -> None:
            self.close_connection = True
            framing = {"endless": "", "endless-chunked": "Transfer-Encoding: chunked\r\n"}
            head = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
            head += framing.get(mode, f"Content-Length: {10**12}\r\n") + "\r\n"
            self.wfile.write(head.encode("ascii"))
            chunk = (
                b"%x\r\n%b\r\n" % (len(ENDLESS_CHUNK), ENDLESS_CHUNK)
                if mode == "endless-chunked"
                else ENDLESS_CHUNK
            )
            while not stop.is_set():
                try:
                    self.wfile.write(chunk)
                except OSError:
                    return
                fake.body_bytes_sent += len(chunk)

        do_GET = do_POST = _serve

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.timeout = 0.1
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


# -- servers that are not what they should be: every one ends in one plain message, quickly ----------------
@dataclass
class Outcome:
    code: int
    out: str
    err: str
    seconds: float
    logged: list[str]  # what kfp, its API client or urllib3 logged: the user must not see any of it


def run_cli(args: list[str], capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture) -> Outcome:
    caplog.set_level(logging.DEBUG)
    capsys.readouterr()
    started = time.monotonic()
    code = main(args)
    seconds = time.monotonic() - started
    captured = capsys.readouterr()
    foreign = [r for r in caplog.records if r.name == "root" or r.name.startswith(("kfp", "urllib3"))]
    return Outcome(code, captured.out, captured.err, seconds, [r.getMessage() for r in foreign])


def stable(text: str) -> str:
    """The fake server's port changes from run to run."""
    return re.sub(r"127\.0\.0\.1:\d+", "HOST:PORT", text)


def assert_plain(outcome: Outcome) -> None:
    assert outcome.code == 1
    assert "Traceback" not in outcome.out + outcome.err
    assert outcome.logged == []
    assert outcome.seconds < 5


@pytest.mark.parametrize(("mode", "wait"), [("garbage", False), ("garbage", True), ("hangup", False)])
def test_a_server_that_answers_garbage_or_nothing_is_a_plain_error(
    mode: str,
    wait: bool,
    server: FakeKfp,
    copy_case: CopyCase,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
    snapshot: SnapshotAssertion,
) -> None:
    server.mode = mode
    folder = copy_case(CASES / "valid" / "after_edge")
    args = ["run", str(folder), "--host", server.url, *(["--wait"] if wait else [])]
    outcome = run_cli(args, capsys, caplog)
    assert_plain(outcome)
    assert stable(outcome.err) == snapshot


@pytest.mark.parametrize(
    "host",
    [
        pytest.param("http://127.0.0.1:1/\nx", id="newline"),
        pytest.param("127.0.0.1:1\r", id="carriage-return"),
        pytest.param("http://kfp example", id="space"),
        pytest.param("http://kfp\x00", id="nul"),
        pytest.param("ftp://kfp.example", id="ftp"),
        pytest.param("http://", id="no-host"),
        pytest.param("http://:8888", id="only-a-port"),
        pytest.param("kfp.example:port", id="port-not-a-number"),
        pytest.param("kfp.example:99999", id="port-too-big"),
        pytest.param("http://kfp.example/?user=me", id="query"),
        pytest.param("http://[::1", id="unclosed-ipv6"),
    ],
)
def test_a_host_that_is_not_a_usable_url_is_a_plain_error_before_building(
    host: str,
    copy_case: CopyCase,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
    snapshot: SnapshotAssertion,
) -> None:
    folder = copy_case(CASES / "valid" / "after_edge")
    outcome = run_cli(["run", str(folder), "--host", host], capsys, caplog)
    assert_plain(outcome)
    assert not (folder / ".kale").exists()
    assert outcome.err == snapshot


def test_a_bad_host_from_the_api_is_a_submit_error(copy_case: CopyCase) -> None:
    result = built(copy_case, "after_edge")
    with pytest.raises(SubmitError, match="newline"):
        submit(result.project, result.yaml_path, "http://kfp\n")


@pytest.mark.parametrize("mode", ["html", "redirect"])
def test_a_login_page_in_front_of_kfp_is_named_with_how_to_authenticate(
    mode: str,
    server: FakeKfp,
    copy_case: CopyCase,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
    snapshot: SnapshotAssertion,
) -> None:
    server.mode = mode
    folder = copy_case(CASES / "valid" / "after_edge")
    outcome = run_cli(["run", str(folder), "--host", server.url, "--wait"], capsys, caplog)
    assert_plain(outcome)
    assert "submitted" not in outcome.out
    assert "KF_PIPELINES_SA_TOKEN_PATH" in outcome.err
    assert stable(outcome.err) == snapshot


def test_the_token_in_kf_pipelines_sa_token_path_is_sent(
    server: FakeKfp, copy_case: CopyCase, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    token = tmp_path / "token"
    token.write_text("secret-token\n", encoding="utf-8")
    monkeypatch.setenv("KF_PIPELINES_SA_TOKEN_PATH", str(token))
    result = built(copy_case, "after_edge")
    submit(result.project, result.yaml_path, server.url)
    assert server.requests
    assert {r.headers.get("authorization") for r in server.requests} == {"Bearer secret-token"}


def test_the_cookie_in_kfps_context_file_is_sent(server: FakeKfp, copy_case: CopyCase) -> None:
    import kfp.client.client

    context = {"namespace": "", "client_authentication_cookie": "authservice_session=abc"}
    Path(kfp.client.client.Client._LOCAL_KFP_CONTEXT).write_text(json.dumps(context), encoding="utf-8")
    result = built(copy_case, "after_edge")
    submit(result.project, result.yaml_path, server.url)
    assert {r.headers.get("cookie") for r in server.requests} == {"authservice_session=abc"}


def test_a_missing_token_file_is_named_before_anything_is_sent(
    server: FakeKfp, copy_case: CopyCase, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("KF_PIPELINES_SA_TOKEN_PATH", str(tmp_path / "nothing"))
    result = built(copy_case, "after_edge")
    with pytest.raises(SubmitError, match="KF_PIPELINES_SA_TOKEN_PATH names no readable token file"):
        submit(result.project, result.yaml_path, server.url)
    assert server.requests == []


def test_a_json_server_that_is_not_kfp_is_not_taken_for_a_submitted_run(
    server: FakeKfp,
    copy_case: CopyCase,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
    snapshot: SnapshotAssertion,
) -> None:
    server.mode = "empty-json"
    folder = copy_case(CASES / "valid" / "after_edge")
    outcome = run_cli(["run", str(folder), "--host", server.url, "--wait"], capsys, caplog)
    assert_plain(outcome)
    assert "None" not in outcome.out + outcome.err
    assert stable(outcome.err) == snapshot


def test_a_run_without_an_id_is_not_followed(server: FakeKfp, copy_case: CopyCase) -> None:
    result = built(copy_case, "after_edge")
    real_answer = server.answer

    def without_run_id(method: str, path: str, query: dict[str, list[str]], body: Any) -> tuple[int, Any]:
        status, answer = real_answer(method, path, query, body)
        if path == f"{API}/runs":
            answer.pop("run_id")
        return status, answer

    server.answer = without_run_id  # type: ignore[method-assign]
    with pytest.raises(SubmitError, match="no run_id"):
        submit(result.project, result.yaml_path, server.url)


def test_an_api_that_never_answers_ends_at_the_request_timeout(
    server: FakeKfp,
    copy_case: CopyCase,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
    snapshot: SnapshotAssertion,
) -> None:
    server.mode = "hang"
    folder = copy_case(CASES / "valid" / "after_edge")
    outcome = run_cli(["run", str(folder), "--host", server.url, "--timeout", "0.5"], capsys, caplog)
    assert_plain(outcome)
    assert server.sent("GET", f"{API}/healthz")  # the health check answered; the API did not
    assert stable(outcome.err) == snapshot


def test_an_api_that_never_answers_takes_the_timeout_once_not_once_per_try(
    server: FakeKfp, copy_case: CopyCase
) -> None:
    """--timeout is the whole request's time: the GET that gets no answer is not sent again after it."""
    server.mode = "hang"
    result = built(copy_case, "after_edge")
    started = time.monotonic()
    with pytest.raises(
        SubmitError, match=r"no answer to creating experiment 'Default' within 1\.5 s \(--timeout\)"
    ):
        submit(result.project, result.yaml_path, server.url, timeout=1.5)
    assert 1.5 <= time.monotonic() - started < 2.8  # once per try would be 3 s
    assert len(server.sent("GET", f"{API}/experiments")) == 1


@pytest.mark.parametrize(
    ("mode", "extra"),
    [
        pytest.param("trickle-body", [], id="body"),
        pytest.param("trickle-body", ["--wait", "--wait-timeout", "8"], id="body-with-wait"),
        pytest.param("trickle-headers", [], id="headers"),
        pytest.param("trickle-run", ["--wait", "--wait-timeout", "8"], id="while-following"),
    ],
)
def test_an_answer_that_trickles_in_ends_at_the_timeout(
    mode: str,
    extra: list[str],
    server: FakeKfp,
    copy_case: CopyCase,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
    snapshot: SnapshotAssertion,
) -> None:
    """A byte every quarter of a second never trips a socket's timeout; the request's deadline stops it."""
    server.mode = mode
    folder = copy_case(CASES / "valid" / "after_edge")
    args = ["run", str(folder), "--host", server.url, "--timeout", "1", *extra]
    outcome = run_cli(args, capsys, caplog)
    assert_plain(outcome)
    assert outcome.seconds >= 1
    assert stable(outcome.err) == snapshot


@pytest.mark.parametrize("mode", ["endless", "endless-chunked", "huge-length"])
def test_an_answer_without_end_stops_at_the_size_limit(
    mode: str,
    server: FakeKfp,
    copy_case: CopyCase,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
    snapshot: SnapshotAssertion,
) -> None:
    server.mode = mode
    folder = copy_case(CASES / "valid" / "after_edge")
    outcome = run_cli(["run", str(folder), "--host", server.url, "--timeout", "30"], capsys, caplog)
    assert_plain(outcome)  # in seconds, with 30 to go: the size stopped it, not the time
    assert server.body_bytes_sent < MAX_ANSWER_BYTES + SOCKET_BUFFERS
    assert stable(outcome.err) == snapshot


def test_an_answer_without_end_leaves_the_memory_of_kale_yaml_modest(
    server: FakeKfp, copy_case: CopyCase, tmp_path: Path
) -> None:
    """In a process of its own: its peak resident memory, against that of one whose server answers at once."""
    folder = copy_case(CASES / "valid" / "after_edge")
    server.mode = "error"
    _, _, baseline = run_measured(folder, server.url, tmp_path)
    server.mode = "endless"
    code, err, peak = run_measured(folder, server.url, tmp_path)
    assert code == 1
    assert "larger than 32 MiB" in err
    assert peak - baseline < 4 * MAX_ANSWER_BYTES


def test_a_redirect_loop_is_named_as_one(
    server: FakeKfp,
    copy_case: CopyCase,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
    snapshot: SnapshotAssertion,
) -> None:
    server.mode = "loop"
    folder = copy_case(CASES / "valid" / "after_edge")
    outcome = run_cli(["run", str(folder), "--host", server.url], capsys, caplog)
    assert_plain(outcome)
    assert len(server.sent("GET", f"{API}/healthz")) == 1 + MAX_REDIRECTS
    assert "not HTTP" not in outcome.err
    assert stable(outcome.err) == snapshot


def test_wait_gives_up_after_the_wait_timeout(
    server: FakeKfp,
    copy_case: CopyCase,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
    snapshot: SnapshotAssertion,
) -> None:
    server.states = ["PENDING"]
    folder = copy_case(CASES / "valid" / "after_edge")
    args = ["run", str(folder), "--host", server.url, "--wait", "--wait-timeout", "0.5"]
    outcome = run_cli(args, capsys, caplog)
    assert_plain(outcome)
    assert "pending" in outcome.out
    assert stable(outcome.err) == snapshot


def test_follow_stops_at_its_limit_with_the_run_still_going(server: FakeKfp, copy_case: CopyCase) -> None:
    server.states = ["PENDING", "RUNNING"]
    result = built(copy_case, "after_edge")
    sent = submit(result.project, result.yaml_path, server.url)
    now = [0.0]

    def sleep(seconds: float) -> None:
        now[0] += seconds

    seen: list[str] = []
    with pytest.raises(SubmitError, match="still running after 60 s"):
        for progress in follow(sent, interval=5, wait_timeout=60, sleep=sleep, clock=lambda: now[0]):
            seen.append(progress.state)
    assert seen == ["PENDING", "RUNNING"]
    assert now[0] == 60


def test_a_server_error_fails_fast_without_kfps_logs(
    server: FakeKfp,
    copy_case: CopyCase,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
    snapshot: SnapshotAssertion,
) -> None:
    server.mode = "error"
    folder = copy_case(CASES / "valid" / "after_edge")
    outcome = run_cli(["run", str(folder), "--host", server.url], capsys, caplog)
    assert_plain(outcome)
    assert len(server.sent("GET", f"{API}/healthz")) == 1  # asked once, not five times
    assert stable(outcome.err) == snapshot


def test_a_server_error_shows_only_kale_yamls_message_on_the_real_stderr(
    server: FakeKfp, copy_case: CopyCase, tmp_path: Path
) -> None:
    """pytest captures log records itself; only a process of its own shows what a user's terminal shows."""
    server.mode = "error"
    folder = copy_case(CASES / "valid" / "after_edge")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KFP_", "KF_PIPELINES_"))}
    env["HOME"] = str(tmp_path)  # no ~/.config/kfp/context.json
    command = [sys.executable, "-m", "kale_yaml", "run", str(folder), "--host", server.url]
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=60, check=False)
    assert done.returncode == 1
    assert stable(done.stderr).splitlines() == [
        "error: http://HOST:PORT: the KFP server failed the health check: 500 Internal Server Error: "
        "database is down"
    ]


def run_measured(folder: Path, url: str, home: Path) -> tuple[int, str, int]:
    """`kale-yaml run FOLDER --host URL` in a process of its own: its exit status, its stderr, and its peak
    resident memory in bytes (Linux counts ru_maxrss in KiB)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KFP_", "KF_PIPELINES_"))}
    env["HOME"] = str(home)  # no ~/.config/kfp/context.json
    command = [sys.executable, "-m", "kale_yaml", "run", str(folder), "--host", url, "--timeout", "30"]
    with subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env) as process:
        assert process.stderr is not None
        killer = threading.Timer(60, process.kill)
        killer.start()
        try:
            err = process.stderr.read().decode("utf-8", "replace")
            _, status, usage = os.wait4(process.pid, 0)  # a child's own rusage, not the largest child's
        finally:
            killer.cancel()
        process.returncode = os.waitstatus_to_exitcode(status)
    return process.returncode, err, usage.ru_maxrss * 1024


@pytest.mark.parametrize("host", ["", "  "])
def test_an_empty_host_is_a_usage_error(
    host: str, copy_case: CopyCase, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = copy_case(CASES / "valid" / "after_edge")
    assert main(["run", str(folder), "--host", host]) == 2
    assert "kale-yaml run: --host needs a URL" in capsys.readouterr().err
    assert not (folder / ".kale").exists()


@pytest.mark.parametrize("value", ["", "  ", "\n"])
def test_an_empty_kfp_host_counts_as_unset(
    value: str, copy_case: CopyCase, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("KFP_HOST", value)
    assert host_from_environment(None) is None
    folder = copy_case(CASES / "valid" / "after_edge")
    assert main(["run", str(folder), "--wait"]) == 2
    assert "need --host URL (or KFP_HOST)" in capsys.readouterr().err


@pytest.mark.parametrize(
    "args",
    [
        ["--timeout", "0"],
        ["--timeout", "soon"],
        ["--timeout", "nan"],
        ["--wait-timeout", "-1"],
        ["--wait-timeout", "inf"],
    ],
)
def test_timeouts_are_positive_numbers_of_seconds(
    args: list[str], copy_case: CopyCase, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = copy_case(CASES / "valid" / "after_edge")
    with pytest.raises(SystemExit) as exited:
        main(["run", str(folder), "--host", "http://127.0.0.1:1", *args])
    assert exited.value.code == 2
    assert "a positive number of seconds" in capsys.readouterr().err


@pytest.mark.parametrize("args", [["--timeout", "5"], ["--wait", "--wait-timeout", "5"]])
def test_timeouts_need_a_host(
    args: list[str], copy_case: CopyCase, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = copy_case(CASES / "valid" / "after_edge")
    assert main(["run", str(folder), *args]) == 2
    assert "need --host URL (or KFP_HOST)" in capsys.readouterr().err


def test_wait_timeout_needs_wait(copy_case: CopyCase, capsys: pytest.CaptureFixture[str]) -> None:
    folder = copy_case(CASES / "valid" / "after_edge")
    assert main(["run", str(folder), "--host", "http://127.0.0.1:1", "--wait-timeout", "5"]) == 2
    assert "--wait-timeout needs --wait" in capsys.readouterr().err
