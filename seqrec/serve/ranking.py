"""Requests → jobs (item indices and filters) → one ranked list each, through
:func:`seqrec.rank.rank_rows`, the library's one ranking path.

:func:`jobs_for` turns validated recommend requests into :class:`Job` rows (ids mapped by the id
rule of :mod:`seqrec.data.catalogue`, once per distinct id). Model rows go through
:class:`Scorer`: one model call per request (never a refill loop), and with ``micro_batch=True``
the rows of concurrent requests share that call (greedy batching: while one forward pass runs,
new requests queue up and form the next batch). A batch that fails is retried request by
request, so one bad request fails alone. :class:`Offload` runs the CPU work of big requests
(parsing, id mapping, answers) off the event loop, paced so that it cannot starve small ones.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

import numpy as np
import torch

from seqrec.data.catalogue import PAD
from seqrec.filters import Filters, ItemSets
from seqrec.lists import HistoryScorer
from seqrec.rank import rank_rows
from seqrec.serve.errors import ApiError
from seqrec.serve.limits import Load
from seqrec.serve.loading import LoadedModel

T = TypeVar("T")
UnknownUserPolicy = Literal["error", "popular"]
Ranked = tuple[np.ndarray, np.ndarray]
"""One list: ``(item indices, scores)``, best first, ``min(k, eligible)`` entries."""


@dataclass
class Job:
    """One list to rank: ``history`` are item indices (oldest first) the model reads.

    Attributes:
        history: ``(n,)`` int64 item indices.
        k: list length.
        filter_viewed: mask the history's items.
        include / exclude: item indices allowed / removed (None: no such filter).
        popular: rank by popularity instead of the model (unknown user with the fallback).
        unknown_dropped: ids of the request that were unknown (reported back).
        times: ``(n,)`` int64 seconds of the history's events (a known user's stored times)
            for time-aware models; None: unknown (every time gap counts as 0).
    """

    history: np.ndarray
    k: int
    filter_viewed: bool
    include: np.ndarray | None = None
    exclude: np.ndarray | None = None
    popular: bool = False
    unknown_dropped: int = 0
    times: np.ndarray | None = None


def _known_indices(loaded: LoadedModel, lists: list[list[Any] | None]
                   ) -> list[tuple[np.ndarray, int] | None]:
    """Per id list: known item indices (input order) and how many ids were unknown.

    The id rule (:meth:`~seqrec.data.catalogue.Catalogue.to_index`) runs once per distinct id of
    all the lists: a batch of long histories repeats ids a lot.
    """
    present = [ids for ids in lists if ids]
    if not present:  # e.g. a known user with no filters
        return [None if ids is None else (np.zeros(0, dtype=np.int64), 0) for ids in lists]
    distinct = list(dict.fromkeys(itertools.chain.from_iterable(present)))
    lookup = dict(zip(distinct, loaded.fitted.catalogue.to_index(distinct, unknown="pad").tolist(),
                      strict=True))
    lengths = [len(ids) for ids in present]
    flat = np.fromiter(map(lookup.__getitem__, itertools.chain.from_iterable(present)),
                       dtype=np.int64, count=sum(lengths))
    parts = iter(np.split(flat, np.cumsum(lengths)[:-1]))
    out: list[tuple[np.ndarray, int] | None] = []
    for ids in lists:
        if ids is None:
            out.append(None)
            continue
        idx = next(parts) if ids else flat[:0]
        known = idx[idx >= 0]
        out.append((known, len(idx) - len(known)))
    return out


def jobs_for(loaded: LoadedModel, requests: Sequence[Any], unknown_user: UnknownUserPolicy,
             batch: bool) -> list[Job]:
    """The jobs of validated recommend requests (see :mod:`~seqrec.serve.schemas`).

    Unknown users (and histories with no known item) follow ``unknown_user``: ``"error"`` raises
    a 404 naming the field (``requests[i].user_id`` in a batch), ``"popular"`` makes a popularity
    job.

    Raises:
        ApiError: 404 for an unknown user or history under ``unknown_user="error"``.
    """
    data = loaded.fitted
    indices = _known_indices(loaded, [ids for r in requests
                                      for ids in (r.history, r.include_items, r.exclude_items)])
    h = data.histories
    jobs = []
    for i, request in enumerate(requests):
        where = f"requests[{i}]." if batch else ""
        history_ids, include, exclude = indices[3 * i : 3 * i + 3]
        dropped, popular, times = 0, False, None
        if request.user_id is not None:
            index = data.user_index.index_of(request.user_id)
            row = int(loaded.history_rows[index]) if index >= 0 else -1
            if row < 0 and unknown_user == "error":
                raise ApiError(404, f"{where}user_id", f"unknown user {request.user_id!r}",
                               "unknown_user")
            span = slice(h.offsets[row], h.offsets[row + 1]) if row >= 0 else slice(0, 0)
            history, times = h.items[span], h.timestamps[span]
            popular = row < 0
        else:
            assert history_ids is not None
            history, dropped = history_ids
            if len(history) == 0:
                if unknown_user == "error":
                    raise ApiError(404, f"{where}history", "no item known to the model (treated "
                                   "as an unknown user; the server's --popular-fallback answers "
                                   "these)", "unknown_history")
                popular = True
        dropped += sum(part[1] for part in (include, exclude) if part is not None)
        jobs.append(Job(np.asarray(history, dtype=np.int64), request.k, request.filter_viewed,
                        None if include is None else include[0],
                        None if exclude is None else exclude[0], popular, dropped, times))
    return jobs


def rank_jobs(loaded: LoadedModel, jobs: list[Job]) -> list[Ranked]:
    """Rank ``jobs`` with exactly one model call for all their model rows.

    Returns:
        per job ``(item indices, scores)``: ``min(k, eligible)`` entries, best first.
    """
    if not jobs:
        return []
    empty = np.zeros(0, dtype=np.int64)
    histories = ItemSets.from_lists([job.history for job in jobs])
    has_include = np.array([job.include is not None for job in jobs])
    filters = Filters(
        seen=ItemSets.from_lists([job.history if job.filter_viewed else empty for job in jobs]),
        include=ItemSets.from_lists([empty if job.include is None else job.include
                                     for job in jobs]) if has_include.any() else None,
        exclude=ItemSets.from_lists([empty if job.exclude is None else job.exclude
                                     for job in jobs]),
        include_rows=has_include)
    k = max(job.k for job in jobs)
    times = None
    if any(job.times is not None for job in jobs):  # known users' times, for time-aware models
        times = np.concatenate([np.zeros(len(job.history), np.int64) if job.times is None
                                else job.times for job in jobs])
    with torch.inference_mode():  # cheaper than no_grad: no version counters on the outputs
        best = rank_rows(HistoryScorer(loaded.model, histories, times), len(jobs),
                         loaded.fitted.n_items, k, filters,
                         fallback=np.array([job.popular for job in jobs]),
                         fallback_scores=loaded.fitted.popularity_scores(), batch_size=len(jobs))
    out = []
    for i, job in enumerate(jobs):
        items = best.items[i, : job.k].numpy()
        keep = items != PAD
        out.append((items[keep], best.scores[i, : job.k].numpy()[keep]))
    return out


@dataclass
class _Unit:
    loaded: LoadedModel
    jobs: list[Job]
    future: asyncio.Future = field(repr=False)
    passed_over: int = 0


class Scorer:
    """Runs jobs on one compute thread, micro-batching concurrent requests if asked.

    With ``micro_batch`` a collector task takes the requests queued at that moment (waiting at
    most ``wait_s`` for more), smallest first up to ``max_rows`` rows (see :meth:`_pick`), and
    ranks them with one model call; a request's rows are never split across calls. Requests
    whose client went away before their turn are not scored.
    """

    def __init__(self, micro_batch: bool, max_rows: int, wait_s: float) -> None:
        self.micro_batch = micro_batch
        self.max_rows = max_rows
        self.wait_s = wait_s
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="seqrec-score")
        self._loop: asyncio.AbstractEventLoop | None = None
        self._queue: asyncio.Queue[_Unit] | None = None
        self._task: asyncio.Task | None = None

    async def rank(self, loaded: LoadedModel, jobs: list[Job]) -> list[Ranked]:
        loop = asyncio.get_running_loop()
        if not self.micro_batch:
            return await loop.run_in_executor(self.executor, rank_jobs, loaded, jobs)
        if self._loop is not loop or self._task is None or self._task.done():
            # (re)start in this loop: a test client may run each request in a new event loop
            self._loop, self._queue = loop, asyncio.Queue()
            self._task = loop.create_task(self._collect())
        assert self._queue is not None
        unit = _Unit(loaded, jobs, loop.create_future())
        self._queue.put_nowait(unit)
        return await unit.future

    async def call(self, fn: Callable[..., T], *args: Any) -> T:
        """``fn(*args)`` on the compute thread, in turn with the micro-batches: model work of
        other kinds (``/rank/value``) off the event loop. A request cancelled before its turn
        (its client hung up) never runs."""
        return await asyncio.get_running_loop().run_in_executor(self.executor, fn, *args)

    async def _collect(self) -> None:
        assert self._queue is not None
        queue, loop = self._queue, asyncio.get_running_loop()
        pending: list[_Unit] = []  # queued, oldest first
        while True:
            if not pending:
                pending.append(await queue.get())
            deadline = loop.time() + self.wait_s
            while True:
                try:
                    pending.append(queue.get_nowait())
                    continue
                except asyncio.QueueEmpty:
                    pass
                remaining = deadline - loop.time()
                if remaining <= 0 or sum(len(u.jobs) for u in pending) >= self.max_rows:
                    break
                try:
                    pending.append(await asyncio.wait_for(queue.get(), remaining))
                except TimeoutError:
                    break
            pending = [unit for unit in pending if not unit.future.done()]
            if pending:
                units = self._pick(pending)
                chosen = {id(unit) for unit in units}
                pending = [unit for unit in pending if id(unit) not in chosen]
                await self._run(units)

    def _pick(self, pending: list[_Unit]) -> list[_Unit]:
        """Requests with the fewest rows first, up to ``max_rows``: a burst of big batch requests
        does not hold up single ones. A request passed over twice goes first (oldest first), so
        none waits forever."""
        order = sorted(pending, key=lambda u: (u.passed_over < 2, len(u.jobs)))  # stable: age
        units, rows = [order[0]], len(order[0].jobs)
        for unit in order[1:]:
            if rows + len(unit.jobs) <= self.max_rows:
                units.append(unit)
                rows += len(unit.jobs)
            else:
                unit.passed_over += 1
        return units

    async def _run(self, units: list[_Unit]) -> None:
        loop = asyncio.get_running_loop()
        groups: dict[int, list[_Unit]] = {}
        for unit in units:  # rows of different model versions (during a reload) never mix
            groups.setdefault(id(unit.loaded), []).append(unit)
        for group in groups.values():
            jobs = [job for unit in group for job in unit.jobs]
            try:
                results = await loop.run_in_executor(self.executor, rank_jobs, group[0].loaded,
                                                     jobs)
            except Exception:  # noqa: BLE001 - find the request that failed: retry one by one
                for unit in group:
                    await self._run_alone(unit)
                continue
            start = 0
            for unit in group:
                if not unit.future.done():  # a disconnected client cancels its future
                    unit.future.set_result(results[start : start + len(unit.jobs)])
                start += len(unit.jobs)

    async def _run_alone(self, unit: _Unit) -> None:
        loop = asyncio.get_running_loop()
        try:
            result = await loop.run_in_executor(self.executor, rank_jobs, unit.loaded, unit.jobs)
        except Exception as error:  # noqa: BLE001 - handed to the waiting request
            if not unit.future.done():
                unit.future.set_exception(error)
            return
        if not unit.future.done():
            unit.future.set_result(result)

    def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
        self.executor.shutdown(wait=False)


def _timed(took: list[float], fn: Callable[..., T], *args: Any) -> T:
    start = time.perf_counter()
    try:
        return fn(*args)
    finally:
        took[0] = time.perf_counter() - start


class Offload:
    """The CPU work of big requests (parsing, id mapping, ranking, answers) on one worker thread,
    so that the event loop goes on serving small ones.

    Jobs run one at a time, in arrival order. While small requests are in flight (``load``),
    big ones are paced: after a job that took ``t`` seconds the next one starts no sooner than
    ``t * (1 - share) / share`` later, so big requests hold the worker (and, in Python code, the
    interpreter lock the event loop needs too) about ``share`` of the time at most while others
    wait; alone, they run back to back. A job whose request is cancelled while it waits (its
    client hung up) never runs.
    """

    def __init__(self, load: Load, share: float = 0.1) -> None:
        self.load = load
        self.share = share
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="seqrec-offload")
        self._loop: asyncio.AbstractEventLoop | None = None
        self._lock: asyncio.Lock | None = None
        self._resume_at = 0.0

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        loop = asyncio.get_running_loop()
        if self._loop is not loop or self._lock is None:
            # (re)made in this loop: a test client may run each request in a new event loop
            self._loop, self._lock, self._resume_at = loop, asyncio.Lock(), 0.0
        async with self._lock:
            wait = self._resume_at - loop.time()
            if wait > 0 and self.load.requests > self.load.big:
                await asyncio.sleep(wait)
            took = [0.0]  # seconds the job held the worker (0 if it never ran)
            try:
                return await loop.run_in_executor(self.executor, _timed, took, fn, *args)
            finally:
                self._resume_at = loop.time() + took[0] * (1 - self.share) / self.share

    def close(self) -> None:
        self.executor.shutdown(wait=False, cancel_futures=True)
