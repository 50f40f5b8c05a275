"""ASGI middleware that guards every request before a route sees it, answering in the API's one
error format:

- 503 (with ``Retry-After: 1``) when ``max_concurrency`` requests are already being handled;
- 413 for a body over ``max_body_bytes`` (by Content-Length, or while reading a chunked body);
- 415 for a POST whose content type is not JSON.

It reads the body whole (it is bounded) and then runs the route while listening for the client
to hang up: a request whose client is gone is cancelled wherever it waits (for the body-parsing
thread, for the scorer, ...), so no work is done for it from then on.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from seqrec.serve.errors import error_json

BIG_BODY_BYTES = 16_384
"""Bodies larger than this are parsed and answered off the event loop (see ``Offload``)."""


@dataclass
class Load:
    """Requests being handled now, and how many of them have a big body."""

    requests: int = 0
    big: int = 0


async def send_error(send: Any, status: int, field: str, message: str, kind: str,
                     headers: tuple[tuple[bytes, bytes], ...] = ()) -> None:
    body = error_json(field, message, kind)
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(body)).encode()), *headers]})
    await send({"type": "http.response.body", "body": body})


class _Gone(Exception):
    """The client hung up while the body was being read."""


class RequestLimits:
    """Concurrency, body size and content type limits; cancellation when the client hangs up."""

    def __init__(self, app: Any, max_body_bytes: int, max_concurrency: int, load: Load) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.max_concurrency = max_concurrency
        self.load = load

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if self.load.requests >= self.max_concurrency:
            await send_error(send, 503, "server", f"busy: {self.max_concurrency} requests in "
                             "progress; retry shortly", "overloaded", ((b"retry-after", b"1"),))
            return
        self.load.requests += 1
        try:
            await self._guarded(scope, receive, send)
        finally:
            self.load.requests -= 1

    async def _guarded(self, scope: dict, receive: Any, send: Any) -> None:
        headers = dict(scope.get("headers") or [])
        length = headers.get(b"content-length")
        too_large = f"larger than {self.max_body_bytes} bytes"
        if length is not None and (not length.isdigit() or int(length) > self.max_body_bytes):
            await send_error(send, 413, "body", too_large, "too_large")
            return
        content_type = headers.get(b"content-type", b"").split(b";")[0].strip().lower()
        if scope.get("method") == "POST" and content_type not in (b"application/json", b"") \
                and not content_type.endswith(b"+json"):
            await send_error(send, 415, "content-type", f"{content_type.decode(errors='replace')!r}"
                             " is not supported; send application/json", "unsupported_media")
            return
        try:
            body = await self._read_body(receive)
        except _Gone:
            return
        if body is None:
            await send_error(send, 413, "body", too_large, "too_large")
            return
        big = len(body) > BIG_BODY_BYTES
        self.load.big += big
        try:
            await self._run_until_gone(scope, body, receive, send)
        finally:
            self.load.big -= big

    async def _read_body(self, receive: Any) -> bytes | None:
        """The whole body; None past the limit."""
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise _Gone
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body_bytes:
                return None
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)

    async def _run_until_gone(self, scope: dict, body: bytes, receive: Any, send: Any) -> None:
        """Run the app on the read body; cancel it if the client disconnects first."""
        task = asyncio.current_task()
        assert task is not None
        hung_up = asyncio.Event()
        replayed = False

        async def replay() -> dict:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            await hung_up.wait()
            return {"type": "http.disconnect"}

        def on_message(listener: asyncio.Future) -> None:
            if listener.cancelled() or listener.exception() is not None:
                return
            if listener.result()["type"] == "http.disconnect" and not done:
                hung_up.set()
                task.cancel()  # the route stops wherever it waits; queued work is dropped

        done = False
        listener = asyncio.ensure_future(receive())
        listener.add_done_callback(on_message)
        try:
            await self.app(scope, replay, send)
        except asyncio.CancelledError:
            if not hung_up.is_set():
                raise
            task.uncancel()  # ours: the client is gone, nothing is left to answer
        finally:
            done = True
            listener.cancel()
