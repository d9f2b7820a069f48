"""`kale-yaml run --host URL`: submit the compiled pipeline to a KFP server with kfp.Client, then follow it.

kfp.Client prints links and logs as it works; that output is silenced here, because the core never prints:
`submit` returns a `Submission` and `follow` yields `Progress` values for the command line to show.

kfp.Client sends requests without a timeout, retries its health check for half a minute, and takes whatever
answers for its API. So every kfp call here goes through `_talking`: each request gets a timeout and is tried
at most twice, an answer that is not KFP's JSON is recognised as such, and every way the HTTP stack, kfp or
the server can fail becomes one `SubmitError` with a plain message (`_problem`).
"""

from __future__ import annotations

import contextlib
import datetime
import io
import json
import logging
import math
import os
import re
import tempfile
import time
import unicodedata
import urllib.parse
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kale_yaml.errors import Diagnostic, KaleYamlError
from kale_yaml.plan.project import Project
from kale_yaml.resolve.model import ParameterValue
from kale_yaml.resolve.parameters import parse_params, pipeline_arguments

HOST_ENV = "KFP_HOST"
UI_ENV = "KF_PIPELINES_UI_ENDPOINT"  # kfp.Client's own variable for a UI at another address
TOKEN_ENV = "KF_PIPELINES_SA_TOKEN_PATH"  # kfp's own variable for a file holding a bearer token
DEFAULT_EXPERIMENT = "Default"
DEFAULT_TIMEOUT = 30.0  # seconds one request waits for the server's answer
DEFAULT_WAIT_TIMEOUT = 24 * 3600.0  # seconds `follow` waits for a run to finish
FINISHED = frozenset({"SUCCEEDED", "FAILED", "SKIPPED", "CANCELED"})
AUTH_HINT = (
    f"if a login page stands in front of Kubeflow Pipelines, authenticate: {TOKEN_ENV}=FILE sends the token"
    " in FILE, or put a session cookie in ~/.config/kfp/context.json as client_authentication_cookie"
)
_NAMED_CHARACTERS = {" ": "a space", "\n": "a newline", "\r": "a carriage return", "\t": "a tab"}


class SubmitError(KaleYamlError):
    """The KFP server could not be reached, refused a request, or the run did not succeed."""


class _NotKfp(Exception):
    """An answer KFP's API would not give: something else answers at the host, such as a login page."""


@dataclass(frozen=True)
class Submission:
    host: str
    experiment: str
    experiment_id: str
    run_id: str
    run_name: str
    url: str  # the run's page in the KFP UI
    arguments: dict[str, ParameterValue]
    client: Any = field(default=None, repr=False, compare=False)
    timeout: float = field(default=DEFAULT_TIMEOUT, compare=False)


@dataclass(frozen=True)
class Progress:
    """The run's state as the server reports it, with the state of each task it lists."""

    state: str
    tasks: tuple[tuple[str, str], ...]  # (display name, state), in the server's order
    finished: bool
    error: str | None = None

    @property
    def succeeded(self) -> bool:
        return self.state == "SUCCEEDED"


def host_from_environment(host: str | None) -> str | None:
    """`--host` if given, else KFP_HOST from the environment; a KFP_HOST of only blanks counts as unset."""
    if host is not None:
        return host
    return os.environ.get(HOST_ENV, "").strip() or None


def server_url(host: str) -> str:
    """The base URL of the KFP server `host` names, `http://` when it gives no scheme.
    Raises `SubmitError` for a host no request could be sent to."""
    problem = _url_problem(host)
    if problem:
        raise SubmitError.single(Diagnostic(file=repr(host), message=f"not a KFP server URL: {problem}"))
    scheme, _, rest = host.partition("://") if "://" in host else ("http", "", host)
    return f"{scheme.lower()}://{rest}"  # kfp.Client takes "HTTP://" for a host without a scheme


def submit(
    project: Project,
    package: Path,
    host: str,
    *,
    experiment: str | None = None,
    params: dict[str, str] | None = None,
    use_cache: bool = True,
    timeout: float = DEFAULT_TIMEOUT,
) -> Submission:
    """Create the experiment if it is missing, then a run of `package` (the compiled YAML) with `params`,
    typed as for a local run; `use_cache=False` turns caching off for every task of the run. Each request
    waits `timeout` seconds for its answer. Raises `SubmitError`."""
    base = server_url(host)
    ui = server_url(os.environ.get(UI_ENV) or base).rstrip("/")
    arguments = parse_params(project.config.parameters, params or {})
    name = experiment or project.config.experiment or DEFAULT_EXPERIMENT
    run_name = f"{project.config.name} {datetime.datetime.now():%Y-%m-%d %H-%M-%S}"
    credentials = _token_credentials()
    with tempfile.TemporaryDirectory(prefix="kale-yaml-") as tmp:
        if not use_cache:
            package = _without_cache(package, Path(tmp))
        with _talking(base, "the health check", timeout):
            client = _connect(base, timeout, credentials)
        doing = f"creating experiment {name!r}"
        with _talking(base, doing, timeout):
            made = client.create_experiment(name=name)
            _require(made, "experiment_id")
        with _talking(base, "submitting the run", timeout):
            run = client.run_pipeline(
                experiment_id=made.experiment_id,
                job_name=run_name,
                pipeline_package_path=str(package),
                params=pipeline_arguments(arguments),
            )
            _require(run, "run_id")
    return Submission(
        host=base,
        experiment=name,
        experiment_id=str(made.experiment_id),
        run_id=str(run.run_id),
        run_name=run_name,
        url=f"{ui}/#/runs/details/{run.run_id}",
        arguments=arguments,
        client=client,
        timeout=timeout,
    )


def follow(
    submission: Submission,
    *,
    interval: float = 5.0,
    wait_timeout: float | None = DEFAULT_WAIT_TIMEOUT,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> Iterator[Progress]:
    """Poll the run until it finishes; yield a `Progress` whenever its state or a task's state changes.
    Raises `SubmitError` when the run is still going after `wait_timeout` seconds (None: no limit)."""
    deadline = math.inf if wait_timeout is None else clock() + wait_timeout
    doing = f"following run {submission.run_id}"
    last: Progress | None = None
    while True:
        with _talking(submission.host, doing, submission.timeout):
            run = submission.client.get_run(submission.run_id)
            _require(run, "run_id")
        progress = _progress(run)
        if last is None or (progress.state, progress.tasks) != (last.state, last.tasks):
            yield progress
            last = progress
        if progress.finished:
            return
        left = deadline - clock()
        if left <= 0:
            message = (
                f"still {progress.state.lower()} after {wait_timeout:g} s (--wait-timeout); stopped waiting,"
                " the run goes on on the server"
            )
            raise SubmitError.single(Diagnostic(file=submission.url, message=message))
        sleep(min(interval, left))


def _progress(run: Any) -> Progress:
    state = str(getattr(run, "state", None) or "PENDING")
    tasks: dict[str, str] = {}
    details = getattr(getattr(run, "run_details", None), "task_details", None) or []
    for task in details:
        name = getattr(task, "display_name", None)
        if name:
            tasks[str(name)] = str(getattr(task, "state", None) or "PENDING")
    error = getattr(getattr(run, "error", None), "message", None)
    return Progress(state=state, tasks=tuple(tasks.items()), finished=state in FINISHED, error=error or None)


def _without_cache(package: Path, folder: Path) -> Path:
    """The package with caching off for every task. kfp.Client's own switch only reaches the root's tasks,
    and the steps may run in a pipeline of their own (volumes.py)."""
    import yaml

    documents = list(yaml.safe_load_all(package.read_text(encoding="utf-8")))
    spec = documents[0]
    dags = [spec["root"]["dag"], *(c["dag"] for c in spec.get("components", {}).values() if "dag" in c)]
    for dag in dags:
        for task in dag.get("tasks", {}).values():
            task["cachingOptions"] = {}  # how KFP writes enableCache: false
    copy = folder / package.name
    copy.write_text(yaml.safe_dump_all(documents, sort_keys=False), encoding="utf-8")
    return copy


# -- the host URL -----------------------------------------------------------------------------------------
def _url_problem(host: str) -> str | None:
    """Why `host` cannot be a server's URL, checked before anything is sent: http.client would raise
    InvalidURL for a blank or control character, urllib3 a LocationParseError for a bad port."""
    for position, character in enumerate(host, start=1):
        if character.isspace() or unicodedata.category(character) in ("Cc", "Cf", "Cs"):
            name = _NAMED_CHARACTERS.get(character, f"the character {character!r}")
            return f"it holds {name} at position {position}"
    url = host if "://" in host else f"http://{host}"
    scheme = url.partition("://")[0]
    if scheme.lower() not in ("http", "https"):
        return f"the scheme is {scheme!r}; a KFP server speaks http:// or https://"
    try:
        parts = urllib.parse.urlsplit(url)
    except ValueError as exc:
        return f"it does not parse ({exc})"
    if not parts.hostname:
        return "it names no host"
    try:
        parts.port  # noqa: B018 - parsing the port is the check
    except ValueError:
        return "the port is not a number from 0 to 65535"
    if parts.query or parts.fragment:
        return "a server's URL has no query (?) or fragment (#)"
    return None


# -- talking to the server --------------------------------------------------------------------------------
def _token_credentials() -> Any:
    """kfp reads KF_PIPELINES_SA_TOKEN_PATH only inside a cluster, and only without a host; here it also
    authenticates to a host given by URL."""
    path = os.environ.get(TOKEN_ENV, "").strip()
    if not path:
        return None
    if not os.path.isfile(path) or not os.access(path, os.R_OK):
        message = f"{TOKEN_ENV} names no readable token file"
        raise SubmitError.single(Diagnostic(file=path, message=message))
    from kfp.client.set_volume_credentials import ServiceAccountTokenVolumeCredentials

    return ServiceAccountTokenVolumeCredentials(path)


def _connect(base: str, timeout: float, credentials: Any) -> Any:
    """A kfp.Client whose every request, its own health check included, is bounded by `timeout`."""
    import kfp
    import urllib3

    class BoundedClient(kfp.Client):  # type: ignore[misc]
        def _load_config(self, *args: Any, **kwargs: Any) -> Any:
            config = super()._load_config(*args, **kwargs)
            # urllib3 would send a GET that got no answer three more times; once more is enough for a
            # dropped keep-alive connection. A POST is never sent twice, and no status code is retried.
            config.retries = urllib3.Retry(total=None, connect=1, read=1, status=0, other=0, redirect=5)
            return config

        def get_kfp_healthz(self, sleep_duration: int = 5) -> Any:
            # kfp's own tries five times, five seconds apart, logging a traceback each time.
            _bound_requests(self._healthz_api.api_client, timeout)
            return self._healthz_api.healthz_service_get_healthz()

    client = BoundedClient(host=base, credentials=credentials)
    # kfp skips its health check when ~/.config/kfp/context.json names a namespace.
    _bound_requests(client._run_api.api_client, timeout)
    return client


def _bound_requests(api_client: Any, timeout: float) -> None:
    """Give each request of `api_client` a timeout, and check that what answers it is KFP's API.
    kfp.Client sends none, and urllib3 then waits for an answer forever."""
    rest = api_client.rest_client
    if "request" in vars(rest):
        return  # already bounded: all of a client's APIs share one rest client
    send = rest.request

    def request(method: str, url: str, *args: Any, _request_timeout: Any = None, **kwargs: Any) -> Any:
        # kfp_server_api takes an int or a (connect, read) pair; a float alone would mean no timeout at all.
        answer = send(method, url, *args, _request_timeout=_request_timeout or (timeout, timeout), **kwargs)
        _check_api_answer(_request_line(method, url, answer), answer)
        return answer

    rest.request = request


def _request_line(method: str, url: str, answer: Any) -> str:
    """`GET /path`, and where a redirect led: a login page is often reached that way."""
    sent = urllib.parse.urlsplit(url).path
    landed = getattr(getattr(answer, "urllib3_response", None), "url", None)
    if isinstance(landed, str) and urllib.parse.urlsplit(landed).path not in ("", sent):
        return f"{method} {sent} (redirected to {landed})"
    return f"{method} {sent}"


def _check_api_answer(request: str, answer: Any) -> None:
    """KFP's API answers a JSON object; a login page or a proxy answers something else, which kfp_server_api
    would turn into a response with every field None."""
    content_type = answer.getheader("content-type") or ""
    if "json" not in content_type.lower():
        raise _NotKfp(f"{request} answered {answer.status} {_kind(content_type, answer.data)}")
    try:
        data = json.loads(answer.data)
    except ValueError:
        raise _NotKfp(f"{request} answered {answer.status} {content_type} that does not parse") from None
    if not isinstance(data, dict):
        raise _NotKfp(f"{request} answered {answer.status} JSON that is not an object")


def _require(answer: Any, name: str) -> None:
    if not getattr(answer, name, None):
        raise _NotKfp(f"it has no {name}")


def _kind(content_type: str, body: Any) -> str:
    """The media type, with an HTML page's title: what a person would recognise the page by."""
    kind = content_type.split(";")[0].strip() or "without a content type"
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else str(body or "")
    title = re.search(r"<title[^>]*>(.*?)</title>", text[:100_000], re.IGNORECASE | re.DOTALL)
    if title and title.group(1).strip():
        return f'{kind} ("{" ".join(title.group(1).split())[:80]}")'
    return kind


@contextlib.contextmanager
def _talking(base: str, doing: str, timeout: float) -> Iterator[None]:
    """Every kfp call runs in here: kfp's output is silenced, and any way it fails is one SubmitError."""
    with _quiet():
        try:
            yield
        except Exception as exc:
            problem = _problem(exc, doing, timeout)
            if problem is None:
                raise  # a bug in kale-yaml: its traceback is wanted
            # Part of the message is the server's text: a terminal must not take it for control sequences.
            raise SubmitError.single(Diagnostic(file=base, message=_printable(problem))) from None


def _problem(exc: BaseException, doing: str, timeout: float) -> str | None:
    """What went wrong, for every exception the HTTP stack, kfp_server_api, kfp or the server can raise."""
    import http.client

    from kfp_server_api.exceptions import ApiException, OpenApiException  # type: ignore[import-untyped]
    from urllib3 import exceptions as urllib3_errors

    if isinstance(exc, urllib3_errors.MaxRetryError) and exc.reason is not None:
        return _problem(exc.reason, doing, timeout)
    if isinstance(exc, _NotKfp):
        return f"the answer to {doing} is not KFP's API: {exc}; {AUTH_HINT}"
    if isinstance(exc, ApiException):
        return _refusal(exc, doing)
    connecting = (urllib3_errors.NewConnectionError, urllib3_errors.ConnectTimeoutError)
    if isinstance(exc, (*connecting, urllib3_errors.ProxyError, urllib3_errors.SSLError)):
        return f"cannot reach the KFP server: {_cause(exc)}"
    if isinstance(exc, (urllib3_errors.ReadTimeoutError, TimeoutError)):
        return f"no answer to {doing} within {timeout:g} s (--timeout)"
    if isinstance(exc, (urllib3_errors.HTTPError, http.client.HTTPException)):
        if isinstance(_innermost(exc), ConnectionError):  # http.client's RemoteDisconnected is one too
            return f"the server broke off {doing} without an answer ({_cause(exc)})"
        return f"the answer to {doing} is not HTTP ({_cause(exc)}); is this the address of a KFP server?"
    if isinstance(exc, OSError):
        return f"cannot reach the KFP server: {_cause(exc)}"
    if isinstance(exc, (ValueError, OpenApiException)):  # kfp's own complaints, JSON it cannot read
        return f"{doing}: {exc}"
    return None


def _refusal(exc: Any, doing: str) -> str:
    status, reason = exc.status, " ".join(str(exc.reason or "").split())
    if not status:  # kfp_server_api's way to say that TLS failed
        return f"cannot reach the KFP server: {reason}"
    headers = exc.headers or {}
    content_type = next((v for k, v in headers.items() if k.lower() == "content-type"), "")
    if "json" not in content_type.lower():
        what = f"{status} {_kind(content_type, exc.body)}"
        return f"the answer to {doing} is not KFP's API: {what}; {AUTH_HINT}"
    verb = "failed" if status >= 500 else "refused"
    message = f"the KFP server {verb} {doing}: {status} {reason}".rstrip()
    detail = _detail(exc.body)
    if status in (401, 403):
        detail = f"{detail}; {AUTH_HINT}" if detail else AUTH_HINT
    return f"{message}: {detail}" if detail else message


def _printable(text: str) -> str:
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def _cause(exc: BaseException) -> str:
    """The innermost reason, as the operating system or http.client words it."""
    innermost = _innermost(exc)
    if isinstance(innermost, OSError) and innermost.strerror:
        return str(innermost.strerror)
    text = str(innermost).strip()
    return f"{type(innermost).__name__}: {text}" if text else type(innermost).__name__


def _innermost(exc: BaseException) -> BaseException:
    """The exception at the bottom of urllib3's wrappers, or the first with an operating system's reason."""
    seen: set[int] = set()
    innermost = exc
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        innermost = current
        if isinstance(current, OSError) and current.strerror:
            break
        inner = getattr(current, "reason", None)
        if not isinstance(inner, BaseException):  # urllib3's ProtocolError holds its cause as an argument
            inner = next((a for a in current.args if isinstance(a, BaseException)), None)
        current = inner or current.__cause__ or current.__context__
    return innermost


def _detail(body: Any) -> str:
    """KFP answers errors as JSON with `message` (or `error`); anything else is shown as it came."""
    if isinstance(body, bytes):
        body = body.decode("utf-8", "replace")
    if not body:
        return ""
    try:
        data = json.loads(body)
    except (TypeError, ValueError):
        return " ".join(str(body).split())[:500]
    if isinstance(data, dict):
        return str(data.get("message") or data.get("error") or data).strip()
    return str(data)


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """kfp.Client prints links, warns that it needs a v2 server and logs through the root logger; urllib3
    logs its retries. The command line says what matters, so none of that reaches the user. Logging is off
    as a whole: kfp_server_api resets the levels of its loggers and urllib3's whenever a client is made."""
    root = logging.getLogger()
    handlers = list(root.handlers)  # logging.info() on a root logger without handlers adds one for good
    disabled = logging.root.manager.disable
    logging.disable(logging.CRITICAL)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            yield
    finally:
        logging.disable(disabled)
        for handler in [h for h in root.handlers if h not in handlers]:
            root.removeHandler(handler)
