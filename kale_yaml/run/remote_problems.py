"""Every way talking to a KFP server can fail, in plain words: the HTTP stack, kfp_server_api, kfp and the
server each raise their own exceptions; `explain` turns each into one message (or None for a bug in
kale-yaml, whose traceback is wanted)."""

from __future__ import annotations

import json
import re
from typing import Any

TOKEN_ENV = "KF_PIPELINES_SA_TOKEN_PATH"  # kfp's own variable for a file holding a bearer token
AUTH_HINT = (
    f"if a login page stands in front of Kubeflow Pipelines, authenticate: {TOKEN_ENV}=FILE sends the token"
    " in FILE, or put a session cookie in ~/.config/kfp/context.json as client_authentication_cookie"
)


class NotKfp(Exception):
    """An answer KFP's API would not give: something else answers at the host, such as a login page."""


# The three below are not OSError nor http.client's errors on purpose: urllib3 would take those for a broken
# connection, retry the request or swallow the error while it drains a redirect's body.
class OutOfTime(Exception):
    """The request's `--timeout` ran out, retries included: while connecting, or before the answer was in."""

    def __init__(self, timeout: float, *, connecting: bool = False, received: int = 0) -> None:
        super().__init__(timeout, connecting, received)
        self.timeout, self.connecting, self.received = timeout, connecting, received


class TooLarge(Exception):
    """The answer is larger than any answer of KFP's API (`remote_limits.MAX_ANSWER_BYTES`)."""

    def __init__(self, limit: int) -> None:
        super().__init__(limit)
        self.limit = limit


class RedirectLoop(Exception):
    """The server kept redirecting past the number of redirects followed."""

    def __init__(self, request: str, redirects: int, location: str) -> None:
        super().__init__(request, redirects, location)
        self.request, self.redirects, self.location = request, redirects, location


def explain(exc: BaseException, doing: str, timeout: float) -> str | None:
    """What went wrong, for every exception the HTTP stack, kfp_server_api, kfp or the server can raise."""
    import http.client

    from kfp_server_api.exceptions import ApiException, OpenApiException  # type: ignore[import-untyped]
    from urllib3 import exceptions as urllib3_errors

    if isinstance(exc, urllib3_errors.MaxRetryError) and exc.reason is not None:
        return explain(exc.reason, doing, timeout)
    if isinstance(exc, NotKfp):
        return f"the answer to {doing} is not KFP's API: {exc}; {AUTH_HINT}"
    if isinstance(exc, (OutOfTime, TooLarge, RedirectLoop)):
        return _beyond_bounds(exc, doing)
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


def _beyond_bounds(exc: OutOfTime | TooLarge | RedirectLoop, doing: str) -> str:
    if isinstance(exc, TooLarge):
        size = f"{exc.limit // (1024 * 1024)} MiB"
        return (
            f"the answer to {doing} is larger than {size}, and KFP's API answers small JSON documents;"
            " is this the address of a KFP server?"
        )
    if isinstance(exc, RedirectLoop):
        redirected = f"{exc.request} was redirected more than {exc.redirects} times, last to {exc.location}"
        return f"the answer to {doing} is a redirect loop: {redirected}; is this the address of a KFP server?"
    if exc.connecting:
        return f"cannot reach the KFP server: no connection within {exc.timeout:g} s (--timeout)"
    if exc.received:  # a server that sends its answer a byte at a time
        return f"the answer to {doing} was still coming in after {exc.timeout:g} s (--timeout)"
    return f"no answer to {doing} within {exc.timeout:g} s (--timeout)"


def _refusal(exc: Any, doing: str) -> str:
    status, reason = exc.status, " ".join(str(exc.reason or "").split())
    if not status:  # kfp_server_api's way to say that TLS failed
        return f"cannot reach the KFP server: {reason}"
    headers = exc.headers or {}
    content_type = next((v for k, v in headers.items() if k.lower() == "content-type"), "")
    if "json" not in content_type.lower():
        what = f"{status} {page_kind(content_type, exc.body)}"
        return f"the answer to {doing} is not KFP's API: {what}; {AUTH_HINT}"
    verb = "failed" if status >= 500 else "refused"
    message = f"the KFP server {verb} {doing}: {status} {reason}".rstrip()
    detail = _detail(exc.body)
    if status in (401, 403):
        detail = f"{detail}; {AUTH_HINT}" if detail else AUTH_HINT
    return f"{message}: {detail}" if detail else message


def printable(text: str) -> str:
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


def page_kind(content_type: str, body: Any) -> str:
    """The media type, with an HTML page's title: what a person would recognise the page by."""
    kind = content_type.split(";")[0].strip() or "without a content type"
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else str(body or "")
    title = re.search(r"<title[^>]*>(.*?)</title>", text[:100_000], re.IGNORECASE | re.DOTALL)
    if title and title.group(1).strip():
        return f'{kind} ("{" ".join(title.group(1).split())[:80]}")'
    return kind
