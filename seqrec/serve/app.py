"""The FastAPI app over one model directory: routes, error format, reload.

One process holds one :class:`~seqrec.serve.loading.LoadedModel`. Each request takes a reference
to it when it starts, so a hot reload (``SIGHUP`` or ``POST /admin/reload`` from localhost)
loads the directory's new version in a worker thread and swaps the reference: requests in flight
finish on the old model, new ones see the new one, nothing is dropped. A directory that fails to
load or validate never replaces the served model.

Every 4xx answer has one shape (:mod:`~seqrec.serve.errors`): ``{"detail": "<field>: <what is
wrong>", "errors": [{"field", "message", "type"}]}``. The routes parse their bodies themselves
(pydantic-core, straight from the bytes): small bodies on the event loop, big ones, and big
answers, on the :class:`~seqrec.serve.ranking.Offload` thread, so that one heavy request cannot
stall the others.
"""


import asyncio
import gc
import inspect
import logging
import signal
import threading
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import numpy as np
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel
from pydantic.json_schema import models_json_schema
from starlette.exceptions import HTTPException as StarletteHTTPException

from seqrec.serve.errors import ApiError, error_body, validation_details
from seqrec.serve.limits import BIG_BODY_BYTES, Load, RequestLimits
from seqrec.serve.loading import LoadedModel, ModelHolder
from seqrec.serve.ranking import (
    Job,
    Offload,
    Ranked,
    Scorer,
    UnknownUserPolicy,
    jobs_for,
    rank_jobs,
)
from seqrec.serve.schemas import (
    BatchResponse,
    ErrorResponse,
    RecommendResponse,
    SimilarResponse,
    ValueRankResponse,
    json_bytes,
    parse_body,
    request_schemas,
)
from seqrec.serve.value import ValueRanker, calibrator_status

log = logging.getLogger(__name__)

_LOCAL_HOSTS = frozenset({"127.0.0.1", "::1", "::ffff:127.0.0.1"})
_BIG_ANSWER_ITEMS = 2_000  # answers with more items are built off the event loop


def _items_json(loaded: LoadedModel, items: np.ndarray, scores: np.ndarray) -> list[dict[str, Any]]:
    ids = loaded.fitted.catalogue.to_external(items).tolist()
    return [{"item_id": i, "score": s, "rank": r + 1}
            for r, (i, s) in enumerate(zip(ids, scores.tolist(), strict=True))]


def _body_schema(model: str) -> dict[str, Any]:
    """OpenAPI request body of a route that parses its body itself
    (:func:`~seqrec.serve.schemas.parse_body`)."""
    return {"requestBody": {"required": True, "content": {"application/json": {
        "schema": {"$ref": f"#/components/schemas/{model}"}}}}}


def _add_schemas(app: FastAPI, models: list[type[BaseModel]]) -> None:
    """Put ``models`` (and what they use) into the OpenAPI components."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = generate()
            _, defs = models_json_schema([(m, "validation") for m in models],
                                         ref_template="#/components/schemas/{model}")
            schema.setdefault("components", {}).setdefault("schemas", {}).update(defs["$defs"])
        return app.openapi_schema  # type: ignore[return-value]

    app.openapi = openapi  # type: ignore[method-assign]


def create_app(model_dir: str | Path, *, unknown_user: UnknownUserPolicy = "error",
               max_batch: int = 256, max_items: int = 10_000, max_ids: int = 250_000,
               max_body_bytes: int = 1_000_000, max_concurrency: int = 256,
               micro_batch: bool = True, batch_wait_ms: float = 0.0,
               reload_on_sighup: bool = True, telemetry: bool = False,
               value_calibrator: str | Path | None = None) -> FastAPI:
    """A FastAPI app serving the model in ``model_dir`` (loaded and validated once, here).

    Args:
        model_dir: a directory written by :func:`seqrec.save_model`.
        unknown_user: ``"error"`` answers 404 for a user the model does not know (or a history
            with no known item); ``"popular"`` answers with the most popular eligible items
            (``source: "popular"``).
        max_batch: most requests in one ``/recommend/batch`` call (beyond: 413).
        max_items: most ids in one ``history`` / ``include_items`` / ``exclude_items`` (beyond: 413).
        max_ids: most ids in one request, all its lists together (beyond: 413).
        max_body_bytes: largest request body (beyond: 413).
        max_concurrency: most requests handled at once; beyond, 503 with ``Retry-After: 1``.
        micro_batch: share one forward pass between concurrent requests.
        batch_wait_ms: how long a micro-batch waits for more requests (0 = take what is queued).
        reload_on_sighup: when served from the main thread, ``SIGHUP`` reloads the model.
        telemetry: FastAPI's OpenTelemetry spans/metrics/logs (FastAPI versions that have them).
        value_calibrator: a calibrator file (:func:`seqrec.value.save_calibrator`) fitted for
            this model: enables ``POST /rank/value``, and is read again at every reload (see
            :mod:`~seqrec.serve.loading`).

    Raises:
        ValueError: a bad setting.
        ModelDirectoryError: a directory that cannot be served (from loading).
        CalibratorFileError: (a ``ValueError``) ``value_calibrator`` is missing, malformed or
            fitted for another model version.
    """
    if unknown_user not in ("error", "popular"):
        raise ValueError(f"unknown_user={unknown_user!r}: expected 'error' or 'popular'")
    for name, setting in (("max_batch", max_batch), ("max_items", max_items), ("max_ids", max_ids),
                          ("max_body_bytes", max_body_bytes), ("max_concurrency", max_concurrency)):
        if isinstance(setting, bool) or not isinstance(setting, int) or setting < 1:
            raise ValueError(f"{name}={setting!r}: expected an integer >= 1")
    holder = ModelHolder(model_dir, value_calibrator)
    load = Load()
    scorer = Scorer(micro_batch, max_rows=max(max_batch, 64), wait_s=batch_wait_ms / 1000)
    offload = Offload(load)
    RecommendRequest, BatchRequest, SimilarRequest = request_schemas(max_batch, max_items)
    value = ValueRanker(max_items, max_ids)

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
            offload.close()

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
    app.state.load = load
    app.add_middleware(RequestLimits, max_body_bytes=max_body_bytes,
                       max_concurrency=max_concurrency, load=load)
    _add_schemas(app, [RecommendRequest, BatchRequest, SimilarRequest, value.request_model])
    errors: dict[int | str, dict[str, Any]] = {
        code: {"model": ErrorResponse} for code in (404, 409, 413, 415, 422, 503)}

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        details = validation_details(exc.errors())
        status = 413 if any(d["type"] == "too_long" for d in details) else 422
        return JSONResponse(error_body(details), status)

    @app.exception_handler(ApiError)
    async def _api_error(_: Request, exc: ApiError) -> JSONResponse:
        return JSONResponse(error_body(exc.errors), exc.status)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        detail = [{"field": "request", "message": str(exc.detail), "type": "http"}]
        return JSONResponse(error_body(detail), exc.status_code, headers=exc.headers)

    @app.exception_handler(Exception)
    async def _crash(_: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error")
        return JSONResponse({"detail": f"internal error: {type(exc).__name__}",
                             "errors": []}, 500)

    def _check_ids(requests: list[Any], field: str) -> None:
        n = sum(len(ids) for r in requests for ids in (r.history, r.include_items,
                                                       r.exclude_items) if ids)
        if n > max_ids:
            raise ApiError(413, field, f"{n} ids in one request (history, include_items and "
                           f"exclude_items together); at most {max_ids}", "too_many_ids")

    def _recommend_jobs(loaded: LoadedModel, body: bytes) -> list[Job]:
        request = parse_body(RecommendRequest, body)
        _check_ids([request], "body")
        return jobs_for(loaded, [request], unknown_user, batch=False)

    def _batch_jobs(loaded: LoadedModel, body: bytes) -> list[Job]:
        requests = parse_body(BatchRequest, body).requests
        _check_ids(requests, "requests")
        return jobs_for(loaded, requests, unknown_user, batch=True)

    def _recommend_answer(loaded: LoadedModel, jobs: list[Job], ranked: list[Ranked]) -> bytes:
        [job], [(items, scores)] = jobs, ranked
        return json_bytes({"items": _items_json(loaded, items, scores),
                            "model_version": loaded.version,
                            "unknown_items_dropped": job.unknown_dropped,
                            "source": "popular" if job.popular else "model"})

    def _batch_answer(loaded: LoadedModel, jobs: list[Job], ranked: list[Ranked]) -> bytes:
        results = [{"items": _items_json(loaded, items, scores),
                    "unknown_items_dropped": job.unknown_dropped,
                    "source": "popular" if job.popular else "model"}
                   for job, (items, scores) in zip(jobs, ranked, strict=True)]
        return json_bytes({"results": results, "model_version": loaded.version})

    def _whole(parse: Any, answer: Any, loaded: LoadedModel, body: bytes) -> bytes:
        jobs = parse(loaded, body)
        return answer(loaded, jobs, rank_jobs(loaded, jobs))

    async def _handle(request: Request, parse: Any, answer: Any) -> Response:
        """A big body is parsed, ranked (one model call of its own) and answered as one job of
        the paced offload thread; a small one is parsed here and ranked by the micro-batching
        scorer (a big answer to it is built on the offload thread)."""
        loaded = holder.current
        body = await request.body()
        if len(body) > BIG_BODY_BYTES:
            payload = await offload.run(_whole, parse, answer, loaded, body)
        else:
            jobs = parse(loaded, body)
            ranked = await scorer.rank(loaded, jobs)
            if sum(len(items) for items, _ in ranked) > _BIG_ANSWER_ITEMS:
                payload = await offload.run(answer, loaded, jobs, ranked)
            else:
                payload = answer(loaded, jobs, ranked)
        return Response(payload, media_type="application/json")

    @app.post("/recommend", response_model=RecommendResponse, responses=errors,
              openapi_extra=_body_schema("RecommendRequest"))
    async def recommend(request: Request) -> Response:
        """Top-k items for one known user or one anonymous history."""
        return await _handle(request, _recommend_jobs, _recommend_answer)

    @app.post("/recommend/batch", response_model=BatchResponse, responses=errors,
              openapi_extra=_body_schema("BatchRequest"))
    async def recommend_batch(request: Request) -> Response:
        """Many users / histories in one call: one model call for all of them."""
        return await _handle(request, _batch_jobs, _batch_answer)

    @app.post("/similar", response_model=SimilarResponse, responses=errors,
              openapi_extra=_body_schema("SimilarRequest"))
    async def similar(request: Request) -> Response:
        """Item-to-item neighbours by cosine similarity of item embeddings (never the item itself)."""
        loaded = holder.current
        body = parse_body(SimilarRequest, await request.body())
        if not loaded.has_embeddings:
            raise ApiError(409, "model", f"model kind {loaded.metadata.get('kind')!r} has no "
                           "item embeddings", "no_embeddings")
        idx = loaded.fitted.catalogue.to_index([body.item_id], unknown="pad")
        if idx[0] < 0:
            raise ApiError(404, "item_id", f"unknown item {body.item_id!r}", "unknown_item")
        best = loaded.model.similar_topk(idx, body.k)  # type: ignore[union-attr]
        items, scores = best.items[0].numpy(), best.scores[0].numpy()
        keep = items != 0
        return Response(json_bytes({"items": _items_json(loaded, items[keep], scores[keep]),
                                     "model_version": loaded.version}),
                        media_type="application/json")

    @app.post("/rank/value", response_model=ValueRankResponse, responses=errors,
              openapi_extra=_body_schema("ValueRankRequest"))
    async def rank_value(request: Request) -> Response:
        """Candidates ordered by expected revenue: filter -> score -> calibrate (the server's
        --value-calibrator) -> order; 404 without a calibrator, 409 when it does not fit the
        served model version."""
        loaded = holder.current
        body = await request.body()
        if len(body) > BIG_BODY_BYTES:
            payload = await offload.run(value.whole, loaded, body)
        else:
            payload = await scorer.call(value.answer, loaded, value.parse(loaded, body))
        return Response(payload, media_type="application/json")

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
        """Load the model directory's current version (and the value calibrator file) and swap
        them in (from localhost only); 409 when the model cannot be loaded (the old one keeps
        serving). ``value_calibrator``: null without one, else whether it serves the new model."""
        host = request.client.host if request.client else ""
        if host not in _LOCAL_HOSTS:
            raise ApiError(403, "client", "admin/reload is only accepted from 127.0.0.1 or ::1",
                           "forbidden")
        try:
            previous, new = await holder.reload()
        except Exception as error:  # noqa: BLE001 - any failure keeps the old model
            raise ApiError(409, "model_dir", f"reload failed ({error}); still serving "
                           f"{holder.current.version}", "reload_failed") from None
        return {"previous_version": previous, "model_version": new, "changed": previous != new,
                "value_calibrator": calibrator_status(holder.current)}

    return app
