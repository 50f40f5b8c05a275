"""ASGI middleware that refuses what the routes should never see: bodies over the limit (413)
and bodies that are not JSON (415), answered in the API's one error format."""

from __future__ import annotations

import json
from typing import Any

from starlette.exceptions import HTTPException as StarletteHTTPException


class _TooLarge(StarletteHTTPException):
    """Raised from ``receive``: FastAPI passes HTTP exceptions from body reading through."""


async def send_error(send: Any, status: int, field: str, message: str, kind: str) -> None:
    body = json.dumps({"detail": f"{field}: {message}",
                       "errors": [{"field": field, "message": message, "type": kind}]}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


class BodyLimit:
    """413 for a body over ``max_bytes`` (by Content-Length, or while reading a chunked body);
    415 for a POST whose content type is not JSON."""

    def __init__(self, app: Any, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        length = headers.get(b"content-length")
        too_large = f"larger than {self.max_bytes} bytes"
        if length is not None and (not length.isdigit() or int(length) > self.max_bytes):
            await send_error(send, 413, "body", too_large, "too_large")
            return
        content_type = headers.get(b"content-type", b"").split(b";")[0].strip().lower()
        if scope.get("method") == "POST" and content_type not in (b"application/json", b"") \
                and not content_type.endswith(b"+json"):
            await send_error(send, 415, "content-type", f"{content_type.decode(errors='replace')!r}"
                             " is not supported; send application/json", "unsupported_media")
            return
        received = 0
        started = False

        async def limited_receive() -> dict:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise _TooLarge(413, too_large)
            return message

        async def tracking_send(message: dict) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except _TooLarge:
            if not started:
                await send_error(send, 413, "body", too_large, "too_large")
