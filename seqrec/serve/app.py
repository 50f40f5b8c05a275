"""The FastAPI app over one model directory: routes, error format, reload.

One process holds one :class:`~seqrec.serve.loading.LoadedModel`. Each request takes a reference
to it when it starts, so a hot reload (``SIGHUP`` or ``POST /admin/reload`` from localhost)
loads the directory's new version in a worker thread and swaps the reference: requests in flight
finish on the old model, new ones see the new one, nothing is dropped. A directory that fails to
load or validate never replaces the served model.

Every 4xx answer has one shape: ``{"detail": "<field>: <what is wrong>", "errors": [{"field",
"message", "type"}]}``.
"""


import asyncio
import gc
import inspect
import json
import logging
import signal
import threading
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, Literal

import numpy as np
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from seqrec.serve.loading import LoadedModel, ModelHolder
from seqrec.serve.ranking import Job, Ranked, Scorer
from seqrec.serve.schemas import (
    BatchResponse,
    ErrorResponse,
    RecommendResponse,
    SimilarResponse,
    request_schemas,
)

log = logging.getLogger(__name__)

UnknownUserPolicy = Literal["error", "popular"]
_LOCAL_HOSTS = frozenset({"127.0.0.1", "::1", "::ffff:127.0.0.1"})


class ApiError(Exception):
    """A 4xx answer naming the request field at fault."""

    def __init__(self, status: int, field: str, message: str, kind: str = "invalid") -> None:
        super().__init__(message)
        self.status, self.field, self.message, self.kind = status, field, message, kind


def error_body(errors: list[dict[str, str]]) -> dict[str, Any]:
    text = "; ".join(f"{e['field']}: {e['message']}" for e in errors[:5]) or "invalid request"
    return {"detail": text, "errors": errors}


def _field(loc: tuple[Any, ...]) -> str:
    parts = [p for p in loc if p != "body"] if loc and loc[0] == "body" else list(loc)
    out = ""
    for p in parts:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out or "body"


def _item_indices(loaded: LoadedModel, ids: list[int | str]) -> tuple[np.ndarray, int]:
    """Known item indices (input order) and how many ids were unknown (the id rule)."""
    idx = loaded.fitted.catalogue.to_index(ids, unknown="pad")
    known = idx[idx >= 0]
    return known, len(idx) - len(known)


def _job(loaded: LoadedModel, request: Any, unknown_user: UnknownUserPolicy, where: str) -> Job:
    """The job of one recommend request; unknown users (and histories with no known item)
    follow the unknown-user policy."""
    data = loaded.fitted
    dropped, popular = 0, False
    if request.user_id is not None:
        index = data.user_index.index_of(request.user_id)
        row = int(loaded.history_rows[index]) if index >= 0 else -1
        if row < 0 and unknown_user == "error":
            raise ApiError(404, f"{where}user_id", f"unknown user {request.user_id!r}",
                           "unknown_user")
        h = data.histories
        history = h.items[h.offsets[row] : h.offsets[row + 1]] if row >= 0 else h.items[:0]
        popular = row < 0
    else:
        history, dropped = _item_indices(loaded, request.history)
        if len(history) == 0:
            if unknown_user == "error":
                raise ApiError(404, f"{where}history", "no item known to the model (treated as an "
                               "unknown user; the server's --popular-fallback answers these)",
                               "unknown_history")
            popular = True
    filters = []
    for ids in (request.include_items, request.exclude_items):
        if ids is None:
            filters.append(None)
            continue
        idx, unknown = _item_indices(loaded, ids)
        filters.append(idx)
        dropped += unknown
    return Job(np.asarray(history, dtype=np.int64), request.k, request.filter_viewed, filters[0],
               filters[1], popular, dropped)


def _items_json(loaded: LoadedModel, items: np.ndarray, scores: np.ndarray) -> list[dict[str, Any]]:
    ids = loaded.fitted.catalogue.to_external(items).tolist()
    return [{"item_id": i, "score": s, "rank": r + 1}
            for r, (i, s) in enumerate(zip(ids, scores.tolist(), strict=True))]


def _json(payload: Any, status: int = 200) -> Response:
    # response models are declared on the routes for the schema; returning bytes skips a second
    # validation pass over our own output
    return Response(json.dumps(payload, allow_nan=False).encode(), status,
                    media_type="application/json")


def create_app(model_dir: str | Path, *, unknown_user: UnknownUserPolicy = "error",
               max_batch: int = 256, max_items: int = 10_000, max_body_bytes: int = 1_000_000,
               micro_batch: bool = True, batch_wait_ms: float = 0.0,
               reload_on_sighup: bool = True, telemetry: bool = False) -> FastAPI:
    """A FastAPI app serving the model in ``model_dir`` (loaded and validated once, here).

    Args:
        model_dir: a directory written by :func:`seqrec.save_model`.
        unknown_user: ``"error"`` answers 404 for a user the model does not know (or a history
            with no known item); ``"popular"`` answers with the most popular eligible items
            (``source: "popular"``).
        max_batch: most requests in one ``/recommend/batch`` call (beyond: 413).
        max_items: most ids in one ``history`` / ``include_items`` / ``exclude_items`` (beyond: 413).
        max_body_bytes: largest request body (beyond: 413).
        micro_batch: share one forward pass between concurrent requests.
        batch_wait_ms: how long a micro-batch waits for more requests (0 = take what is queued).
        reload_on_sighup: when served from the main thread, ``SIGHUP`` reloads the model.
        telemetry: FastAPI's OpenTelemetry spans/metrics/logs (FastAPI versions that have them).

    Raises:
        ValueError: a bad setting.
        ModelDirectoryError: a directory that cannot be served (from loading).
    """
    from seqrec.serve.limits import BodyLimit

    if unknown_user not in ("error", "popular"):
        raise ValueError(f"unknown_user={unknown_user!r}: expected 'error' or 'popular'")
    for name, setting in (("max_batch", max_batch), ("max_items", max_items),
                          ("max_body_bytes", max_body_bytes)):
        if isinstance(setting, bool) or not isinstance(setting, int) or setting < 1:
            raise ValueError(f"{name}={setting!r}: expected an integer >= 1")
    holder = ModelHolder(model_dir)
    scorer = Scorer(micro_batch, max_rows=max(max_batch, 64), wait_s=batch_wait_ms / 1000)
    RecommendRequest, BatchRequest, SimilarRequest = request_schemas(max_batch, max_items)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        # Move everything loaded so far (torch, the model, the id maps) out of the collector's
        # reach: otherwise full collections walk it all and add 100s of ms to unlucky requests.
        gc.freeze()
        loop = asyncio.get_running_loop()
        hup = getattr(signal, "SIGHUP", None)
        installed = False
        if reload_on_sighup and hup is not None and threading.current_thread() is threading.main_thread():
            loop.add_signal_handler(hup, lambda: loop.create_task(_reload_quietly()))
            installed = True
        try:
            yield
        finally:
            if installed:
                loop.remove_signal_handler(hup)
            scorer.close()

    async def _reload_quietly() -> None:
        try:
            await holder.reload()
        except Exception:  # noqa: BLE001 - logged by the holder; keep serving the old model
            pass

    extra: dict[str, Any] = {}
    if "telemetry" in inspect.signature(FastAPI.__init__).parameters:
        # FastAPI's built-in OpenTelemetry hooks cost ~50 us a request even with no exporter
        extra["telemetry"] = {"tracing": telemetry, "metrics": telemetry, "logs": telemetry,
                              "operation_spans": telemetry}
    app = FastAPI(title="seqrec", version=__import__("seqrec").__version__, lifespan=lifespan,
                  description="Sequential recommendations from a seqrec model directory.", **extra)
    app.state.models = holder
    app.state.scorer = scorer
    app.add_middleware(BodyLimit, max_bytes=max_body_bytes)
    errors: dict[int | str, dict[str, Any]] = {
        code: {"model": ErrorResponse} for code in (400, 404, 409, 413, 415, 422)}

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        details = [{"field": _field(tuple(e.get("loc", ()))), "message": e.get("msg", ""),
                    "type": e.get("type", "")} for e in exc.errors()]
        status = 413 if any(d["type"] == "too_long" for d in details) else 422
        return JSONResponse(error_body(details), status)

    @app.exception_handler(ApiError)
    async def _api_error(_: Request, exc: ApiError) -> JSONResponse:
        return JSONResponse(error_body([{"field": exc.field, "message": exc.message,
                                         "type": exc.kind}]), exc.status)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        detail = [{"field": "request", "message": str(exc.detail), "type": "http"}]
        return JSONResponse(error_body(detail), exc.status_code, headers=exc.headers)

    @app.exception_handler(Exception)
    async def _crash(_: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error")
        return JSONResponse({"detail": f"internal error: {type(exc).__name__}",
                             "errors": []}, 500)

    async def _rank(loaded: LoadedModel, jobs: list[Job]) -> list[Ranked]:
        return await scorer.rank(loaded, jobs)

    @app.post("/recommend", response_model=RecommendResponse, responses=errors)
    async def recommend(body: RecommendRequest) -> Response:  # type: ignore[valid-type]
        """Top-k items for one known user or one anonymous history."""
        loaded = holder.current
        job = _job(loaded, body, unknown_user, "")
        [(items, scores)] = await _rank(loaded, [job])
        return _json({"items": _items_json(loaded, items, scores), "model_version": loaded.version,
                      "unknown_items_dropped": job.unknown_dropped,
                      "source": "popular" if job.popular else "model"})

    @app.post("/recommend/batch", response_model=BatchResponse, responses=errors)
    async def recommend_batch(body: BatchRequest) -> Response:  # type: ignore[valid-type]
        """Many users / histories in one call: one model call for all of them."""
        loaded = holder.current
        jobs = [_job(loaded, r, unknown_user, f"requests[{i}].") for i, r in enumerate(body.requests)]
        ranked = await _rank(loaded, jobs)
        results = [{"items": _items_json(loaded, items, scores),
                    "unknown_items_dropped": job.unknown_dropped,
                    "source": "popular" if job.popular else "model"}
                   for job, (items, scores) in zip(jobs, ranked, strict=True)]
        return _json({"results": results, "model_version": loaded.version})

    @app.post("/similar", response_model=SimilarResponse, responses=errors)
    async def similar(body: SimilarRequest) -> Response:  # type: ignore[valid-type]
        """Item-to-item neighbours by cosine similarity of item embeddings (never the item itself)."""
        loaded = holder.current
        if not loaded.has_embeddings:
            raise ApiError(409, "model", f"model kind {loaded.metadata.get('kind')!r} has no "
                           "item embeddings", "no_embeddings")
        idx, unknown = _item_indices(loaded, [body.item_id])
        if unknown:
            raise ApiError(404, "item_id", f"unknown item {body.item_id!r}", "unknown_item")
        best = loaded.model.similar_topk(idx, body.k)  # type: ignore[union-attr]
        items, scores = best.items[0].numpy(), best.scores[0].numpy()
        keep = items != 0
        return _json({"items": _items_json(loaded, items[keep], scores[keep]),
                      "model_version": loaded.version})

    @app.get("/health")
    async def health() -> dict[str, str]:
        """Liveness: the process answers."""
        return {"status": "ok"}

    @app.get("/ready")
    async def ready() -> dict[str, Any]:
        """Readiness: a validated model is loaded (reloads keep serving the old one until the
        new one has passed validation)."""
        return {"ready": True, "model_version": holder.current.version}

    @app.get("/model")
    async def model_info() -> dict[str, Any]:
        """What is being served: kind, config, sizes, training time and metrics (model.json)."""
        loaded = holder.current
        meta = loaded.metadata
        config = meta.get("preset_config")
        return {"model_version": loaded.version, "kind": meta.get("kind"), "config": config,
                "dim": None if config is None else config.get("dim"),
                "n_items": meta.get("n_items"), "n_users": meta.get("n_users"),
                "trained_at": meta.get("trained_at"), "metrics": meta.get("metrics", {}),
                "best_epoch": meta.get("best_epoch"),
                "seqrec_version": meta.get("seqrec_version"),
                "item_id_type": "int" if loaded.fitted.catalogue.int_ids else "str",
                "user_id_type": "int" if loaded.fitted.user_index.int_ids else "str"}

    @app.post("/admin/reload", responses={403: {"model": ErrorResponse},
                                          409: {"model": ErrorResponse}})
    async def admin_reload(request: Request) -> dict[str, Any]:
        """Load the model directory's current version and swap it in (from localhost only);
        409 when it cannot be loaded (the old model keeps serving)."""
        host = request.client.host if request.client else ""
        if host not in _LOCAL_HOSTS:
            raise ApiError(403, "client", "admin/reload is only accepted from 127.0.0.1 or ::1",
                           "forbidden")
        try:
            previous, new = await holder.reload()
        except Exception as error:  # noqa: BLE001 - any failure keeps the old model
            raise ApiError(409, "model_dir", f"reload failed ({error}); still serving "
                           f"{holder.current.version}", "reload_failed") from None
        return {"previous_version": previous, "model_version": new, "changed": previous != new}

    return app
