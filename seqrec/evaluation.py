"""Evaluation entry points: a recommender on a held-out part (:func:`evaluate`), a score matrix
(:func:`evaluate_scores`), score blocks (:func:`evaluate_score_blocks`) or ready-made lists
(:func:`evaluate_lists`) → a :class:`~seqrec.metrics.MetricReport`. The metrics themselves and
the tie rule of the ranks are defined in :mod:`seqrec.metrics`.

:func:`evaluate` ranks the full catalogue, seen items filtered: the recommender scores blocks of
histories; each block is masked by :mod:`seqrec.rank`'s filters, ranked under its tie rule and
dropped, so memory stays at one block of ``(block_rows, n_items + 1)`` scores, and the metrics are
those of the lists the recommender would serve for the same histories.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any, Protocol

import numpy as np
import torch

from seqrec.chunks import chunked_ranks
from seqrec.data.debias import debias_targets
from seqrec.data.sequences import HeldOut, Sequences
from seqrec.filters import Filters, ItemSets, apply_filters
from seqrec.metric_report import build_report, joined_lists
from seqrec.metrics import (
    LIST_METRICS,
    NOT_RETRIEVED,
    ItemPopularity,
    MetricReport,
    as_score_tensor,
    check_items,
    check_request,
    check_targets,
    dedupe_targets,
    item_popularity,
    lists_from_top_k,
    ragged_lists,
    target_ranks,
    truncate_lists,
)
from seqrec.objectives import default_query_times
from seqrec.rank import chunk_items, top_k


class Scorer(Protocol):
    """What :func:`evaluate` needs of a recommender."""

    n_items: int
    histories: Sequences

    def encode_histories(self, items: np.ndarray, offsets: np.ndarray, rows: np.ndarray,
                         timestamps: np.ndarray | None = None,
                         query_times: np.ndarray | None = None) -> torch.Tensor:
        """A per-row query for CSR histories ``rows`` (e.g. ``(len(rows), dim)`` hidden states);
        ``query_times`` ``(len(rows),)``: when each recommendation is asked for."""
        ...

    def score_items(self, hidden: torch.Tensor, start: int = 0,
                    stop: int | None = None) -> torch.Tensor:
        """``(n, stop - start)`` float32 scores of items ``start .. stop - 1``; PAD ``-inf``."""
        ...


def evaluate(model: Scorer, heldout: HeldOut, *, k: int | Sequence[int] = 10,
             filter_viewed: bool = True, metrics: Sequence[str] | None = None,
             batch_size: int = 1024, train: Sequences | None = None,
             chunk: int | None = None, debiased: bool = False, iqr_coef: float = 1.5,
             debias_seed: int = 0) -> MetricReport:
    """Metrics of ``model`` on ``heldout`` (every catalogue item ranked; never sampled).

    Args:
        model: a fitted recommender (``encode_histories``, ``score_items``, ``n_items``,
            ``histories``).
        heldout: histories (model inputs) and targets, row-aligned.
        k: cutoff(s).
        filter_viewed: mask each user's history items before ranking (use with splits that
            dropped already-seen targets, as the eSASRec paper's protocol does); with
            ``False`` (repeat consumption: re-buys count) seen items stay eligible. Targets a
            user already has in the history can never be hit with ``True``: a warning counts
            them.
        metrics: metric names (default: all, with ARP and novelty).
        batch_size: users scored per block.
        train: sequences to count item popularity on for ARP and novelty (default: the
            model's histories), e.g. the train part of the split.
        chunk: catalogue items scored at once (default: all of them when their scores fit the
            memory budget of :func:`seqrec.rank.chunk_items`); smaller chunks bound memory at
            the price of scoring each block twice (:mod:`seqrec.chunks`), same metrics.
        debiased: also report ``dndcg@K``, ``drecall@K``, ``dhit_rate@K`` on targets with
            over-popular items down-sampled (:func:`seqrec.data.debias.debias_targets` with
            ``iqr_coef`` and ``debias_seed``), as the eSASRec paper's time-split tables.

    Time-aware layers are asked about each user's first held-out event's time
    (:func:`request_times`).

    Returns:
        :class:`~seqrec.metrics.MetricReport`, equal to the metrics of the lists
        ``recommend_for_histories`` returns for the same histories, filters, timestamps and
        query times.

    Raises:
        ValueError: as :func:`evaluate_score_blocks`.
        ScoringError: the model gives NaN or ``+inf`` scores.
    """
    # users in order of history length, so each scored block is padded only to its own longest
    # history (metrics are per user: the order does not change them)
    if filter_viewed:
        _warn_unreachable(heldout)
    order = np.argsort(heldout.histories.lengths, kind="stable")
    h = heldout.histories.select(order)
    targets = heldout.targets.select(order)
    asked_at = request_times(h, targets)
    popularity = None
    if metrics is None or {"arp", "novelty"} & set(metrics):
        popularity = item_popularity(model.histories if train is None else train, model.n_items)
    seen = ItemSets(h.items, h.offsets) if filter_viewed else None
    n_items = model.n_items
    if chunk is None:
        chunk = chunk_items(n_items, max(batch_size, int(targets.lengths.max(initial=1))))
    if chunk >= n_items + 1:
        def blocks() -> Iterator[torch.Tensor]:
            for start in range(0, h.n_sequences, batch_size):
                rows = np.arange(start, min(start + batch_size, h.n_sequences))
                scores = model.score_items(model.encode_histories(h.items, h.offsets, rows,
                                                                   h.timestamps, asked_at[rows]))
                yield apply_filters(scores, Filters(seen=None if seen is None
                                                    else seen.select(rows)))

        return evaluate_score_blocks(blocks(), targets, n_items=n_items, k=k,
                                     item_popularity=popularity, metrics=metrics,
                                     debiased=(iqr_coef, debias_seed) if debiased else None)
    ks, names = check_request(k, metrics, popularity)
    targets = dedupe_targets(check_targets(targets, n_items))
    kept = debias_targets(targets, iqr_coef, debias_seed) if debiased else None
    list_k = max(ks) if set(names) & set(LIST_METRICS) else None
    ranks, lists = [], []
    for first in range(0, h.n_sequences, batch_size):
        rows = np.arange(first, min(first + batch_size, h.n_sequences))
        query = model.encode_histories(h.items, h.offsets, rows, h.timestamps, asked_at[rows])
        filters = Filters(seen=None if seen is None else seen.select(rows))

        def score_chunk(start: int, stop: int, query: torch.Tensor = query,
                        filters: Filters = filters) -> torch.Tensor:
            return apply_filters(model.score_items(query, start, stop), filters, start)

        block_ranks, best = chunked_ranks(score_chunk, targets.select(rows), n_items, chunk,
                                          list_k)
        ranks.append(block_ranks)
        if best is not None:
            lists.append(lists_from_top_k(best))
    return build_report(np.concatenate(ranks), targets, joined_lists(lists) if lists else None,
                        ks, names, n_items, popularity, kept)


def _warn_unreachable(heldout: HeldOut) -> None:
    """Warn when targets are in their user's history: masked as seen, never hit."""
    h, t = heldout.histories, heldout.targets
    width = int(max(h.items.max(initial=0), t.items.max(initial=0))) + 1
    seen = np.repeat(np.arange(h.n_sequences), h.lengths) * width + h.items
    wanted = np.repeat(np.arange(t.n_sequences), t.lengths) * width + t.items
    unreachable = int(np.isin(wanted, seen).sum())
    if unreachable:
        warnings.warn(f"{unreachable:,} of {len(t.items):,} targets are already in their user's "
                      "history and can never be hit with filter_viewed=True (repeat "
                      "consumption?): use filter_viewed=False, or a split with "
                      "filter_already_seen=True", stacklevel=3)


def evaluate_scores(
    scores: torch.Tensor | np.ndarray,
    targets: Sequences,
    *,
    n_items: int,
    k: int | Sequence[int] = 10,
    item_popularity: ItemPopularity | None = None,
    metrics: Sequence[str] | None = None,
) -> MetricReport:
    """Full-catalogue evaluation of a score matrix.

    Args:
        scores: ``(n_rows, n_items + 1)`` float, column 0 (PAD) ignored, masked items ``-inf``;
            row ``i`` belongs to target row ``i``.
        targets: held-out items per row (``HeldOut.targets``); duplicates count once.
        n_items: catalogue size (checked against the scores' width).
        k: one cutoff or several.
        item_popularity: needed for ``arp`` and ``novelty`` (see :func:`item_popularity`).
        metrics: names from ``ndcg, recall, hit_rate, precision, mrr, map, coverage, arp,
            novelty``; default: all of them, ``arp`` and ``novelty`` only when
            ``item_popularity`` is given.

    Returns:
        :class:`MetricReport` with keys such as ``"ndcg@10"``.

    Raises:
        ValueError: shape mismatch, an empty target row, PAD/out-of-range targets, NaN scores,
            an unknown metric, or ``arp``/``novelty`` without ``item_popularity``.
    """
    scores = as_score_tensor(scores)
    if scores.ndim != 2 or scores.shape[1] != n_items + 1:
        raise ValueError(
            f"scores must have shape (n_rows, {n_items + 1}), got {tuple(scores.shape)}"
        )
    ks, names = check_request(k, metrics, item_popularity)
    targets = dedupe_targets(check_targets(targets, n_items))
    ranks = target_ranks(scores, targets)
    lists = lists_from_top_k(top_k(scores, max(ks))) if set(names) & set(LIST_METRICS) else None
    return build_report(ranks, targets, lists, ks, names, n_items, item_popularity)


def evaluate_score_blocks(
    blocks: Iterable[torch.Tensor | np.ndarray],
    targets: Sequences,
    *,
    n_items: int,
    k: int | Sequence[int] = 10,
    item_popularity: ItemPopularity | None = None,
    metrics: Sequence[str] | None = None,
    debiased: tuple[float, int] | None = None,
) -> MetricReport:
    """:func:`evaluate_scores` over score blocks that arrive one after another, so the full
    ``(n_rows, n_items + 1)`` matrix never has to exist at once (a model scores a block of
    users, the block is ranked and dropped).

    Args:
        blocks: consecutive ``(block_rows, n_items + 1)`` float score blocks whose rows, in
            order, are the rows of ``targets``.
        targets, n_items, k, item_popularity, metrics: as in :func:`evaluate_scores`.
        debiased: ``(iqr_coef, seed)`` to add debiased means (see :func:`evaluate`).

    Returns:
        the same :class:`MetricReport` as :func:`evaluate_scores` on the stacked blocks.

    Raises:
        ValueError: as :func:`evaluate_scores`, or blocks covering a different row count.
    """
    ks, names = check_request(k, metrics, item_popularity)
    targets = dedupe_targets(check_targets(targets, n_items))
    want_lists = bool(set(names) & set(LIST_METRICS))
    ranks, lists, row = [], [], 0
    for block in blocks:
        block = as_score_tensor(block)
        if block.shape[1] != n_items + 1:
            raise ValueError(f"score block must have {n_items + 1} columns, got {block.shape[1]}")
        rows = np.arange(row, row + block.shape[0])
        ranks.append(target_ranks(block, targets.select(rows)))
        if want_lists:
            lists.append(lists_from_top_k(top_k(block, max(ks))))
        row += block.shape[0]
    if row != targets.n_sequences:
        raise ValueError(f"score blocks cover {row} rows but targets have {targets.n_sequences}")
    kept = None if debiased is None else debias_targets(targets, *debiased)
    return build_report(np.concatenate(ranks) if ranks else np.zeros(0, np.int64), targets,
                        joined_lists(lists) if want_lists else None, ks, names, n_items,
                        item_popularity, kept)


def evaluate_lists(
    lists: np.ndarray | Sequences,
    targets: Sequences,
    *,
    n_items: int,
    k: int | Sequence[int] = 10,
    item_popularity: ItemPopularity | None = None,
    metrics: Sequence[str] | None = None,
) -> MetricReport:
    """Evaluate ready-made recommendation lists (any recommender's output).

    The rank of a target is its 1-based position in its row's list (items beyond the first K
    are ignored); a target not in the list is not retrieved. With lists equal to
    :func:`seqrec.rank.top_k` of a score matrix, the result equals :func:`evaluate_scores`
    (ties included).

    Args:
        lists: ``(n_rows, list_len)`` int item indices, best first, or :class:`Sequences` of
            ragged lists; row ``i`` belongs to target row ``i``.
        targets: held-out items per row; duplicates count once.
        n_items: catalogue size.
        k, item_popularity, metrics: as in :func:`evaluate_scores`.

    Returns:
        :class:`MetricReport`.

    Raises:
        ValueError: row count mismatch, PAD/out-of-range/duplicate items in a list, an empty
            target row, or an invalid metric request.
    """
    ks, names = check_request(k, metrics, item_popularity)
    if not isinstance(lists, Sequences):
        lists = np.asarray(lists)
        if lists.ndim != 2:
            raise ValueError(f"lists must be 2-D (n_rows, list_len), got shape {lists.shape}")
        lists = ragged_lists(lists.astype(np.int64), np.ones(lists.shape, dtype=bool))
    check_items(lists.items, n_items, "lists")
    targets = dedupe_targets(check_targets(targets, n_items))
    if lists.n_sequences != targets.n_sequences:
        raise ValueError(f"lists have {lists.n_sequences} rows but targets {targets.n_sequences}")
    list_rows = np.repeat(np.arange(lists.n_sequences), lists.lengths)
    list_keys = list_rows * (n_items + 1) + lists.items
    if len(np.unique(list_keys)) != len(list_keys):
        raise ValueError("a list holds the same item twice")
    lists = truncate_lists(lists, max(ks))
    list_rows = np.repeat(np.arange(lists.n_sequences), lists.lengths)
    positions = np.arange(len(lists.items)) - np.repeat(lists.offsets[:-1], lists.lengths) + 1
    sorter = np.argsort(list_rows * (n_items + 1) + lists.items)
    sorted_keys = (list_rows * (n_items + 1) + lists.items)[sorter]
    target_rows = np.repeat(np.arange(targets.n_sequences), targets.lengths)
    target_keys = target_rows * (n_items + 1) + targets.items
    at = np.minimum(np.searchsorted(sorted_keys, target_keys), max(len(sorted_keys) - 1, 0))
    found = (
        (sorted_keys[at] == target_keys) if len(sorted_keys) else np.zeros(len(target_keys), bool)
    )
    ranks = np.where(found, positions[sorter][at] if len(sorted_keys) else 0, NOT_RETRIEVED)
    return build_report(ranks.astype(np.int64), targets, lists, ks, names, n_items, item_popularity)


def request_times(histories: Sequences, targets: Sequences) -> np.ndarray:
    """``(n_rows,)`` int64 when each held-out row's recommendation is asked for: the time of its
    first held-out event (a live system knows the request time: "now"), or the default
    (:func:`seqrec.objectives.default_query_times`) for a row without targets.

    Time-aware layers (HSTU, FuXi-α) read it as the query time of the last position, as training
    reads each position's target time and as the HSTU and FuXi-α reference evaluations do; other
    models ignore it.
    """
    starts, ends = histories.offsets[:-1], histories.offsets[1:]
    last = default_query_times(np.where(ends > starts, histories.timestamps[np.maximum(ends - 1, 0)], 0))
    if not len(targets.timestamps):
        return last
    has = targets.lengths > 0
    first = targets.timestamps[np.minimum(targets.offsets[:-1], len(targets.timestamps) - 1)]
    return np.where(has, first, last).astype(np.int64)


def validator(model: Scorer, validation: HeldOut, eval_k: int, sharded: bool = False,
              fabric: Any = None) -> Callable[[Any], float]:
    """The ``validate`` callback of :func:`seqrec.train.fit`: validation NDCG@``eval_k`` of
    ``model`` (full ranking, seen items filtered); with ``sharded`` the mean over every
    process's users (each process holds its own; an empty shard still joins the all-reduce)."""

    def validate(_encoder: Any) -> float:
        users = float(validation.targets.n_sequences)
        ndcg = (evaluate(model, validation, k=eval_k, metrics=("ndcg",)).means[f"ndcg@{eval_k}"]
                if users else 0.0)
        if not sharded or fabric is None or fabric.world_size == 1:
            return ndcg
        total = fabric.all_reduce(torch.tensor([ndcg * users, users]), reduce_op="sum")
        return float(total[0] / max(float(total[1]), 1.0))

    return validate
