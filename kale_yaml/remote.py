"""`kale-yaml run --host URL`: submit the compiled pipeline to a KFP server with kfp.Client, then follow it.

kfp.Client prints links and logs as it works; that output is captured here, because the core never prints:
`submit` returns a `Submission` and `follow` yields `Progress` values for the command line to show. Every
problem the server or the network reports becomes a `SubmitError` with a plain message.
"""

from __future__ import annotations

import contextlib
import datetime
import io
import json
import os
import tempfile
import time
import urllib.error
import urllib.request
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kale_yaml import api
from kale_yaml.errors import Diagnostic, KaleYamlError
from kale_yaml.local import parse_params
from kale_yaml.model import ParameterValue

HOST_ENV = "KFP_HOST"
UI_ENV = "KF_PIPELINES_UI_ENDPOINT"  # kfp.Client's own variable for a UI at another address
DEFAULT_EXPERIMENT = "Default"
FINISHED = frozenset({"SUCCEEDED", "FAILED", "SKIPPED", "CANCELED"})


class SubmitError(KaleYamlError):
    """The KFP server could not be reached, refused a request, or the run did not succeed."""


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
    """`--host` if given, else KFP_HOST from the environment (empty means unset)."""
    return host or os.environ.get(HOST_ENV) or None


def submit(
    project: api.Project,
    package: Path,
    host: str,
    *,
    experiment: str | None = None,
    params: dict[str, str] | None = None,
    use_cache: bool = True,
) -> Submission:
    """Create the experiment if it is missing, then a run of `package` (the compiled YAML) with `params`,
    typed as for a local run; `use_cache=False` turns caching off for every task of the run.
    Raises `SubmitError`."""
    arguments = parse_params(project.pipeline, params or {})
    name = experiment or project.config.experiment or DEFAULT_EXPERIMENT
    run_name = f"{project.config.name} {datetime.datetime.now():%Y-%m-%d %H-%M-%S}"
    base = _with_scheme(host)
    _check_reachable(base)
    with tempfile.TemporaryDirectory(prefix="kale-yaml-") as tmp:
        if not use_cache:
            package = _without_cache(package, Path(tmp))
        with _server_errors(base, "submitting the run"), _quiet():
            import kfp

            client = kfp.Client(host=base)
            made = client.create_experiment(name=name)
            run = client.run_pipeline(
                experiment_id=made.experiment_id,
                job_name=run_name,
                pipeline_package_path=str(package),
                params=arguments,
            )
    ui = _with_scheme(os.environ.get(UI_ENV) or host).rstrip("/")
    return Submission(
        host=base,
        experiment=name,
        experiment_id=str(made.experiment_id),
        run_id=str(run.run_id),
        run_name=run_name,
        url=f"{ui}/#/runs/details/{run.run_id}",
        arguments=arguments,
        client=client,
    )


def follow(
    submission: Submission, *, interval: float = 5.0, sleep: Callable[[float], None] = time.sleep
) -> Iterator[Progress]:
    """Poll the run until it finishes; yield a `Progress` whenever its state or a task's state changes."""
    last: Progress | None = None
    while True:
        with _server_errors(submission.host, f"following run {submission.run_id}"), _quiet():
            run = submission.client.get_run(submission.run_id)
        progress = _progress(run)
        if last is None or (progress.state, progress.tasks) != (last.state, last.tasks):
            yield progress
            last = progress
        if progress.finished:
            return
        sleep(interval)


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


def _with_scheme(host: str) -> str:
    return host if host.startswith(("http://", "https://")) else f"http://{host}"


def _check_reachable(base: str) -> None:
    """Fail fast when nothing answers: kfp.Client would retry its health check for half a minute."""
    url = f"{base.rstrip('/')}/apis/v2beta1/healthz"
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # as kfp.Client: no proxy from env
    try:
        with opener.open(url, timeout=15):
            return
    except urllib.error.HTTPError:
        return  # something answers; kfp.Client reports what it thinks of the answer
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", None) or exc
        raise SubmitError.single(
            Diagnostic(file=base, message=f"cannot reach the KFP server: {reason}")
        ) from None


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """kfp.Client prints links and warns that it needs a v2 server; the command line says what matters."""
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        yield


@contextlib.contextmanager
def _server_errors(base: str, doing: str) -> Iterator[None]:
    from kfp_server_api.exceptions import ApiException  # type: ignore[import-untyped]
    from urllib3.exceptions import HTTPError

    try:
        yield
    except ApiException as exc:
        message = f"the KFP server refused {doing}: {exc.status} {exc.reason or ''}".rstrip()
        detail = _detail(exc.body)
        raise SubmitError.single(
            Diagnostic(file=base, message=f"{message}: {detail}" if detail else message)
        ) from None
    except HTTPError as exc:
        raise SubmitError.single(Diagnostic(file=base, message=f"{doing}: {exc}")) from None
    except (TimeoutError, ValueError) as exc:  # kfp.Client's own ways to fail: health check, bad answers
        raise SubmitError.single(Diagnostic(file=base, message=f"{doing}: {exc}")) from None


def _detail(body: Any) -> str:
    """KFP answers errors as JSON with `message` (or `error`); anything else is shown as it came."""
    if isinstance(body, bytes):
        body = body.decode("utf-8", "replace")
    if not body:
        return ""
    try:
        data = json.loads(body)
    except (TypeError, ValueError):
        return str(body).strip()[:500]
    if isinstance(data, dict):
        return str(data.get("message") or data.get("error") or data).strip()
    return str(data)
