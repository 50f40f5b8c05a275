"""Connection limits below the app, in uvicorn's httptools protocol: what no ASGI middleware can
see because it happens before a request exists.

- **Request head size**: a request line plus headers over ``max_header_bytes`` gets 431 and the
  connection is closed (httptools itself has no cap, and joins a long header piece by piece:
  one 100 MB header used to stall every other client for seconds).
- **Request read timeout**: a connection must deliver a whole request within
  ``timeout_request_s`` of opening (or, on a kept-alive connection, of the request's first
  byte); otherwise 408 and close (or a plain close when the head came but the body did not).
  Idle kept-alive connections are closed by uvicorn's ``timeout_keep_alive``.
- **Open connections**: at most ``max_connections``. At the cap a new connection makes room by
  closing the connection that has been waiting longest without a request being handled (a
  connection that never sent a full request head, or a kept-alive one between requests); when
  every connection has a request in progress, the new one gets 503 and is closed. Idle sockets
  therefore cannot lock out new clients or use up the process's file descriptors.

Every answer here is in the API's one error format (:mod:`~seqrec.serve.errors`).

This is a small subclass of uvicorn's ``HttpToolsProtocol`` (uvicorn's protocols are classes
with no hooks for these limits); it relies on that class's parser callbacks, which are stable
across uvicorn releases, and is tested against a running server in ``tests/test_serve_limits.py``.
"""

from __future__ import annotations

import asyncio
import http
from dataclasses import dataclass
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from seqrec.serve.errors import error_json


@dataclass(frozen=True)
class ConnectionLimits:
    """Limits per connection and on how many are open (see the module docstring)."""

    max_header_bytes: int = 16_384
    timeout_request_s: float = 10.0
    max_connections: int = 1024

    def __post_init__(self) -> None:
        for name in ("max_header_bytes", "max_connections"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name}={value!r}: expected an integer >= 1")
        if not self.timeout_request_s > 0:
            raise ValueError(f"timeout_request_s={self.timeout_request_s!r}: expected seconds > 0")


class OpenConnections:
    """The open connections of one server process, and which of them may be closed to make
    room: those with no request being handled, oldest first (dicts keep insertion order)."""

    def __init__(self, limits: ConnectionLimits) -> None:
        self.limits = limits
        self.open: set[GuardedHttpToolsProtocol] = set()
        self.closable: dict[GuardedHttpToolsProtocol, None] = {}

    def admit(self, connection: GuardedHttpToolsProtocol) -> bool:
        """Add a new connection, closing the longest-waiting closable one at the cap; False
        when there is no room."""
        if len(self.open) >= self.limits.max_connections:
            if not self.closable:
                return False
            oldest = next(iter(self.closable))
            self.forget(oldest)
            oldest.transport.close()
        self.open.add(connection)
        self.closable[connection] = None
        return True

    def busy(self, connection: GuardedHttpToolsProtocol) -> None:
        self.closable.pop(connection, None)

    def waiting(self, connection: GuardedHttpToolsProtocol) -> None:
        if connection in self.open:
            self.closable.pop(connection, None)
            self.closable[connection] = None  # now the newest

    def forget(self, connection: GuardedHttpToolsProtocol) -> None:
        self.open.discard(connection)
        self.closable.pop(connection, None)


class _Refused(Exception):
    """Raised in a parser callback to stop parsing a request that is refused."""


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with the limits of :class:`ConnectionLimits`."""

    def __init__(self, config: Any, server_state: Any, app_state: dict[str, Any],
                 _loop: asyncio.AbstractEventLoop | None = None, *,
                 connections: OpenConnections) -> None:
        super().__init__(config, server_state, app_state, _loop)
        self.guard = connections
        self._in_head = True  # waiting for (the rest of) a request line and headers
        self._head_bytes = 0
        self._refusal: tuple[int, str, str, str] | None = None
        self._timer: asyncio.TimerHandle | None = None

    # -- connection life -------------------------------------------------------------------------
    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        if not self.guard.admit(self):
            self._refuse(503, "server", f"{self.guard.limits.max_connections} connections are "
                         "open and busy; retry shortly", "overloaded")
            return
        self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        self.guard.forget(self)
        self._disarm()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self._in_head and self._refusal is None and not self.transport.is_closing():
            self._head_bytes += len(data)  # the head is still incomplete: all of this was head
            if self._head_bytes > self.guard.limits.max_header_bytes:
                self._refuse(*self._too_large())

    # -- parser callbacks ------------------------------------------------------------------------
    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._in_head, self._head_bytes = True, 0
        if self._timer is None:
            self._arm()

    def on_headers_complete(self) -> None:
        size = len(self.url) + sum(len(name) + len(value) + 4 for name, value in self.headers)
        if size > self.guard.limits.max_header_bytes:
            self._refusal = self._too_large()
            raise _Refused  # httptools turns it into a parser error: see send_400_response
        self._in_head = False
        self.guard.busy(self)
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._disarm()

    def on_response_complete(self) -> None:
        pipelined = bool(self.pipeline)  # then uvicorn starts the next request now
        super().on_response_complete()
        if not pipelined:
            self.guard.waiting(self)

    def send_400_response(self, msg: str) -> None:
        """uvicorn's answer to a parser error, in the API's format (431 when we stopped it)."""
        self._refuse(*(self._refusal or (400, "request", "not a valid HTTP/1.1 request",
                                         "invalid_http")))

    # -- helpers -----------------------------------------------------------------------------------
    def _too_large(self) -> tuple[int, str, str, str]:
        return (431, "headers", f"request line and headers over "
                f"{self.guard.limits.max_header_bytes} bytes", "headers_too_large")

    def _arm(self) -> None:
        self._timer = self.loop.call_later(self.guard.limits.timeout_request_s, self._timed_out)

    def _disarm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _timed_out(self) -> None:
        self._timer = None
        if self.transport.is_closing():
            return
        if self._in_head:
            self._refuse(408, "request", "no complete request within "
                         f"{self.guard.limits.timeout_request_s:g} s", "timeout")
        else:  # the route is waiting for a body that did not come: it sees a disconnect
            self.transport.close()

    def _refuse(self, status: int, field: str, message: str, kind: str) -> None:
        """Answer ``status`` in the API's format and close the connection."""
        self._disarm()
        self.guard.forget(self)
        body = error_json(field, message, kind)
        head = (f"HTTP/1.1 {status} {http.HTTPStatus(status).phrase}\r\n"
                "content-type: application/json\r\n"
                f"content-length: {len(body)}\r\nconnection: close\r\n")
        if status == 503:
            head += "retry-after: 1\r\n"
        if not self.transport.is_closing():
            self.transport.write(head.encode() + b"\r\n" + body)
            self.transport.close()
