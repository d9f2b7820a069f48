"""`kale-yaml run --host URL`: submit the compiled pipeline to a KFP server with kfp.Client, then follow it.

The core never prints: `submit` returns a `Submission` and `follow` yields `Progress` values for the command
line to show. Every call to the server goes through `remote_client.talking`, which bounds it and turns any
failure into one `SubmitError`.
"""

from __future__ import annotations

import datetime
import math
import os
import tempfile
import time
import unicodedata
import urllib.parse
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kale_yaml import diagnostics as ky
from kale_yaml.errors import SubmitError as SubmitError  # it lives in errors.py now
from kale_yaml.plan.project import Project
from kale_yaml.resolve.model import ParameterValue
from kale_yaml.resolve.parameters import parse_params, pipeline_arguments
from kale_yaml.run.remote_client import connect, require, talking, token_credentials

HOST_ENV = "KFP_HOST"
UI_ENV = "KF_PIPELINES_UI_ENDPOINT"  # kfp.Client's own variable for a UI at another address
DEFAULT_EXPERIMENT = "Default"
DEFAULT_TIMEOUT = 30.0  # seconds one request may take, its answer read in full and its one retry included
DEFAULT_WAIT_TIMEOUT = 24 * 3600.0  # seconds `follow` waits for a run to finish
FINISHED = frozenset({"SUCCEEDED", "FAILED", "SKIPPED", "CANCELED"})
_NAMED_CHARACTERS = {" ": "a space", "\n": "a newline", "\r": "a carriage return", "\t": "a tab"}


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
        raise SubmitError.single(ky.BAD_HOST_URL.at(repr(host), f"not a KFP server URL: {problem}"))
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
    ends within `timeout` seconds, answer and retry included. Raises `SubmitError`."""
    base = server_url(host)
    ui = server_url(os.environ.get(UI_ENV) or base).rstrip("/")
    arguments = parse_params(project.config.parameters, params or {})
    name = experiment or project.config.experiment or DEFAULT_EXPERIMENT
    run_name = f"{project.config.name} {datetime.datetime.now():%Y-%m-%d %H-%M-%S}"
    credentials = token_credentials()
    with tempfile.TemporaryDirectory(prefix="kale-yaml-") as tmp:
        if not use_cache:
            package = _without_cache(package, Path(tmp))
        with talking(base, "the health check", timeout):
            client = connect(base, timeout, credentials)
        doing = f"creating experiment {name!r}"
        with talking(base, doing, timeout):
            made = client.create_experiment(name=name)
            require(made, "experiment_id")
        with talking(base, "submitting the run", timeout):
            run = client.run_pipeline(
                experiment_id=made.experiment_id,
                job_name=run_name,
                pipeline_package_path=str(package),
                params=pipeline_arguments(arguments),
            )
            require(run, "run_id")
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
        with talking(submission.host, doing, submission.timeout):
            run = submission.client.get_run(submission.run_id)
            require(run, "run_id")
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
            raise SubmitError.single(ky.WAIT_TIMEOUT.at(submission.url, message))
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
