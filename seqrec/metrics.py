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
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from seqrec.data.sequences import Sequences
from seqrec.errors import ScoringError
from seqrec.rank import TopK, tie_keys

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
    scores = as_score_tensor(scores)
    n_rows, n_columns = scores.shape
    n_items = n_columns - 1
    if targets.n_sequences != n_rows:
        raise ValueError(f"scores have {n_rows} rows but targets have {targets.n_sequences}")
    check_items(targets.items, n_items, "targets")
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
    return ragged_lists(items, items != 0)


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


def check_request(
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


def check_targets(targets: Sequences, n_items: int) -> Sequences:
    check_items(targets.items, n_items, "targets")
    empty = np.flatnonzero(targets.lengths == 0)
    if len(empty):
        raise ValueError(
            f"{len(empty)} target rows are empty (first: row {empty[0]}); drop them before evaluating"
        )
    return targets


def check_items(items: np.ndarray, n_items: int, what: str) -> None:
    bad = (items < 1) | (items > n_items)
    if bad.any():
        first = int(np.argmax(bad))
        raise ValueError(
            f"{what} hold {int(bad.sum())} items outside 1..{n_items} (PAD = 0 is not an item); "
            f"first at position {first}: {int(items[first])}"
        )


def dedupe_targets(targets: Sequences) -> Sequences:
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


def ragged_lists(items: np.ndarray, keep: np.ndarray) -> Sequences:
    """``(n_rows, width)`` items with a keep mask → :class:`Sequences` (positions as timestamps)."""
    n_rows, width = items.shape
    lengths = keep.sum(axis=1).astype(np.int64)
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    positions = np.broadcast_to(np.arange(1, width + 1), items.shape)[keep]
    return Sequences(
        items[keep].astype(np.int64), offsets, np.arange(n_rows), positions.astype(np.int64)
    )


def truncate_lists(lists: Sequences, k: int) -> Sequences:
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


def as_score_tensor(scores: torch.Tensor | np.ndarray) -> torch.Tensor:
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
