"""The one ranking path: scores → masks → top-K. Filters are applied before ranking, never after.

Every list seqrec produces — :meth:`recommend`, :meth:`recommend_for_histories`,
:meth:`similar_items`, the HTTP service, and the lists :func:`seqrec.evaluate` scores — is cut by
:func:`top_k` after the masks of :func:`apply_filters`. Each excluded item gets a score of
``-inf``, so one call returns exactly ``min(k, eligible items)`` items per row, never PAD or MASK,
never a filtered item, and never needs a second model call to "refill" a list.

**The tie rule**, stated once: higher score first; among equal scores, the smaller
:func:`tie_keys` value first, where ``tie_key(i) = (i × 2654435761) mod 2**32`` (Knuth's
multiplicative hash: a fixed permutation of item indices). :func:`seqrec.metrics.target_ranks`
gives every held-out item its position under this same rule, so the metrics ``evaluate()``
reports are exactly the metrics of the lists ``recommend()`` returns, ties included.

Why a hashed order and not "lower item index first": indices follow the sorted external ids, and
ids often carry meaning (older, or more popular, items first). A scorer that gives every item
the same score would then recommend items ``1..k`` to everyone and could look good. Under the
hashed order a constant scorer serves one fixed list unrelated to ids, catalogue order or
popularity; its metrics are those of that arbitrary list (e.g. HitRate@10 about
``10 / n_items`` when targets spread over the catalogue), which is what it would really serve.

Scores that are NaN or ``+inf`` mean a broken model: :func:`top_k` raises
:class:`~seqrec.errors.ScoringError` rather than rank them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from seqrec.data.catalogue import PAD
from seqrec.errors import ScoringError

TIE_MULTIPLIER = 2654435761
"""Odd multiplier of :func:`tie_keys` (⌊2³² / golden ratio⌋): a bijection modulo 2³²."""


def tie_keys(items: Tensor) -> Tensor:
    """The tie order of item indices: ``(items × 2654435761) mod 2**32``, same shape, int64.

    Exact in int64 for indices below 3.4e9; distinct indices below 2**32 get distinct keys.
    """
    return (items.to(torch.int64) * TIE_MULTIPLIER) & 0xFFFFFFFF


@dataclass(frozen=True)
class TopK:
    """Top-K lists for a block of rows.

    Attributes:
        items: ``(n_rows, k)`` int64 item indices, best first; ``PAD`` (0) where a row has fewer
            than ``k`` eligible items (such slots have score ``-inf``).
        scores: ``(n_rows, k)`` float32 scores of those items.
    """

    items: Tensor
    scores: Tensor

    @property
    def lengths(self) -> np.ndarray:
        """``(n_rows,)`` int64 real (non-PAD) items per row."""
        return (self.items != PAD).sum(dim=1).numpy().astype(np.int64)


@dataclass(frozen=True)
class ItemSets:
    """One set of item indices per row, CSR, optionally a view of some rows of another CSR.

    Row ``i`` is ``items[offsets[r]:offsets[r + 1]]`` with ``r = rows[i]`` (``r = i`` when
    ``rows`` is None): selecting rows of a large history table costs no copy of its items.

    Attributes:
        items: ``(n_entries,)`` int64 item indices in ``1..n_items``.
        offsets: ``(n_csr_rows + 1,)`` int64, non-decreasing, from 0.
        rows: ``(n_rows,)`` int64 CSR rows this view shows, or None for all of them.
    """

    items: np.ndarray
    offsets: np.ndarray
    rows: np.ndarray | None = None

    @property
    def n_rows(self) -> int:
        return len(self.offsets) - 1 if self.rows is None else len(self.rows)

    def csr_rows(self) -> np.ndarray:
        """``(n_rows,)`` int64 the CSR row behind each row."""
        return np.arange(len(self.offsets) - 1) if self.rows is None else self.rows

    def lengths(self) -> np.ndarray:
        """``(n_rows,)`` int64 items per row."""
        rows = self.csr_rows()
        return self.offsets[rows + 1] - self.offsets[rows]

    @classmethod
    def from_lists(cls, lists: Sequence[Sequence[int] | np.ndarray]) -> ItemSets:
        """Rows from Python lists or arrays of item indices."""
        offsets = np.zeros(len(lists) + 1, dtype=np.int64)
        np.cumsum([len(row) for row in lists], out=offsets[1:])
        items = (np.concatenate([np.asarray(row, dtype=np.int64) for row in lists])
                 if len(lists) else np.zeros(0, np.int64))
        return cls(items.astype(np.int64, copy=False), offsets)

    def select(self, rows: np.ndarray) -> ItemSets:
        """A view of ``rows`` (positions ``0..n_rows-1``, in the given order); no copy."""
        return ItemSets(self.items, self.offsets, self.csr_rows()[np.asarray(rows, dtype=np.int64)])

    def flat(self) -> tuple[np.ndarray, np.ndarray]:
        """``(row, item)`` int64 pairs of every entry: the row position and the item index."""
        rows = self.csr_rows()
        starts, lengths = self.offsets[rows], self.lengths()
        row_of = np.repeat(np.arange(len(rows)), lengths)
        # flat gather index: each row's start repeated, plus the position within the row
        local = np.arange(lengths.sum()) - np.repeat(np.cumsum(lengths) - lengths, lengths)
        return row_of, self.items[np.repeat(starts, lengths) + local]


@dataclass(frozen=True)
class Filters:
    """What each ranked list may contain, row-aligned with the scores.

    Attributes:
        seen: items masked in each row (the history, when ``filter_viewed``), or None.
        include: only these items stay eligible: per row (:class:`ItemSets`), or one
            ``(n_items + 1,)`` bool mask for every row; None allows every item. An empty
            include set allows nothing (the list is empty).
        exclude: items removed, per row or as one shared bool mask; None removes nothing.
        include_rows: with per-row ``include``, ``(n_rows,)`` bool: the rows it applies to
            (other rows allow every item); None: all rows.
    """

    seen: ItemSets | None = None
    include: ItemSets | Tensor | None = None
    exclude: ItemSets | Tensor | None = None
    include_rows: np.ndarray | None = None

    def select(self, rows: np.ndarray) -> Filters:
        """The filters of ``rows`` (per-row parts selected, shared masks kept)."""
        def pick(part: ItemSets | Tensor | None) -> ItemSets | Tensor | None:
            return part.select(rows) if isinstance(part, ItemSets) else part

        include_rows = None if self.include_rows is None else self.include_rows[rows]
        return Filters(pick(self.seen), pick(self.include), pick(self.exclude), include_rows)


def item_mask(n_items: int, indices: np.ndarray | Sequence[int]) -> Tensor:
    """``(n_items + 1,)`` bool, True at ``indices``."""
    mask = torch.zeros(n_items + 1, dtype=torch.bool)
    mask[torch.from_numpy(np.asarray(indices, dtype=np.int64))] = True
    return mask


def _set_positions(sets: ItemSets) -> tuple[Tensor, Tensor]:
    rows, items = sets.flat()
    return torch.from_numpy(rows), torch.from_numpy(items.astype(np.int64, copy=False))


def apply_filters(scores: Tensor, filters: Filters | None = None) -> Tensor:
    """Set every item a list may not contain to ``-inf`` (in place); PAD always.

    Args:
        scores: ``(n_rows, n_items + 1)`` float, row-aligned with ``filters``.
        filters: seen / include / exclude (see :class:`Filters`); None masks PAD only.

    Returns:
        ``scores`` (modified).

    Raises:
        ValueError: per-row filters with another number of rows than ``scores``.
    """
    filters = filters or Filters()
    n_rows = scores.shape[0]
    for name in ("seen", "include", "exclude"):
        part = getattr(filters, name)
        if isinstance(part, ItemSets) and part.n_rows != n_rows:
            raise ValueError(f"filters.{name}: {part.n_rows} rows for {n_rows} score rows")
    neg_inf = float("-inf")
    if filters.seen is not None:
        scores[_set_positions(filters.seen)] = neg_inf
    if isinstance(filters.include, ItemSets):
        allowed = torch.zeros(scores.shape, dtype=torch.bool, device=scores.device)
        allowed[_set_positions(filters.include)] = True
        if filters.include_rows is not None:
            allowed[torch.from_numpy(~np.asarray(filters.include_rows, dtype=bool))] = True
        scores.masked_fill_(~allowed, neg_inf)
    elif filters.include is not None:
        scores.masked_fill_(~filters.include.to(scores.device), neg_inf)
    if isinstance(filters.exclude, ItemSets):
        scores[_set_positions(filters.exclude)] = neg_inf
    elif filters.exclude is not None:
        scores.masked_fill_(filters.exclude.to(scores.device), neg_inf)
    scores[:, PAD] = neg_inf
    return scores


def check_finite(values: Tensor, what: str = "scores") -> None:
    """Raise :class:`~seqrec.errors.ScoringError` when ``values`` hold NaN or ``+inf``
    (``-inf`` marks masked items and is allowed)."""
    bad = torch.isnan(values) | torch.isposinf(values)
    if bool(bad.any()):
        rows = torch.nonzero(bad.any(dim=-1)).flatten()[:5].tolist() if values.ndim > 1 else []
        raise ScoringError(f"{what}: NaN or +inf model scores (rows {rows}): the model's weights "
                           "are broken; retrain it or load another model directory")


def top_k(scores: Tensor, k: int) -> TopK:
    """Top-``k`` items per row after masking, ordered by the module's tie rule.

    Args:
        scores: ``(n_rows, n_items + 1)`` float with excluded items (and PAD) at ``-inf``.
        k: list length requested (>= 1).

    Returns:
        :class:`TopK` with ``min(k, n_items)`` columns; slots beyond a row's eligible items hold
        PAD and ``-inf``.

    Raises:
        ValueError: ``k < 1``.
        ScoringError: NaN or ``+inf`` among the scores.
    """
    if k < 1:
        raise ValueError(f"k={k}: expected k >= 1")
    n_rows, width = scores.shape
    k = min(k, width - 1)
    if n_rows == 0 or k == 0:
        empty = torch.zeros(n_rows, max(k, 0), dtype=torch.int64)
        return TopK(empty, empty.to(torch.float32))
    # one extra column shows whether a tie straddles the cut (torch.topk ranks NaN first, so the
    # finiteness check needs only these columns)
    values, indices = torch.topk(scores, k + 1, dim=1)  # (n_rows, k + 1), sorted
    check_finite(values)
    straddles = (values[:, k - 1] == values[:, k]) & torch.isfinite(values[:, k - 1])
    values, indices = values[:, :k], indices[:, :k]
    if bool(straddles.any()):
        rows = torch.nonzero(straddles).flatten()
        fixed_values, fixed_indices = _cut_ties(scores[rows], values[rows, k - 1 :], k)
        values, indices = values.clone(), indices.clone()
        values[rows], indices[rows] = fixed_values, fixed_indices
    # order inside each list: by tie key, then (stably) by score, descending
    by_key = torch.argsort(tie_keys(indices), dim=1)
    values, indices = values.gather(1, by_key), indices.gather(1, by_key)
    by_score = torch.sort(values, dim=1, descending=True, stable=True).indices
    values, indices = values.gather(1, by_score), indices.gather(1, by_score)
    indices = indices.masked_fill(torch.isneginf(values), PAD)
    return TopK(indices, values.float())


def _cut_ties(scores: Tensor, kth: Tensor, k: int) -> tuple[Tensor, Tensor]:
    """The ``k`` best items of rows whose ``k``-th score is tied with items outside the top-k:
    every item above the tied score, then the tied items with the smallest tie keys.

    Args:
        scores: ``(n_rows, n_items + 1)`` the rows' full scores.
        kth: ``(n_rows, 1)`` the score at position ``k``.
    """
    greater = scores > kth  # (n_rows, width)
    tied = scores == kth
    need = k - greater.sum(dim=1)  # (n_rows,) tied items to take, >= 1
    column_keys = tie_keys(torch.arange(scores.shape[1], device=scores.device))
    masked_keys = torch.where(tied, column_keys, torch.iinfo(torch.int64).max)
    n_pick = int(need.max())
    picked = torch.topk(masked_keys, n_pick, dim=1, largest=False).indices  # (n_rows, n_pick)
    take = torch.arange(n_pick, device=scores.device)[None, :] < need[:, None]
    chosen = greater | torch.zeros_like(greater).scatter_(1, picked, take)
    indices = torch.nonzero(chosen)[:, 1].view(len(scores), k)  # exactly k per row
    return scores.gather(1, indices), indices


ScoreRows = Callable[[np.ndarray], Tensor]
"""``rows -> (len(rows), n_items + 1)`` float32 scores of those rows (positions ``0..n_rows-1``
of whatever the caller ranks), PAD column ``-inf``."""


def rank_rows(score_rows: ScoreRows, n_rows: int, k: int, filters: Filters | None = None, *,
              lengths: np.ndarray | None = None, fallback: np.ndarray | None = None,
              fallback_scores: Tensor | None = None, batch_size: int = 1024) -> TopK:
    """Score, mask and cut ``n_rows`` lists, block by block, with one model call per block.

    Args:
        score_rows: the model (see :data:`ScoreRows`).
        n_rows: lists to rank.
        k: list length.
        filters: row-aligned filters (see :class:`Filters`).
        lengths: ``(n_rows,)`` history lengths; rows are then scored in blocks of similar length
            (each block is padded only to its own longest history). The result keeps the
            caller's row order either way.
        fallback: ``(n_rows,)`` bool, rows ranked by ``fallback_scores`` instead of the model
            (e.g. unknown users with the popular fallback); the model never sees them.
        fallback_scores: ``(n_items + 1,)`` float32 scores for the fallback rows.
        batch_size: rows per model call.

    Returns:
        :class:`TopK` of ``n_rows`` rows in the caller's order.

    Raises:
        ValueError: ``k < 1``, or ``fallback`` without ``fallback_scores``.
        ScoringError: the model gave NaN or ``+inf`` scores.
    """
    if k < 1:
        raise ValueError(f"k={k}: expected k >= 1")
    filters = filters or Filters()
    fallback = np.zeros(n_rows, dtype=bool) if fallback is None else np.asarray(fallback, bool)
    if fallback.any() and fallback_scores is None:
        raise ValueError("fallback rows need fallback_scores")
    model_rows = np.flatnonzero(~fallback)
    if lengths is not None:  # blocks of similar history length
        model_rows = model_rows[np.argsort(np.minimum(lengths[model_rows], 10_000), kind="stable")]
    parts: list[tuple[np.ndarray, TopK]] = []
    for start in range(0, len(model_rows), batch_size):
        block = model_rows[start : start + batch_size]
        scores = apply_filters(score_rows(block), filters.select(block))
        parts.append((block, top_k(scores, k)))
    fallback_rows = np.flatnonzero(fallback)
    if len(fallback_rows):
        assert fallback_scores is not None
        scores = fallback_scores.reshape(1, -1).expand(len(fallback_rows), -1).clone()
        parts.append((fallback_rows, top_k(apply_filters(scores, filters.select(fallback_rows)), k)))
    return _in_row_order(parts, n_rows, k)


def _in_row_order(parts: list[tuple[np.ndarray, TopK]], n_rows: int, k: int) -> TopK:
    if not parts:
        empty = torch.zeros(0, k, dtype=torch.int64)
        return TopK(empty, empty.to(torch.float32))
    width = parts[0][1].items.shape[1]
    items = torch.zeros(n_rows, width, dtype=torch.int64)
    scores = torch.full((n_rows, width), float("-inf"))
    for rows, best in parts:
        index = torch.from_numpy(rows)
        items[index], scores[index] = best.items, best.scores
    return TopK(items, scores)
