"""The API's one error format, written once: every 4xx (and the 503 of a full server) is
``{"detail": "<field>: <what is wrong>", "errors": [{"field", "message", "type"}]}``.

The routes raise :class:`ApiError`; the ASGI middleware (:mod:`~seqrec.serve.limits`) and the
connection guard (:mod:`~seqrec.serve.connections`), which answer before any route runs, write
:func:`error_json` themselves.
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import ValidationError


class ApiError(Exception):
    """A 4xx answer naming the request field at fault (or several, in ``errors``)."""

    def __init__(self, status: int, field: str, message: str, kind: str = "invalid",
                 errors: list[dict[str, str]] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.errors = errors or [{"field": field, "message": message, "type": kind}]

    @classmethod
    def from_validation(cls, error: ValidationError) -> ApiError:
        """422 for a body that is not JSON or not the schema; 413 when a list is too long."""
        details = validation_details(error.errors(include_url=False, include_context=False))
        status = 413 if any(d["type"] == "too_long" for d in details) else 422
        first = details[0] if details else {"field": "body", "message": "invalid", "type": "invalid"}
        return cls(status, first["field"], first["message"], first["type"], details)


def error_body(errors: list[dict[str, str]]) -> dict[str, Any]:
    text = "; ".join(f"{e['field']}: {e['message']}" for e in errors[:5]) or "invalid request"
    return {"detail": text, "errors": errors}


def error_json(field: str, message: str, kind: str) -> bytes:
    """One error as the JSON bytes of an answer."""
    return json.dumps(error_body([{"field": field, "message": message, "type": kind}])).encode()


def field_name(loc: tuple[Any, ...]) -> str:
    """``("requests", 2, "user_id")`` -> ``"requests[2].user_id"``; ``()`` -> ``"body"``."""
    parts = [p for p in loc if p != "body"] if loc and loc[0] == "body" else list(loc)
    out = ""
    for p in parts:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out or "body"


def validation_details(errors: Any) -> list[dict[str, str]]:
    """pydantic's (or FastAPI's) error dicts in the API's format."""
    out = []
    for e in errors:
        message = e.get("msg", "")
        if e.get("type") == "json_invalid":
            message = f"not valid JSON ({message.removeprefix('Invalid JSON: ')})"
        out.append({"field": field_name(tuple(e.get("loc", ()))), "message": message,
                    "type": e.get("type", "")})
    return out
