"""Talking to a KFP server through kfp.Client, safely.

kfp.Client prints links and logs as it works, sends requests without a timeout, retries its health check for
half a minute, and takes whatever answers for its API. So every kfp call goes through `talking`: kfp's output
is silenced (the core never prints), each request must end within the timeout and read a bounded answer
(`remote_limits`), a GET is tried at most twice within that time, an answer that is not KFP's JSON is
recognised as such, and every way the HTTP stack, kfp or the server can fail becomes one `SubmitError` with a
plain message (`remote_problems.explain`).
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import urllib.parse
import warnings
from collections.abc import Iterator
from typing import Any

from kale_yaml import diagnostics as ky
from kale_yaml.errors import SubmitError
from kale_yaml.run.remote_problems import TOKEN_ENV, NotKfp, RedirectLoop, explain, page_kind, printable

MAX_REDIRECTS = 5  # a login page is often a redirect or two away; more than this is a loop


@contextlib.contextmanager
def talking(base: str, doing: str, timeout: float) -> Iterator[None]:
    """Every kfp call runs in here: kfp's output is silenced, and any way it fails is one SubmitError."""
    with _quiet():
        try:
            yield
        except Exception as exc:
            problem = explain(exc, doing, timeout)
            if problem is None:
                raise  # a bug in kale-yaml: its traceback is wanted
            # Part of the message is the server's text: a terminal must not take it for control sequences.
            raise SubmitError.single(ky.SERVER_PROBLEM.at(base, printable(problem))) from None


def token_credentials() -> Any:
    """kfp reads KF_PIPELINES_SA_TOKEN_PATH only inside a cluster, and only without a host; here it also
    authenticates to a host given by URL."""
    path = os.environ.get(TOKEN_ENV, "").strip()
    if not path:
        return None
    if not os.path.isfile(path) or not os.access(path, os.R_OK):
        message = f"{TOKEN_ENV} names no readable token file"
        raise SubmitError.single(ky.TOKEN_FILE.at(path, message))
    from kfp.client.set_volume_credentials import ServiceAccountTokenVolumeCredentials

    return ServiceAccountTokenVolumeCredentials(path)


def connect(base: str, timeout: float, credentials: Any) -> Any:
    """A kfp.Client whose every request, its own health check included, is bounded by `timeout`."""
    import kfp
    import urllib3

    class BoundedClient(kfp.Client):  # type: ignore[misc]
        def _load_config(self, *args: Any, **kwargs: Any) -> Any:
            config = super()._load_config(*args, **kwargs)
            # urllib3 would send a GET whose connection broke three more times; once more is enough for a
            # dropped keep-alive connection, and both tries share the request's time (`bounded`). A POST is
            # never sent twice, and no status code is retried. When the redirects run out, urllib3 hands over
            # the last one, for `_bound_requests` to name the loop.
            config.retries = urllib3.Retry(
                total=None,
                connect=1,
                read=1,
                status=0,
                other=0,
                redirect=MAX_REDIRECTS,
                raise_on_redirect=False,
            )
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
    """Bound each request of `api_client` to `timeout` seconds and MAX_ANSWER_BYTES, and check that what
    answers it is KFP's API. kfp.Client sets no timeout, and urllib3 then waits for an answer forever."""
    from kfp_server_api.exceptions import ApiException  # type: ignore[import-untyped]

    from kale_yaml.run.remote_limits import bound_pools, bounded  # urllib3 is loaded for a submit only

    rest = api_client.rest_client
    if "request" in vars(rest):
        return  # already bounded: all of a client's APIs share one rest client
    bound_pools(rest.pool_manager)
    send = rest.request

    def request(method: str, url: str, *args: Any, _request_timeout: Any = None, **kwargs: Any) -> Any:
        # The bounds are `bounded`'s; urllib3's own timeouts, per socket operation, only back them up.
        # kfp_server_api takes an int or a (connect, read) pair; a float alone would mean no timeout at all.
        pair = _request_timeout or (timeout, timeout)
        with bounded(timeout):
            try:
                answer = send(method, url, *args, _request_timeout=pair, **kwargs)
            except ApiException as exc:
                _raise_redirect_loop(method, url, exc)
                raise
        _check_api_answer(_request_line(method, url, answer), answer)
        return answer

    rest.request = request


def _raise_redirect_loop(method: str, url: str, refusal: Any) -> None:
    """urllib3 follows redirects and hands over a redirect only when it has followed MAX_REDIRECTS."""
    import urllib3

    headers = refusal.headers or {}
    location = next((v for k, v in headers.items() if k.lower() == "location"), None)
    if refusal.status in urllib3.HTTPResponse.REDIRECT_STATUSES and location:
        request = f"{method} {urllib.parse.urlsplit(url).path}"
        raise RedirectLoop(request, MAX_REDIRECTS, str(location)) from None


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
        raise NotKfp(f"{request} answered {answer.status} {page_kind(content_type, answer.data)}")
    try:
        data = json.loads(answer.data)
    except ValueError:
        raise NotKfp(f"{request} answered {answer.status} {content_type} that does not parse") from None
    if not isinstance(data, dict):
        raise NotKfp(f"{request} answered {answer.status} JSON that is not an object")


def require(answer: Any, name: str) -> None:
    if not getattr(answer, name, None):
        raise NotKfp(f"it has no {name}")


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
