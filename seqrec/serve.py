"""HTTP serving: a FastAPI app over a model directory (:func:`create_app`) and :func:`serve`.

One process holds one loaded model (:class:`LoadedModel`). Each request takes a reference to it
when it starts, so a hot reload (``SIGHUP`` or ``POST /admin/reload`` from localhost) loads the
directory's new version in a worker thread and swaps the reference: requests in flight finish on
the old model, new ones see the new one, nothing is dropped.

Every ranking request is turned into :class:`_Job` rows (item-index histories + filters). Model
rows go through :class:`_Scorer`: one ``score_block`` call per request (never a refill loop), and
with ``micro_batch=True`` the rows of concurrent requests share that call (greedy batching: while
one forward pass runs, new requests queue up and form the next batch). Filters are masks on the
scores before top-K (:mod:`seqrec.recommend`), so each list has exactly ``min(k, eligible)`` items.

Id rules (the model's external ids are either all ints or all strings): for an int-id model a JSON
string that is a canonical decimal integer (``"12"``, ``"-3"``; not ``"012"``, ``" 12"``,
``"12.0"``) means that int, any other string is unknown; for a string-id model a JSON int ``12``
means ``"12"``. Responses carry ids in the model's own type. JSON booleans and floats are not ids.
"""

import asyncio
import gc
import hashlib
import inspect
import json
import logging
import os
import re
import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
import torch
from fastapi import FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PlainValidator,
    StrictBool,
    StrictInt,
    WithJsonSchema,
    model_validator,
)
from pydantic_core import PydanticCustomError
from starlette.exceptions import HTTPException as StarletteHTTPException

from seqrec.checkpoint import load_model
from seqrec.recommend import PAD, apply_filters, item_mask, mask_seen, top_k
from seqrec.recommender import popularity_scores

log = logging.getLogger(__name__)

UnknownUserPolicy = Literal["error", "popular"]
MAX_K = 1000
MAX_ID_CHARS = 256
_CANONICAL_INT = re.compile(r"-?(0|[1-9][0-9]*)")
_LOCAL_HOSTS = frozenset({"127.0.0.1", "::1", "::ffff:127.0.0.1"})



def _check_id(value: Any) -> int | str:
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise PydanticCustomError("id_type", "expected an id: a JSON integer or string")
    if isinstance(value, str) and len(value) > MAX_ID_CHARS:
        raise PydanticCustomError("id_too_long", f"ids are at most {MAX_ID_CHARS} characters")
    return value


Id = Annotated[int | str, PlainValidator(_check_id), WithJsonSchema(
    {"anyOf": [{"type": "integer"}, {"type": "string", "maxLength": MAX_ID_CHARS}]})]


# ---- the loaded model --------------------------------------------------------------------------
@dataclass(frozen=True)
class LoadedModel:
    """A model directory loaded for serving; replaced whole on reload, never mutated.

    Attributes:
        model: the fitted recommender (``score_block``, ``catalogue``, ``user_index``, ...).
        metadata: ``model.json``.
        version: ``trained_at`` + ``+`` + the first 12 hex digits of sha256(model.json).
        user_rows: ``(n_users,)`` int64 history row of each user index, -1 without history.
        popular_row: ``(1, n_items + 1)`` float32 popularity scores (unknown-user fallback).
        unit_embeddings: ``(n_items + 1, dim)`` float32 L2-normalised item embeddings for
            ``/similar``; None for models without embeddings (``popular``).
    """

    model: Any
    metadata: dict[str, Any]
    version: str
    user_rows: np.ndarray
    popular_row: torch.Tensor
    unit_embeddings: torch.Tensor | None

    @property
    def int_item_ids(self) -> bool:
        return self.model.catalogue.ids.dtype.kind in "iu"

    @property
    def int_user_ids(self) -> bool:
        return self.model.user_index.ids.dtype.kind in "iu"


def model_version(meta_bytes: bytes) -> str:
    """``trained_at+hash``: changes whenever ``model.json`` changes (every save writes a new one)."""
    trained_at = json.loads(meta_bytes).get("trained_at", "unknown")
    return f"{trained_at}+{hashlib.sha256(meta_bytes).hexdigest()[:12]}"


def load_for_serving(model_dir: str | Path, attempts: int = 5) -> LoadedModel:
    """Load a model directory with :func:`seqrec.checkpoint.load_model` (no unpickling).

    ``save_model`` replaces a directory by two renames, so a load can start between them or
    straddle them; such a load is retried (bounded) until ``model.json`` reads the same before
    and after.

    Raises:
        FileNotFoundError / ValueError: from ``load_model`` after the last attempt.
    """
    path = Path(model_dir)
    for attempt in range(attempts):
        try:
            before = (path / "model.json").read_bytes()
            model = load_model(path)
            after = (path / "model.json").read_bytes()
        except FileNotFoundError:
            if attempt == attempts - 1:
                raise
            time.sleep(0.05 * (attempt + 1))
            continue
        if before == after:
            break
        if attempt == attempts - 1:
            raise ValueError(f"{path}: model directory kept changing while loading")
    user_rows = np.full(len(model.user_index), -1, dtype=np.int64)
    user_rows[model.histories.users] = np.arange(model.histories.n_sequences)
    embeddings = None
    if hasattr(model, "item_embeddings"):
        embeddings = torch.nn.functional.normalize(model.item_embeddings(), dim=1)
    return LoadedModel(model=model, metadata=json.loads(after), version=model_version(after),
                       user_rows=user_rows,
                       popular_row=popularity_scores(model.popularity, 1),
                       unit_embeddings=embeddings)


class ModelHolder:
    """The current :class:`LoadedModel` and the reload that replaces it."""

    def __init__(self, model_dir: str | Path) -> None:
        self.model_dir = Path(model_dir)
        self.current = load_for_serving(self.model_dir)
        self._lock = asyncio.Lock()

    async def reload(self) -> tuple[str, str]:
        """Load the directory again in a thread and swap the reference.

        Returns:
            ``(previous_version, new_version)``.
        """
        async with self._lock:
            loaded = await asyncio.to_thread(load_for_serving, self.model_dir)
            previous, self.current = self.current, loaded
        gc.freeze()  # the new model too; the old one is still freed by reference counting
        log.info("model reloaded: %s -> %s", previous.version, loaded.version)
        return previous.version, loaded.version


# ---- ranking -----------------------------------------------------------------------------------
@dataclass
class _Job:
    """One list to rank: ``history`` are item indices (oldest first) the model reads."""

    history: np.ndarray
    k: int
    filter_viewed: bool
    include: np.ndarray | None = None
    exclude: np.ndarray | None = None
    popular: bool = False
    unknown_dropped: int = 0


def _csr(histories: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    offsets = np.zeros(len(histories) + 1, dtype=np.int64)
    np.cumsum([len(h) for h in histories], out=offsets[1:])
    items = np.concatenate(histories).astype(np.int64) if histories else np.zeros(0, np.int64)
    return items, offsets


def score_jobs(model: Any, jobs: list[_Job]) -> torch.Tensor:
    """``(len(jobs), n_items + 1)`` float32 scores from exactly one ``model.score_block`` call."""
    items, offsets = _csr([job.history for job in jobs])
    return model.score_block(items, offsets, np.arange(len(jobs)))


def rank_jobs(scores: torch.Tensor, jobs: list[_Job]) -> list[tuple[np.ndarray, np.ndarray]]:
    """Mask each row (seen, include, exclude, PAD), then one top-K for all rows.

    Args:
        scores: ``(len(jobs), n_items + 1)`` float32, modified in place.

    Returns:
        per job ``(item indices, scores)``: ``min(k, eligible)`` entries, best first.
    """
    n_items = scores.shape[1] - 1
    seen, seen_offsets = _csr([job.history if job.filter_viewed else job.history[:0] for job in jobs])
    mask_seen(scores, seen, seen_offsets, np.arange(len(jobs)))
    for i, job in enumerate(jobs):
        if job.include is not None or job.exclude is not None:
            include = None if job.include is None else item_mask(n_items, job.include)
            exclude = None if job.exclude is None else item_mask(n_items, job.exclude)
            apply_filters(scores[i : i + 1], include, exclude)  # a view: masks in place
    apply_filters(scores)
    best = top_k(scores, max(job.k for job in jobs))
    out = []
    for i, job in enumerate(jobs):
        items = best.items[i, : job.k].numpy()
        keep = items != PAD
        out.append((items[keep], best.scores[i, : job.k].numpy()[keep]))
    return out


def _rank_model_jobs(loaded: LoadedModel, jobs: list[_Job]) -> list[tuple[np.ndarray, np.ndarray]]:
    with torch.inference_mode():  # cheaper than no_grad: no version counters on the outputs
        return rank_jobs(score_jobs(loaded.model, jobs), jobs)


@dataclass
class _Unit:
    loaded: LoadedModel
    jobs: list[_Job]
    future: asyncio.Future = field(repr=False)


class _Scorer:
    """Runs model jobs on one compute thread, micro-batching concurrent requests if asked.

    With ``micro_batch`` a collector task takes every request queued at that moment (up to
    ``max_rows`` rows, waiting at most ``wait_s`` for more) and scores them with one
    ``score_block`` call; a request's rows are never split across calls.
    """

    def __init__(self, micro_batch: bool, max_rows: int, wait_s: float) -> None:
        self.micro_batch = micro_batch
        self.max_rows = max_rows
        self.wait_s = wait_s
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="seqrec-score")
        self._loop: asyncio.AbstractEventLoop | None = None
        self._queue: asyncio.Queue[_Unit] | None = None
        self._task: asyncio.Task | None = None

    async def rank(self, loaded: LoadedModel, jobs: list[_Job]) -> list[tuple[np.ndarray, np.ndarray]]:
        loop = asyncio.get_running_loop()
        if not self.micro_batch:
            return await loop.run_in_executor(self.executor, _rank_model_jobs, loaded, jobs)
        if self._loop is not loop or self._task is None or self._task.done():
            # (re)start in this loop: a test client may run each request in a new event loop
            self._loop, self._queue = loop, asyncio.Queue()
            self._task = loop.create_task(self._collect())
        assert self._queue is not None
        unit = _Unit(loaded, jobs, loop.create_future())
        self._queue.put_nowait(unit)
        return await unit.future

    async def _collect(self) -> None:
        assert self._queue is not None
        queue, loop = self._queue, asyncio.get_running_loop()
        while True:
            units = [await queue.get()]
            rows = len(units[0].jobs)
            deadline = loop.time() + self.wait_s
            while rows < self.max_rows:
                try:
                    unit = queue.get_nowait()
                except asyncio.QueueEmpty:
                    remaining = deadline - loop.time()
                    if remaining <= 0:
                        break
                    try:
                        unit = await asyncio.wait_for(queue.get(), remaining)
                    except TimeoutError:
                        break
                units.append(unit)
                rows += len(unit.jobs)
            await self._run(units)

    async def _run(self, units: list[_Unit]) -> None:
        loop = asyncio.get_running_loop()
        groups: dict[int, list[_Unit]] = {}
        for unit in units:  # rows of different model versions (during a reload) never mix
            groups.setdefault(id(unit.loaded), []).append(unit)
        for group in groups.values():
            jobs = [job for unit in group for job in unit.jobs]
            try:
                results = await loop.run_in_executor(self.executor, _rank_model_jobs,
                                                     group[0].loaded, jobs)
            except Exception as error:  # noqa: BLE001 - handed to each waiting request
                for unit in group:
                    if not unit.future.done():
                        unit.future.set_exception(error)
                continue
            start = 0
            for unit in group:
                if not unit.future.done():  # a disconnected client cancels its future
                    unit.future.set_result(results[start : start + len(unit.jobs)])
                start += len(unit.jobs)

    def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
        self.executor.shutdown(wait=False)


# ---- request / response schemas ----------------------------------------------------------------
class ScoredItem(BaseModel):
    item_id: int | str
    score: float
    rank: int


class RecommendResponse(BaseModel):
    items: list[ScoredItem]
    model_version: str
    unknown_items_dropped: int = Field(
        description="ids in history, include_items or exclude_items unknown to the model (dropped)")
    source: Literal["model", "popular"] = Field(
        description="'popular' when an unknown user got the popularity fallback")


class BatchResult(BaseModel):
    items: list[ScoredItem]
    unknown_items_dropped: int
    source: Literal["model", "popular"]


class BatchResponse(BaseModel):
    results: list[BatchResult]
    model_version: str


class SimilarResponse(BaseModel):
    items: list[ScoredItem]
    model_version: str


class ErrorResponse(BaseModel):
    detail: str
    errors: list[dict[str, Any]] | None = None


def _schemas(max_batch: int, max_items: int) -> tuple[type[BaseModel], type[BaseModel], type[BaseModel]]:
    """Request models with this app's size limits (shown in the OpenAPI schema as maxItems)."""
    IdList = Annotated[list[Id], Field(max_length=max_items)]

    class RecommendRequest(BaseModel):
        """Give exactly one of ``user_id`` (a known user) or ``history`` (item ids, oldest first)."""

        model_config = ConfigDict(extra="forbid")
        user_id: Id | None = None
        history: IdList | None = None
        k: Annotated[StrictInt, Field(ge=1, le=MAX_K)] = 10
        filter_viewed: StrictBool = True
        include_items: IdList | None = None
        exclude_items: IdList | None = None

        @model_validator(mode="after")
        def _exactly_one_source(self) -> Any:
            if (self.user_id is None) == (self.history is None):
                raise PydanticCustomError("one_source", "give exactly one of user_id or history")
            return self

    class BatchRequest(BaseModel):
        model_config = ConfigDict(extra="forbid")
        requests: Annotated[list[RecommendRequest], Field(min_length=1, max_length=max_batch)]

    class SimilarRequest(BaseModel):
        model_config = ConfigDict(extra="forbid")
        item_id: Id
        k: Annotated[StrictInt, Field(ge=1, le=MAX_K)] = 10

    return RecommendRequest, BatchRequest, SimilarRequest


# ---- id mapping --------------------------------------------------------------------------------
def _normalise(value: int | str, int_ids: bool) -> int | str | None:
    """The id in the model's type, or None when it cannot be one of the model's ids."""
    if int_ids:
        if isinstance(value, int):
            return value
        return int(value) if _CANONICAL_INT.fullmatch(value) else None
    return value if isinstance(value, str) else str(value)


def _item_indices(loaded: LoadedModel, ids: list[int | str]) -> tuple[np.ndarray, int]:
    """Known item indices (input order) and how many ids were unknown."""
    int_ids = loaded.int_item_ids
    lookup = loaded.model.catalogue._lookup  # external id -> index, built once per load
    idx = [lookup.get(_normalise(v, int_ids), -1) for v in ids]
    known = np.fromiter((i for i in idx if i >= 0), dtype=np.int64)
    return known, len(ids) - len(known)


def _user_row(loaded: LoadedModel, user_id: int | str) -> int:
    key = _normalise(user_id, loaded.int_user_ids)
    index = loaded.model.user_index._lookup.get(key, -1)
    return int(loaded.user_rows[index]) if index >= 0 else -1


def _job(loaded: LoadedModel, request: Any, unknown_user: UnknownUserPolicy, where: str) -> _Job:
    dropped = 0
    popular = False
    if request.user_id is not None:
        row = _user_row(loaded, request.user_id)
        if row < 0:
            if unknown_user == "error":
                raise HTTPException(404, f"{where}user_id: unknown user {request.user_id!r}")
            history, popular = np.zeros(0, dtype=np.int64), True
        else:
            h = loaded.model.histories
            history = h.items[h.offsets[row] : h.offsets[row + 1]]
    else:
        history, dropped = _item_indices(loaded, request.history)
    filters = []
    for ids in (request.include_items, request.exclude_items):
        if ids is None:
            filters.append(None)
            continue
        idx, unknown = _item_indices(loaded, ids)
        filters.append(idx)
        dropped += unknown
    return _Job(history, request.k, request.filter_viewed, filters[0], filters[1], popular, dropped)


def _items_json(loaded: LoadedModel, items: np.ndarray, scores: np.ndarray) -> list[dict[str, Any]]:
    ids = loaded.model.catalogue.to_external(items).tolist()
    return [{"item_id": i, "score": s, "rank": r + 1}
            for r, (i, s) in enumerate(zip(ids, scores.tolist(), strict=True))]


def _json(payload: Any, status: int = 200) -> Response:
    # response models are declared on the routes for the schema; returning bytes skips a second
    # validation pass over our own output
    return Response(json.dumps(payload, allow_nan=False).encode(), status,
                    media_type="application/json")


def _field(loc: tuple[Any, ...]) -> str:
    parts = [p for p in loc if p != "body"] if loc and loc[0] == "body" else list(loc)
    out = ""
    for p in parts:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out or "body"


# ---- the app -----------------------------------------------------------------------------------
def create_app(model_dir: str | Path, *, unknown_user: UnknownUserPolicy = "error",
               max_batch: int = 256, max_items: int = 10_000, max_body_bytes: int = 1_000_000,
               micro_batch: bool = True, batch_wait_ms: float = 0.0,
               reload_on_sighup: bool = True, telemetry: bool = False) -> FastAPI:
    """A FastAPI app serving the model in ``model_dir`` (loaded once, here).

    Args:
        model_dir: a directory written by ``model.save()`` / :func:`seqrec.checkpoint.save_model`.
        unknown_user: ``"error"`` answers 404 for a user the model does not know; ``"popular"``
            answers with the most popular eligible items (``source: "popular"``).
        max_batch: most requests in one ``/recommend/batch`` call (beyond: 413).
        max_items: most ids in one ``history`` / ``include_items`` / ``exclude_items`` (beyond: 413).
        max_body_bytes: largest request body (beyond: 413).
        micro_batch: share one forward pass between concurrent requests.
        batch_wait_ms: how long a micro-batch waits for more requests (0 = take what is queued).
        reload_on_sighup: when served from the main thread, ``SIGHUP`` reloads the model.
        telemetry: FastAPI's OpenTelemetry spans/metrics/logs (FastAPI versions that have them).

    Raises:
        ValueError: a bad setting, or a bad model directory (from loading).
        FileNotFoundError: no model directory at ``model_dir``.
    """
    if unknown_user not in ("error", "popular"):
        raise ValueError(f"unknown_user={unknown_user!r}: expected 'error' or 'popular'")
    for name, value in (("max_batch", max_batch), ("max_items", max_items),
                        ("max_body_bytes", max_body_bytes)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name}={value!r}: expected an integer >= 1")
    holder = ModelHolder(model_dir)
    scorer = _Scorer(micro_batch, max_rows=max(max_batch, 64), wait_s=batch_wait_ms / 1000)
    RecommendRequest, BatchRequest, SimilarRequest = _schemas(max_batch, max_items)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        # Move everything loaded so far (torch, the model, the id maps) out of the collector's
        # reach: otherwise full collections walk it all and add 100s of ms to unlucky requests.
        gc.freeze()
        loop = asyncio.get_running_loop()
        hup = getattr(signal, "SIGHUP", None)
        installed = False
        if reload_on_sighup and hup is not None and threading.current_thread() is threading.main_thread():
            loop.add_signal_handler(hup, lambda: loop.create_task(_reload_logged()))
            installed = True
        try:
            yield
        finally:
            if installed:
                loop.remove_signal_handler(hup)
            scorer.close()

    async def _reload_logged() -> None:
        try:
            await holder.reload()
        except Exception:  # noqa: BLE001 - keep serving the old model
            log.exception("reload of %s failed; still serving %s", holder.model_dir,
                          holder.current.version)

    extra: dict[str, Any] = {}
    if "telemetry" in inspect.signature(FastAPI.__init__).parameters:
        # FastAPI's built-in OpenTelemetry hooks cost ~50 us a request even with no exporter
        extra["telemetry"] = {"tracing": telemetry, "metrics": telemetry, "logs": telemetry,
                              "operation_spans": telemetry}
    app = FastAPI(title="seqrec", version=__import__("seqrec").__version__, lifespan=lifespan,
                  description="Sequential recommendations from a seqrec model directory.", **extra)
    app.state.models = holder
    app.state.scorer = scorer
    app.add_middleware(_BodyLimit, max_bytes=max_body_bytes)
    errors: dict[int | str, dict[str, Any]] = {
        code: {"model": ErrorResponse} for code in (400, 404, 413, 422)}

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        details = [{"field": _field(tuple(e.get("loc", ()))), "message": e.get("msg", ""),
                    "type": e.get("type", "")} for e in exc.errors()]
        status = 413 if any(d["type"] == "too_long" for d in details) else 422
        text = "; ".join(f"{d['field']}: {d['message']}" for d in details[:5]) or "invalid request"
        return JSONResponse({"detail": text, "errors": details}, status)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        return JSONResponse({"detail": str(exc.detail)}, exc.status_code, headers=exc.headers)

    @app.exception_handler(Exception)
    async def _crash(_: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error")
        return JSONResponse({"detail": f"internal error: {type(exc).__name__}"}, 500)

    async def _rank(loaded: LoadedModel, jobs: list[_Job]) -> list[tuple[np.ndarray, np.ndarray]]:
        model_jobs = [job for job in jobs if not job.popular]
        ranked = await scorer.rank(loaded, model_jobs) if model_jobs else []
        popular_jobs = [job for job in jobs if job.popular]
        if popular_jobs:
            scores = loaded.popular_row.expand(len(popular_jobs), -1).clone()
            popular_ranked = iter(rank_jobs(scores, popular_jobs))
        model_ranked = iter(ranked)
        return [next(popular_ranked) if job.popular else next(model_ranked) for job in jobs]

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

    @app.post("/similar", response_model=SimilarResponse, responses={**errors, 409: {"model": ErrorResponse}})
    async def similar(body: SimilarRequest) -> Response:  # type: ignore[valid-type]
        """Item-to-item neighbours by cosine similarity of item embeddings (never the item itself)."""
        loaded = holder.current
        if loaded.unit_embeddings is None:
            raise HTTPException(409, f"model kind {loaded.metadata.get('kind')!r} has no item embeddings")
        idx, unknown = _item_indices(loaded, [body.item_id])
        if unknown:
            raise HTTPException(404, f"item_id: unknown item {body.item_id!r}")
        emb = loaded.unit_embeddings
        scores = emb[int(idx[0])].unsqueeze(0) @ emb.T  # (1, n_items + 1)
        job = _Job(idx, body.k, filter_viewed=True)  # "viewed" = the item itself
        [(items, values)] = rank_jobs(scores, [job])
        return _json({"items": _items_json(loaded, items, values), "model_version": loaded.version})

    @app.get("/health")
    async def health() -> dict[str, str]:
        """Liveness: the process answers."""
        return {"status": "ok"}

    @app.get("/ready")
    async def ready() -> dict[str, Any]:
        """Readiness: a model is loaded (always true once the app exists; reloads keep serving)."""
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
                "item_id_type": "int" if loaded.int_item_ids else "str",
                "user_id_type": "int" if loaded.int_user_ids else "str"}

    @app.post("/admin/reload", responses={403: {"model": ErrorResponse}})
    async def admin_reload(request: Request) -> dict[str, Any]:
        """Load the model directory's current version and swap it in (from localhost only)."""
        host = request.client.host if request.client else ""
        if host not in _LOCAL_HOSTS:
            raise HTTPException(403, "admin/reload: only accepted from 127.0.0.1 or ::1")
        try:
            previous, new = await holder.reload()
        except (FileNotFoundError, ValueError, KeyError, RuntimeError) as error:
            raise HTTPException(500, f"reload failed ({error}); still serving "
                                     f"{holder.current.version}") from None
        return {"previous_version": previous, "model_version": new, "changed": previous != new}

    return app


class _TooLarge(StarletteHTTPException):
    """Raised from ``receive``: FastAPI passes HTTP exceptions from body reading through."""


class _BodyLimit:
    """ASGI middleware: 413 for a body over ``max_bytes`` (by Content-Length, or while reading a
    chunked body)."""

    def __init__(self, app: Any, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = dict(scope.get("headers") or []).get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > self.max_bytes):
            await self._reject(send)
            return
        received = 0
        started = False

        async def limited_receive() -> dict:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise _TooLarge(413, f"body: larger than {self.max_bytes} bytes")
            return message

        async def tracking_send(message: dict) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except _TooLarge:
            if not started:
                await self._reject(send)

    async def _reject(self, send: Any) -> None:
        body = json.dumps({"detail": f"body: larger than {self.max_bytes} bytes"}).encode()
        await send({"type": "http.response.start", "status": 413,
                    "headers": [(b"content-type", b"application/json"),
                                (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})


def serve(model_dir: str | Path, host: str = "127.0.0.1", port: int = 8000, *,
          unknown_user: UnknownUserPolicy = "error", max_batch: int = 256,
          max_body_bytes: int = 1_000_000, micro_batch: bool = True, workers: int = 1,
          torch_threads: int = 1, access_log: bool = False, log_level: str = "info") -> None:
    """Serve ``model_dir`` over HTTP with uvicorn until interrupted.

    Binds to 127.0.0.1 unless ``host`` says otherwise. ``kill -HUP <pid>`` or
    ``curl -X POST localhost:PORT/admin/reload`` reloads the model without dropping requests.

    Args:
        workers: uvicorn worker processes. With more than one, ``SIGHUP`` to the parent makes
            uvicorn restart the workers one by one (each loads the new model) and
            ``/admin/reload`` reaches only the worker that answers it.
        torch_threads: intra-op threads for torch per process (1 leaves the other cores to the
            HTTP loop and to other workers).
        access_log: uvicorn's per-request log line (off: it costs throughput).
        Others: see :func:`create_app`.
    """
    import uvicorn

    settings = {"model_dir": str(model_dir), "unknown_user": unknown_user, "max_batch": max_batch,
                "max_body_bytes": max_body_bytes, "micro_batch": micro_batch,
                "torch_threads": torch_threads}
    if workers > 1:
        os.environ[_SETTINGS_ENV] = json.dumps(settings)
        uvicorn.run("seqrec.serve:_app_from_env", factory=True, workers=workers, host=host,
                    port=port, access_log=access_log, log_level=log_level)
        return
    torch.set_num_threads(settings.pop("torch_threads"))
    app = create_app(settings.pop("model_dir"), **settings)
    uvicorn.run(app, host=host, port=port, access_log=access_log, log_level=log_level)


_SETTINGS_ENV = "SEQREC_SERVE_SETTINGS"


def _app_from_env() -> FastAPI:
    """App factory for uvicorn worker processes: settings come from :func:`serve` via the env."""
    settings = json.loads(os.environ[_SETTINGS_ENV])
    torch.set_num_threads(settings.pop("torch_threads"))
    return create_app(settings.pop("model_dir"), **settings)


__all__ = ["LoadedModel", "ModelHolder", "create_app", "load_for_serving", "model_version",
           "rank_jobs", "score_jobs", "serve"]
