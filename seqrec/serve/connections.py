"""Connection limits below the app, in uvicorn's httptools protocol: what no ASGI middleware can
see because it happens before a request exists.

- **Request head size**: a request line plus headers over ``max_header_bytes`` gets 431 and the
  connection is closed (httptools itself has no cap, and joins a long header piece by piece:
  one 100 MB header used to stall every other client for seconds).
- **Request read timeout**: a connection must deliver a whole request within
  ``timeout_request_s`` of opening (or, on a kept-alive connection, of the request's first
  byte); otherwise 408 and close (or a plain close when the head came but the body did not).
  Idle kept-alive connections are closed by uvicorn's ``timeout_keep_alive``.
- **New clients wait while the server is busy**: while ``busy_requests`` requests are in
  progress, the first request of a new connection is read and parsed but not started; it starts
  (oldest first) as requests finish, and is dropped unstarted if its client has hung up
  meanwhile (reset or disconnected). Clients with an established connection keep being served,
  and a burst of new connections (say, 1,000 batch requests whose clients hang up at once) costs
  little more than reading them.
- **Open connections**: at most ``max_connections``. At the cap a new connection makes room by
  resetting the connection that has been waiting longest without a request being handled (a
  connection that never sent a full request head, or a kept-alive one between requests); when
  every connection has a request in progress, the new one gets 503 and is closed. Idle sockets
  therefore cannot lock out new clients or use up the process's file descriptors.
- **Clients that gave up**: a connection accepted after its client reset it is closed unread,
  and the first request of a connection whose reset arrived behind it is not started.

Every answer here is in the API's one error format (:mod:`~seqrec.serve.errors`).

This is a small subclass of uvicorn's ``HttpToolsProtocol`` (uvicorn's protocols are classes
with no hooks for these limits); it relies on that class's parser callbacks and on its
``_start_asgi_task`` (private: check both when upgrading uvicorn), and is tested against a running
server and a fake transport in ``tests/test_serve_limits.py``.
"""

from __future__ import annotations

import asyncio
import http
import socket
import struct
from collections import deque
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
    busy_requests: int = 64

    def __post_init__(self) -> None:
        for name in ("max_header_bytes", "max_connections", "busy_requests"):
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
        self.queued: deque[tuple[GuardedHttpToolsProtocol, Any, Any]] = deque()

    def start_queued(self, tasks: set) -> None:
        """Start queued first requests (oldest first) while fewer than ``busy_requests``
        requests are in progress; drop those whose client is gone."""
        while self.queued and len(tasks) < self.limits.busy_requests:
            connection, cycle, app = self.queued.popleft()
            if not (cycle.disconnected or connection.transport.is_closing()):
                connection.start(cycle, app)

    def admit(self, connection: GuardedHttpToolsProtocol) -> bool:
        """Add a new connection, closing the longest-waiting closable one at the cap; False
        when there is no room."""
        if len(self.open) >= self.limits.max_connections:
            if not self.closable:
                return False
            oldest = next(iter(self.closable))
            self.forget(oldest)
            oldest.drop()
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
        self._new = True  # no request of this connection has started yet

    # -- connection life -------------------------------------------------------------------------
    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        if self._reset():  # accepted after its client had given up: not even read
            transport.close()
            return
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

    def _start_asgi_task(self, cycle: Any, app: Any) -> None:
        if self._new and len(self.tasks) >= self.guard.limits.busy_requests:
            self.guard.queued.append((self, cycle, app))  # read on: a hang-up is still seen
            return
        self.start(cycle, app)

    def start(self, cycle: Any, app: Any) -> None:
        """Start a request now; when it ends, queued first requests may start."""
        if self._new and self._reset():
            self.transport.close()
            return
        self._new = False
        guard, tasks = self.guard, self.tasks

        async def then_start_queued(scope: Any, receive: Any, send: Any) -> None:
            try:
                await app(scope, receive, send)
            finally:  # once done: after uvicorn's own callback has removed it from ``tasks``
                task = asyncio.current_task()
                assert task is not None
                task.add_done_callback(lambda _: guard.start_queued(tasks))

        super()._start_asgi_task(cycle, then_start_queued)

    def send_400_response(self, msg: str) -> None:
        """uvicorn's answer to a parser error, in the API's format (431 when we stopped it)."""
        self._refuse(*(self._refusal or (400, "request", "not a valid HTTP/1.1 request",
                                         "invalid_http")))

    def drop(self) -> None:
        """Close at once with a reset: no FIN_WAIT/TIME_WAIT state is left behind for a
        connection closed to make room (thousands of them under a flood)."""
        sock = self.transport.get_extra_info("socket")
        try:
            if sock is not None:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except OSError:
            pass
        self.transport.abort()

    # -- helpers -----------------------------------------------------------------------------------
    def _reset(self) -> bool:
        """Whether the client has reset the connection already: the loop reads a request before
        it reads the reset behind it, and a burst of requests whose clients hung up at once
        would otherwise all be started."""
        sock = self.transport.get_extra_info("socket")
        try:
            return sock is not None and sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) != 0
        except OSError:
            return True

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
