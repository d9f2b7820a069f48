"""Every request to the KFP server ends within its time and reads at most `MAX_ANSWER_BYTES`, however the
server answers.

urllib3's timeouts are per socket operation: a server that sends a byte a second never trips them, and nothing
bounds the size of an answer. Reading the body in chunks (`preload_content=False`) would not be enough:
urllib3 reads the status line and the headers, and the whole body of every redirect it follows, before its
caller sees a response, and kfp_server_api reads the whole body of an error answer. A watchdog that closes the
connection at the deadline would bound the time, but not the memory. So the bounds sit where the bytes come
in: the connections of the rest client's pools read through `_BoundedReader`, which checks the request's
`Budget` before every read of the socket and gives each read only the time that is left. Everything the server
sends, through retries and redirects, passes there; connecting and sending get only the time that is left too.
"""

from __future__ import annotations

import contextlib
import contextvars
import http.client
import io
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import urllib3
import urllib3.connection

from kale_yaml.run.remote_problems import OutOfTime, TooLarge

MAX_ANSWER_BYTES = 32 * 1024 * 1024  # KFP's API answers small JSON documents: a run with its tasks, a few KiB
_PIECE = 64 * 1024  # bytes sent with one socket timeout


@dataclass
class Budget:
    """What is left to one request, its retries and redirects included: time, and bytes to read."""

    timeout: float
    deadline: float
    received: int = 0

    def seconds_left(self, *, connecting: bool = False) -> float:
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise OutOfTime(self.timeout, connecting=connecting, received=self.received)
        return left

    def bytes_left(self) -> int:
        return MAX_ANSWER_BYTES - self.received

    def count(self, received: int) -> None:
        self.received += received
        if self.received > MAX_ANSWER_BYTES:
            raise TooLarge(MAX_ANSWER_BYTES)


# The request being sent: set around each call of the rest client's request function (`bounded`), read by
# the connections below, which urllib3 creates and reuses out of sight.
_BUDGET: contextvars.ContextVar[Budget] = contextvars.ContextVar("kale_yaml_request_budget")


@contextlib.contextmanager
def bounded(timeout: float) -> Iterator[Budget]:
    """The requests sent in here take at most `timeout` seconds and read MAX_ANSWER_BYTES, all together."""
    token = _BUDGET.set(Budget(timeout, time.monotonic() + timeout))
    try:
        yield _BUDGET.get()
    finally:
        _BUDGET.reset(token)


def bound_pools(pool_manager: urllib3.PoolManager) -> None:
    """Make every connection `pool_manager` opens from now on a bounded one (it opens them on first use)."""
    pool_manager.pool_classes_by_scheme = {"http": _BoundedHTTPPool, "https": _BoundedHTTPSPool}
    pool_manager.clear()


class _BoundedReader(io.RawIOBase):
    """The socket as the answer's reader sees it: each read waits only for the time left, and reads only
    as many bytes as are left (plus one, which tells an answer that is too long from one that ends there)."""

    def __init__(self, raw: Any, sock: socket.socket, budget: Budget) -> None:
        super().__init__()
        self._raw, self._sock, self._budget = raw, sock, budget

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        self._sock.settimeout(self._budget.seconds_left())
        room = memoryview(buffer).cast("B")[: self._budget.bytes_left() + 1]
        try:
            received = self._raw.readinto(room) or 0
        except TimeoutError:  # the socket waited for exactly the time that was left
            raise OutOfTime(self._budget.timeout, received=self._budget.received) from None
        self._budget.count(received)
        return int(received)

    def fileno(self) -> int:
        return int(self._raw.fileno())

    def close(self) -> None:
        if not self.closed:
            self._raw.close()  # the socket itself closes once its connection lets go of it too
        super().close()


class _BoundedResponse(http.client.HTTPResponse):
    """http.client's answer, read through `_BoundedReader`; urllib3 wraps it in its own response."""

    def __init__(self, sock: socket.socket, *args: Any, **kwargs: Any) -> None:
        super().__init__(sock, *args, **kwargs)
        self._budget = _BUDGET.get()
        self.fp = io.BufferedReader(_BoundedReader(self.fp.detach(), sock, self._budget))

    def begin(self) -> None:
        super().begin()
        if self.length is not None and self.length > self._budget.bytes_left():
            raise TooLarge(MAX_ANSWER_BYTES)  # said up front: no need to read it to know


class _BoundedConnection(urllib3.connection.HTTPConnection):
    response_class = _BoundedResponse

    def _new_conn(self) -> socket.socket:
        budget = _BUDGET.get()
        self.timeout = budget.seconds_left(connecting=True)
        sock = super()._new_conn()
        sock.settimeout(budget.seconds_left(connecting=True))  # a TLS handshake gets only the time left
        return sock

    def request(self, *args: Any, **kwargs: Any) -> None:
        # http.client asks for `Accept-Encoding: identity`; a compressed answer is taken as the bytes it is,
        # since its decompressed size would escape the budget.
        kwargs["decode_content"] = False
        super().request(*args, **kwargs)

    def send(self, data: Any) -> None:
        """Send in pieces, each with the time left: a socket's timeout bounds one write, not a request."""
        if not isinstance(data, (bytes, bytearray, memoryview)):
            super().send(data)  # urllib3 sends bytes; anything else goes as it is
            return
        budget = _BUDGET.get()
        view = memoryview(data).cast("B")
        for start in range(0, max(len(view), 1), _PIECE):
            left = budget.seconds_left()
            if self.sock is not None:  # else http.client connects first, with the time left (_new_conn)
                self.sock.settimeout(left)
            try:
                super().send(view[start : start + _PIECE])
            except TimeoutError:
                raise OutOfTime(budget.timeout, received=budget.received) from None


class _BoundedHTTPSConnection(_BoundedConnection, urllib3.connection.HTTPSConnection):
    pass


class _BoundedHTTPPool(urllib3.HTTPConnectionPool):
    ConnectionCls = _BoundedConnection


class _BoundedHTTPSPool(urllib3.HTTPSConnectionPool):
    ConnectionCls = _BoundedHTTPSConnection
