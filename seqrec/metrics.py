"""Ranking metrics: scores or top-K lists → 1-based ranks of held-out items → every metric.

Ranks follow the one tie rule of :mod:`seqrec.rank`: for a row with scores ``s`` over items
``1..n_items`` (column 0 = PAD is ignored), the rank of target ``t`` is its position in the list
:func:`seqrec.rank.top_k` would return::

    rank_t = 1 + #{j : s_j > s_t} + #{j : s_j == s_t and tie_key(j) < tie_key(t)}

counting every item (other targets included). So metrics computed from scores equal the metrics
of the served lists, ties included; how a constant scorer stays honest under this rule is said
in :mod:`seqrec.rank`. A target scored ``-inf`` (masked) is never retrieved: its rank is
:data:`NOT_RETRIEVED`. A held-out item repeated in a row counts once.

Ranking is over the full catalogue (no sampled candidates). Per-user metrics at cutoff ``K``,
with ``n`` distinct targets and ``hits`` = targets with rank <= K:

* ``ndcg@K`` = sum over hits of 1/log2(rank + 1), divided by sum_{i=1}^{min(n, K)} 1/log2(i + 1);
* ``recall@K`` = hits / n (with one target per user Recall@K equals HitRate@K);
* ``hit_rate@K`` = 1 if hits > 0 else 0;
* ``precision@K`` = hits / K;
* ``mrr@K`` = 1 / (rank of the best-ranked target) if it is <= K else 0;
* ``map@K`` = (1 / min(n, K)) * sum over hits t of (#hits ranked at or above t) / rank_t.

Beyond-accuracy metrics come from the top-K lists (:func:`seqrec.rank.top_k`: masked items never
included, so a list may be shorter than K):

* ``coverage@K`` = share of the n_items catalogue items that appear in at least one list
  (one number for all users);
* ``arp@K`` = mean over users of the mean popularity of the listed items;
* ``novelty@K`` = mean over users of the mean self-information -log2(p_i) of the listed items,

where popularity ``p_i`` is the share of training users (sequences) that contain item ``i``
(:func:`item_popularity`). An item no training user has (p_i = 0) is treated as if one user had
it (p_i = 1 / n_users) for novelty. Users with an empty list get NaN for arp/novelty and are left
out of the means.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from seqrec.data.sequences import Sequences
from seqrec.errors import ScoringError
from seqrec.rank import TopK, tie_keys, top_k

logger = logging.getLogger(__name__)

NOT_RETRIEVED = np.iinfo(np.int64).max
"""Rank given to a target that can never be retrieved (scored ``-inf``, or absent from a list)."""

ACCURACY_METRICS = ("ndcg", "recall", "hit_rate", "precision", "mrr", "map")
LIST_METRICS = ("coverage", "arp", "novelty")
ALL_METRICS = ACCURACY_METRICS + LIST_METRICS

_CHUNK_ELEMENTS = 1 << 24  # comparisons per chunk: 16M floats (64 MB) at a time


@dataclass(frozen=True)
class ItemPopularity:
    """How popular each item was in training.

    Attributes:
        share: ``(n_items + 1,)`` float64; ``share[i]`` is the share of training users
            (sequences) containing item ``i``; ``share[0]`` (PAD) is 0.
        n_users: number of training users (sequences) the shares were computed over.
    """

    share: np.ndarray
    n_users: int


@dataclass(frozen=True)
class MetricReport:
    """Metric values per evaluated user and their means.

    Attributes:
        per_user: one row per target row, indexed by user index (``targets.users``), with a
            column ``n_targets`` (distinct held-out items) and one column per per-user metric
            (``"ndcg@10"``, ...).
        means: metric name → mean over users (``coverage@K`` is a single catalogue-level value).
    """

    per_user: pd.DataFrame
    means: dict[str, float]

    def __str__(self) -> str:
        return ", ".join(f"{name}={value:.4f}" for name, value in self.means.items())


def item_popularity(train: Sequences, n_items: int) -> ItemPopularity:
    """Share of training sequences containing each item (each user counts an item once).

    Args:
        train: training sequences, items in ``1..n_items``.
        n_items: catalogue size.

    Returns:
        :class:`ItemPopularity` with ``share`` of shape ``(n_items + 1,)`` float64.
    """
    row_of = np.repeat(np.arange(train.n_sequences), train.lengths)
    keys = np.unique(row_of * (n_items + 1) + train.items)
    counts = np.bincount(keys % (n_items + 1), minlength=n_items + 1).astype(np.float64)
    counts[0] = 0.0
    n_users = max(train.n_sequences, 1)
    return ItemPopularity(counts / n_users, n_users)


def target_ranks(scores: torch.Tensor | np.ndarray, targets: Sequences) -> np.ndarray:
    """1-based rank of every target among all catalogue items, by the tie rule of this module.

    Args:
        scores: ``(n_rows, n_items + 1)`` float scores; column 0 (PAD) is ignored; masked items
            are ``-inf``. Row ``i`` scores the candidates for target row ``i``. A torch tensor
            stays on its device; work is chunked to ~16M comparisons at a time.
        targets: ``n_rows`` rows of target item indices in ``1..n_items`` (a row may be empty).
            An item repeated in a row is one target: every copy gets the same rank.

    Returns:
        ``(len(targets.items),)`` int64 ranks aligned with ``targets.items``; a target scored
        ``-inf`` gets :data:`NOT_RETRIEVED`.

    Raises:
        ValueError: shape mismatch, a target that is PAD or out of range, or NaN scores.
    """
    scores = _as_tensor(scores)
    n_rows, n_columns = scores.shape
    n_items = n_columns - 1
    if targets.n_sequences != n_rows:
        raise ValueError(f"scores have {n_rows} rows but targets have {targets.n_sequences}")
    _check_items(targets.items, n_items, "targets")
    if _has_nan(scores):
        raise ScoringError("scores contain NaN: the model's weights are broken")
    row_of = np.repeat(np.arange(n_rows), targets.lengths)
    _, first, inverse = np.unique(row_of * n_columns + targets.items, return_index=True,
                                  return_inverse=True)
    rows, items = row_of[first], targets.items[first]  # distinct (row, item) pairs
    device = scores.device
    rows_t, items_t = torch.as_tensor(rows, device=device), torch.as_tensor(items, device=device)
    target_scores = scores[rows_t, items_t]  # (n_targets,)

    # above[t] = #{j : s_j > s_t}; tied[t] = #{j : s_j == s_t}, t itself included
    above = np.empty(len(rows), dtype=np.int64)
    tied = np.empty(len(rows), dtype=np.int64)
    step = max(1, _CHUNK_ELEMENTS // max(n_items, 1))
    for start in range(0, len(rows), step):
        stop = min(start + step, len(rows))
        block = scores[rows_t[start:stop], 1:]  # (chunk, n_items)
        threshold = target_scores[start:stop, None]  # (chunk, 1)
        above[start:stop] = _count(block > threshold)
        tied[start:stop] = _count(block == threshold)

    # targets tied with other items: add the tied items that come first in the tie order
    ranks = 1 + above
    with_ties = np.flatnonzero(tied > 1)
    keys = tie_keys(torch.arange(1, n_columns, device=device))  # (n_items,)
    target_keys = tie_keys(items_t)
    for start in range(0, len(with_ties), step):
        chosen = torch.as_tensor(with_ties[start : start + step], device=device)
        block = scores[rows_t[chosen], 1:]  # (chunk, n_items)
        first_in_order = (block == target_scores[chosen, None]) & (keys[None, :] <
                                                                   target_keys[chosen, None])
        ranks[with_ties[start : start + step]] += _count(first_in_order)
    ranks[np.isneginf(target_scores.double().cpu().numpy())] = NOT_RETRIEVED
    return ranks[inverse.ravel()]


def _count(mask: torch.Tensor) -> np.ndarray:
    """True entries per row of a 2-D bool tensor, as int64 numpy."""
    if mask.device.type == "cpu":  # numpy's count_nonzero is several times faster on CPU
        return np.count_nonzero(mask.numpy(), axis=1).astype(np.int64)
    return mask.sum(dim=1).cpu().numpy().astype(np.int64)


def lists_from_top_k(best: TopK) -> Sequences:
    """:class:`~seqrec.rank.TopK` lists (PAD slots dropped) as ragged :class:`Sequences`
    (``users`` = row numbers, ``timestamps`` = 1-based positions in the list)."""
    items = best.items.cpu().numpy()
    return _ragged(items, items != 0)


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
    scores = _as_tensor(scores)
    if scores.ndim != 2 or scores.shape[1] != n_items + 1:
        raise ValueError(
            f"scores must have shape (n_rows, {n_items + 1}), got {tuple(scores.shape)}"
        )
    ks, names = _check_request(k, metrics, item_popularity)
    targets = _dedupe(_check_targets(targets, n_items))
    ranks = target_ranks(scores, targets)
    lists = lists_from_top_k(top_k(scores, max(ks))) if set(names) & set(LIST_METRICS) else None
    return _report(ranks, targets, lists, ks, names, n_items, item_popularity)


def evaluate_score_blocks(
    blocks: Iterable[torch.Tensor | np.ndarray],
    targets: Sequences,
    *,
    n_items: int,
    k: int | Sequence[int] = 10,
    item_popularity: ItemPopularity | None = None,
    metrics: Sequence[str] | None = None,
) -> MetricReport:
    """:func:`evaluate_scores` over score blocks that arrive one after another, so the full
    ``(n_rows, n_items + 1)`` matrix never has to exist at once (a model scores a block of
    users, the block is ranked and dropped).

    Args:
        blocks: consecutive ``(block_rows, n_items + 1)`` float score blocks whose rows, in
            order, are the rows of ``targets``.
        targets, n_items, k, item_popularity, metrics: as in :func:`evaluate_scores`.

    Returns:
        the same :class:`MetricReport` as :func:`evaluate_scores` on the stacked blocks.

    Raises:
        ValueError: as :func:`evaluate_scores`, or blocks covering a different row count.
    """
    ks, names = _check_request(k, metrics, item_popularity)
    targets = _dedupe(_check_targets(targets, n_items))
    want_lists = bool(set(names) & set(LIST_METRICS))
    ranks, lists, row = [], [], 0
    for block in blocks:
        block = _as_tensor(block)
        if block.shape[1] != n_items + 1:
            raise ValueError(f"score block must have {n_items + 1} columns, got {block.shape[1]}")
        rows = np.arange(row, row + block.shape[0])
        ranks.append(target_ranks(block, targets.select(rows)))
        if want_lists:
            lists.append(lists_from_top_k(top_k(block, max(ks))))
        row += block.shape[0]
    if row != targets.n_sequences:
        raise ValueError(f"score blocks cover {row} rows but targets have {targets.n_sequences}")
    joined = None
    if want_lists:
        lengths = np.concatenate([part.lengths for part in lists])
        offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
        joined = Sequences(np.concatenate([part.items for part in lists]), offsets,
                           np.arange(len(lengths)),
                           np.concatenate([part.timestamps for part in lists]))
    return _report(np.concatenate(ranks) if ranks else np.zeros(0, np.int64), targets, joined,
                   ks, names, n_items, item_popularity)


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
    ks, names = _check_request(k, metrics, item_popularity)
    if not isinstance(lists, Sequences):
        lists = np.asarray(lists)
        if lists.ndim != 2:
            raise ValueError(f"lists must be 2-D (n_rows, list_len), got shape {lists.shape}")
        lists = _ragged(lists.astype(np.int64), np.ones(lists.shape, dtype=bool))
    _check_items(lists.items, n_items, "lists")
    targets = _dedupe(_check_targets(targets, n_items))
    if lists.n_sequences != targets.n_sequences:
        raise ValueError(f"lists have {lists.n_sequences} rows but targets {targets.n_sequences}")
    list_rows = np.repeat(np.arange(lists.n_sequences), lists.lengths)
    list_keys = list_rows * (n_items + 1) + lists.items
    if len(np.unique(list_keys)) != len(list_keys):
        raise ValueError("a list holds the same item twice")
    lists = _truncate(lists, max(ks))
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
    return _report(ranks.astype(np.int64), targets, lists, ks, names, n_items, item_popularity)


def accuracy_from_ranks(ranks: np.ndarray, lengths: np.ndarray, k: int) -> dict[str, np.ndarray]:
    """Per-row accuracy metrics from ranks of distinct targets.

    Args:
        ranks: ``(n_targets,)`` int64 ranks, rows contiguous (CSR order), distinct targets;
            ranks of distinct targets in a row are distinct except :data:`NOT_RETRIEVED`.
        lengths: ``(n_rows,)`` int64 number of targets per row, all >= 1.
        k: cutoff.

    Returns:
        metric name (``ndcg``, ``recall``, ``hit_rate``, ``precision``, ``mrr``, ``map``) →
        ``(n_rows,)`` float64.
    """
    n_rows = len(lengths)
    row_of = np.repeat(np.arange(n_rows), lengths)
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    ranks_f = ranks.astype(np.float64)
    hit = ranks <= k
    hits = np.bincount(row_of, weights=hit, minlength=n_rows)
    discounts = 1.0 / np.log2(np.arange(1, k + 1) + 1.0)
    ideal = np.concatenate([[0.0], np.cumsum(discounts)])[np.minimum(lengths, k)]
    gains = np.where(hit, 1.0 / np.log2(np.where(hit, ranks_f, 1.0) + 1.0), 0.0)
    best = np.minimum.reduceat(ranks, offsets[:-1]) if n_rows else np.zeros(0, np.int64)
    # i-th best target (1-based, by rank) that is a hit has exactly i hits at or above it
    order = np.lexsort((ranks, row_of))
    position = np.arange(len(ranks)) - offsets[:-1][row_of[order]] + 1
    precision_at_hit = np.where(
        hit[order], position / np.where(hit[order], ranks_f[order], 1.0), 0.0
    )
    return {
        "ndcg": np.bincount(row_of, weights=gains, minlength=n_rows) / ideal,
        "recall": hits / lengths,
        "hit_rate": (hits > 0).astype(np.float64),
        "precision": hits / k,
        "mrr": np.where(best <= k, 1.0 / np.where(best <= k, best, 1).astype(np.float64), 0.0),
        "map": np.bincount(row_of[order], weights=precision_at_hit, minlength=n_rows)
        / np.minimum(lengths, k),
    }


def _report(
    ranks: np.ndarray,
    targets: Sequences,
    lists: Sequences | None,
    ks: list[int],
    names: list[str],
    n_items: int,
    popularity: ItemPopularity | None,
) -> MetricReport:
    columns: dict[str, np.ndarray] = {"n_targets": targets.lengths}
    means: dict[str, float] = {}
    for k in ks:
        accuracy = accuracy_from_ranks(ranks, targets.lengths, k)
        for name in names:
            if name in accuracy:
                columns[f"{name}@{k}"] = accuracy[name]
        if lists is None:
            continue
        top = _truncate(lists, k)
        if "coverage" in names:
            means[f"coverage@{k}"] = len(np.unique(top.items)) / n_items
        if popularity is not None and ({"arp", "novelty"} & set(names)):
            rows = np.repeat(np.arange(top.n_sequences), top.lengths)
            with np.errstate(invalid="ignore", divide="ignore"):
                share = popularity.share[top.items]
                information = -np.log2(np.maximum(share, 1.0 / popularity.n_users))
                if "arp" in names:
                    columns[f"arp@{k}"] = _row_mean(rows, share, top.lengths)
                if "novelty" in names:
                    columns[f"novelty@{k}"] = _row_mean(rows, information, top.lengths)
    per_user = pd.DataFrame(columns, index=pd.Index(targets.users, name="user"))
    ordered: dict[str, float] = {}
    for k in ks:
        for name in names:
            key = f"{name}@{k}"
            if key in means:
                ordered[key] = means[key]
            elif key in per_user:
                values = per_user[key].to_numpy()
                ordered[key] = (
                    float(np.nanmean(values)) if np.isfinite(values).any() else float("nan")
                )
    return MetricReport(per_user, ordered)


def _row_mean(rows: np.ndarray, values: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    total = np.bincount(rows, weights=values, minlength=len(lengths))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(lengths > 0, total / lengths, np.nan)


def _check_request(
    k: int | Sequence[int], metrics: Sequence[str] | None, popularity: ItemPopularity | None
) -> tuple[list[int], list[str]]:
    ks = [k] if isinstance(k, (int, np.integer)) else list(k)
    if not ks or any(int(v) < 1 for v in ks):
        raise ValueError(f"k must be a positive int or a non-empty list of them, got {k!r}")
    if metrics is None:
        names = list(ALL_METRICS if popularity is not None else ACCURACY_METRICS + ("coverage",))
    else:
        names = list(metrics)
        unknown = [m for m in names if m not in ALL_METRICS]
        if unknown:
            raise ValueError(f"unknown metrics {unknown}; allowed: {', '.join(ALL_METRICS)}")
        if popularity is None and {"arp", "novelty"} & set(names):
            raise ValueError(
                "arp and novelty need item_popularity (see seqrec.metrics.item_popularity)"
            )
    if popularity is not None and not isinstance(popularity, ItemPopularity):
        raise TypeError("item_popularity must be an ItemPopularity (see item_popularity())")
    return [int(v) for v in ks], names


def _check_targets(targets: Sequences, n_items: int) -> Sequences:
    _check_items(targets.items, n_items, "targets")
    empty = np.flatnonzero(targets.lengths == 0)
    if len(empty):
        raise ValueError(
            f"{len(empty)} target rows are empty (first: row {empty[0]}); drop them before evaluating"
        )
    return targets


def _check_items(items: np.ndarray, n_items: int, what: str) -> None:
    bad = (items < 1) | (items > n_items)
    if bad.any():
        first = int(np.argmax(bad))
        raise ValueError(
            f"{what} hold {int(bad.sum())} items outside 1..{n_items} (PAD = 0 is not an item); "
            f"first at position {first}: {int(items[first])}"
        )


def _dedupe(targets: Sequences) -> Sequences:
    """Keep the first copy of each item in each row."""
    n = int(targets.items.max()) + 1 if len(targets.items) else 1
    row_of = np.repeat(np.arange(targets.n_sequences), targets.lengths)
    _, first = np.unique(row_of * n + targets.items, return_index=True)
    if len(first) == len(targets.items):
        return targets
    keep = np.sort(first)
    lengths = np.bincount(row_of[keep], minlength=targets.n_sequences)
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    return Sequences(targets.items[keep], offsets, targets.users, targets.timestamps[keep])


def _ragged(items: np.ndarray, keep: np.ndarray) -> Sequences:
    """``(n_rows, width)`` items with a keep mask → :class:`Sequences` (positions as timestamps)."""
    n_rows, width = items.shape
    lengths = keep.sum(axis=1).astype(np.int64)
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    positions = np.broadcast_to(np.arange(1, width + 1), items.shape)[keep]
    return Sequences(
        items[keep].astype(np.int64), offsets, np.arange(n_rows), positions.astype(np.int64)
    )


def _truncate(lists: Sequences, k: int) -> Sequences:
    lengths = np.minimum(lists.lengths, k)
    if (lengths == lists.lengths).all():
        return lists
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    gather = np.repeat(lists.offsets[:-1] - offsets[:-1], lengths) + np.arange(offsets[-1])
    return Sequences(lists.items[gather], offsets, lists.users, lists.timestamps[gather])


def _has_nan(scores: torch.Tensor) -> bool:
    if scores.device.type == "cpu":
        step = max(1, _CHUNK_ELEMENTS // max(scores.shape[1], 1))
        return any(
            np.isnan(_numpy(scores[i : i + step])).any() for i in range(0, scores.shape[0], step)
        )
    return bool(torch.isnan(scores).any())


def _numpy(tensor: torch.Tensor) -> np.ndarray:
    """CPU tensor → numpy view (float16/bfloat16 are widened to float32, which keeps order)."""
    if tensor.dtype in (torch.float16, torch.bfloat16):
        tensor = tensor.float()
    return tensor.numpy()


def _as_tensor(scores: torch.Tensor | np.ndarray) -> torch.Tensor:
    if isinstance(scores, torch.Tensor):
        tensor = scores.detach()
    else:
        tensor = torch.as_tensor(np.asarray(scores))
    if tensor.ndim != 2:
        raise ValueError(
            f"scores must be 2-D (n_rows, n_items + 1), got shape {tuple(tensor.shape)}"
        )
    if not tensor.is_floating_point():
        raise ValueError(f"scores must be floating point, got {tensor.dtype}")
    return tensor
