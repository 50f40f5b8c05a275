"""The one ranking path: scores → masks → top-K. Filters are applied before ranking, never after.

Every list seqrec produces — :meth:`recommend`, :meth:`recommend_for_histories`,
:meth:`similar_items`, the HTTP service, and the lists :func:`seqrec.evaluate` scores — is cut by
:func:`top_k` after the masks of :func:`seqrec.filters.apply_filters`. Each excluded item gets a
score of ``-inf``, so one call returns exactly ``min(k, eligible items)`` items per row, never PAD
or MASK, never a filtered item, and never needs a second model call to "refill" a list. Large
catalogues are scored in chunks whose lists are merged (:func:`rank_rows`), with the same result.

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

from dataclasses import dataclass
from typing import Protocol

import numpy as np
import torch
from torch import Tensor

from seqrec.data.catalogue import PAD
from seqrec.errors import ScoringError
from seqrec.filters import Filters, apply_filters
from seqrec.memory import available_memory_bytes

TIE_MULTIPLIER = 2654435761
"""Odd multiplier of :func:`tie_keys` (⌊2³² / golden ratio⌋): a bijection modulo 2³²."""
GROUP = 64
"""Columns per group in the first stage of :func:`top_k` on wide rows (fastest of 16..128)."""
TILE_BYTES = 4 * 2**20
"""float32 scores :func:`rank_rows` scores, masks and cuts at once: a tile that stays in a
core's cache (about 86 users by Beauty's 12,102 items) rather than a block of 1,024 users by the
whole catalogue (2 to 16 MiB measured alike on Beauty; benchmarks/recommend_profile.py)."""


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


def check_finite(values: Tensor, what: str = "scores") -> None:
    """Raise :class:`~seqrec.errors.ScoringError` when ``values`` hold NaN or ``+inf``
    (``-inf`` marks masked items and is allowed)."""
    bad = torch.isnan(values) | torch.isposinf(values)
    if bool(bad.any()):
        rows = torch.nonzero(bad.any(dim=-1)).flatten()[:5].tolist() if values.ndim > 1 else []
        raise ScoringError(f"{what}: NaN or +inf model scores (rows {rows}): the model's weights "
                           "are broken; retrain it or load another model directory")


def top_k(scores: Tensor, k: int, start: int = 0) -> TopK:
    """Top-``k`` items per row after masking, ordered by the module's tie rule.

    Args:
        scores: ``(n_rows, width)`` float scores of items ``start .. start + width - 1``,
            excluded items at ``-inf``; with ``start == 0`` column 0 is PAD (never listed) and
            ``width`` is usually ``n_items + 1``.
        k: list length requested (>= 1).
        start: the item index of column 0 (a chunk of the catalogue).

    Returns:
        :class:`TopK` with ``min(k, items in the columns)`` columns; slots beyond a row's
        eligible items hold PAD and ``-inf``.

    Raises:
        ValueError: ``k < 1``.
        ScoringError: NaN or ``+inf`` among the scores.
    """
    if k < 1:
        raise ValueError(f"k={k}: expected k >= 1")
    n_rows, width = scores.shape
    k = min(k, width - 1 if start == 0 else width)
    if n_rows == 0 or k == 0:
        empty = torch.zeros(n_rows, max(k, 0), dtype=torch.int64)
        return TopK(empty, empty.to(torch.float32))
    # one extra column (when there is one) shows whether a tie straddles the cut; torch.topk
    # ranks NaN first, so the finiteness check needs only these columns
    extra = int(k < width)
    values, indices = _largest(scores, k + extra)  # (n_rows, k + extra), sorted
    check_finite(values)
    indices = indices + start
    if extra:
        straddles = (values[:, k - 1] == values[:, k]) & torch.isfinite(values[:, k - 1])
        values, indices = values[:, :k], indices[:, :k]
        if bool(straddles.any()):
            rows = torch.nonzero(straddles).flatten()
            fixed_values, fixed_indices = _cut_ties(scores[rows], values[rows, k - 1 :], k, start)
            values, indices = values.clone(), indices.clone()
            values[rows], indices[rows] = fixed_values, fixed_indices
    return _ordered(values, indices)


def _largest(scores: Tensor, m: int) -> tuple[Tensor, Tensor]:
    """The ``m`` largest scores of each row and their columns, as ``torch.topk`` gives them
    (sorted; NaN first; which of equal scores is undefined), in two stages on wide rows.

    ``torch.topk`` over a whole row costs ~2.5 ns per score on CPU, five times a row maximum.
    So: the maximum of each group of :data:`GROUP` columns, the ``m`` groups with the largest
    maxima, then ``torch.topk`` over their columns (and the ragged tail). The values are exact:
    an item among the ``m`` largest lies in a group whose maximum is at least the ``m``-th
    largest score, and at most ``m`` groups rank above all others, so those groups hold them
    (ties may pick other columns of equal score; :func:`top_k` resolves ties by key).
    """
    n_rows, width = scores.shape
    n_groups = width // GROUP
    if n_groups < 4 * m:  # too narrow for the first stage to pay
        return torch.topk(scores, m, dim=1)
    body = scores[:, : n_groups * GROUP].unflatten(1, (n_groups, GROUP))  # (n_rows, n_groups, GROUP)
    groups = torch.topk(body.amax(dim=2), m, dim=1).indices  # max propagates NaN: such a group wins
    offsets = torch.arange(GROUP, device=scores.device)
    columns = (groups[:, :, None] * GROUP + offsets).flatten(1)  # (n_rows, m * GROUP)
    tail = torch.arange(n_groups * GROUP, width, device=scores.device).expand(n_rows, -1)
    columns = torch.cat([columns, tail], dim=1)
    values, picked = torch.topk(scores.gather(1, columns), m, dim=1)
    return values, columns.gather(1, picked)


def _ordered(values: Tensor, indices: Tensor) -> TopK:
    """Candidates ordered by score, then tie key; ``-inf`` slots become PAD."""
    by_key = torch.argsort(tie_keys(indices), dim=1)
    values, indices = values.gather(1, by_key), indices.gather(1, by_key)
    by_score = torch.sort(values, dim=1, descending=True, stable=True).indices
    values, indices = values.gather(1, by_score), indices.gather(1, by_score)
    indices = indices.masked_fill(torch.isneginf(values), PAD)
    return TopK(indices, values.float())


def merge_top_k(first: TopK, second: TopK, k: int) -> TopK:
    """The top ``k`` of two lists of the same rows over disjoint items (e.g. two chunks of the
    catalogue), under the tie rule: equal to :func:`top_k` over both items' scores at once."""
    values = torch.cat([first.scores, second.scores], dim=1)
    indices = torch.cat([first.items, second.items], dim=1)
    best = _ordered(values, indices)
    return TopK(best.items[:, :k], best.scores[:, :k])


def top_k_candidates(scores: Tensor, items: Tensor, k: int) -> TopK:
    """The top ``k`` of given candidate items per row, under the tie rule (what :func:`top_k`
    returns when every other item is at ``-inf``).

    Args:
        scores: ``(n_rows, n_candidates)`` float scores, excluded candidates at ``-inf``.
        items: ``(n_rows, n_candidates)`` int64 item indices, distinct within a row.
        k: list length (>= 1).

    Returns:
        :class:`TopK` with ``min(k, n_candidates)`` columns; PAD and ``-inf`` beyond a row's
        eligible candidates.

    Raises:
        ValueError: ``k < 1``.
        ScoringError: NaN or ``+inf`` among the scores.
    """
    if k < 1:
        raise ValueError(f"k={k}: expected k >= 1")
    check_finite(scores)
    best = _ordered(scores, items)
    return TopK(best.items[:, :k], best.scores[:, :k])


def _cut_ties(scores: Tensor, kth: Tensor, k: int, start: int) -> tuple[Tensor, Tensor]:
    """The ``k`` best items of rows whose ``k``-th score is tied with items outside the top-k:
    every item above the tied score, then the tied items with the smallest tie keys.

    Args:
        scores: ``(n_rows, width)`` the rows' scores (items ``start ..``).
        kth: ``(n_rows, 1)`` the score at position ``k``.
    """
    greater = scores > kth  # (n_rows, width)
    tied = scores == kth
    need = k - greater.sum(dim=1)  # (n_rows,) tied items to take, >= 1
    column_keys = tie_keys(torch.arange(start, start + scores.shape[1], device=scores.device))
    masked_keys = torch.where(tied, column_keys, torch.iinfo(torch.int64).max)
    n_pick = int(need.max())
    picked = torch.topk(masked_keys, n_pick, dim=1, largest=False).indices  # (n_rows, n_pick)
    take = torch.arange(n_pick, device=scores.device)[None, :] < need[:, None]
    chosen = greater | torch.zeros_like(greater).scatter_(1, picked, take)
    columns = torch.nonzero(chosen)[:, 1].view(len(scores), k)  # exactly k per row
    return scores.gather(1, columns), columns + start


class RowScorer(Protocol):
    """What :func:`rank_rows` needs of a model: encode some rows once, then score any chunk of
    the catalogue for them (recommenders provide one through ``row_scorer``)."""

    def encode(self, rows: np.ndarray) -> Tensor:
        """A per-row query (e.g. ``(len(rows), dim)`` hidden states) for rows ``0..n_rows-1``."""
        ...

    def score(self, query: Tensor, start: int, stop: int) -> Tensor:
        """``(n, stop - start)`` float32 scores of items ``start .. stop - 1``; PAD (item 0)
        at ``-inf``."""
        ...


def chunk_items(n_items: int, rows: int, budget_bytes: int | None = None) -> int:
    """Catalogue columns scored at once for ``rows`` rows: the whole catalogue when its float32
    scores fit ``budget_bytes`` (default: an eighth of available memory, at most 1 GiB), else
    the largest chunk that does (at least 1,024 items).

    Raises:
        ValueError: a budget below one row of 1,024 items.
    """
    if budget_bytes is None:
        available = available_memory_bytes() or 2**33
        budget_bytes = min(available // 8, 2**30)
    if budget_bytes < 4 * 1024:
        raise ValueError(f"score memory budget {budget_bytes} bytes: too small for one chunk "
                         "of 1,024 items")
    return int(min(n_items + 1, max(1024, budget_bytes // (4 * max(rows, 1)))))


def tile_shape(n_items: int, batch_size: int, budget_bytes: int | None = None) -> tuple[int, int]:
    """``(rows, columns)`` of the score tiles :func:`rank_rows` cuts by default: rows by the
    whole catalogue when at least 32 rows fit ``budget_bytes`` of float32 (default
    :data:`TILE_BYTES`; at most ``batch_size`` rows), else 32 rows by the columns that fit (at
    least 1,024)."""
    budget_bytes = TILE_BYTES if budget_bytes is None else budget_bytes
    rows = max(1, min(batch_size, max(32, budget_bytes // (4 * (n_items + 1)))))
    return rows, int(min(n_items + 1, max(1024, budget_bytes // (4 * rows))))


def rank_rows(scorer: RowScorer, n_rows: int, n_items: int, k: int,
              filters: Filters | None = None, *, lengths: np.ndarray | None = None,
              fallback: np.ndarray | None = None, fallback_scores: Tensor | None = None,
              batch_size: int = 1024, chunk: int | None = None) -> TopK:
    """Score, mask and cut ``n_rows`` lists, block by block, with one encoding per block.

    Rows are encoded in blocks of ``batch_size``; each block is scored in tiles of
    :func:`tile_shape` (rows) by ``chunk`` items (default: the tile's columns, within the
    memory budget of :func:`chunk_items`), each tile masked and cut at once, and a tile's lists
    over the chunks merged (:func:`merge_top_k`). So memory is bounded by one tile, and the
    lists equal those of one unchunked pass.

    Args:
        scorer: the model (see :class:`RowScorer`).
        n_rows: lists to rank.
        n_items: catalogue size.
        k: list length.
        filters: row-aligned filters (see :class:`~seqrec.filters.Filters`).
        lengths: ``(n_rows,)`` history lengths; rows are then scored in blocks of similar length
            (each block is padded only to its own longest history). The result keeps the
            caller's row order either way.
        fallback: ``(n_rows,)`` bool, rows ranked by ``fallback_scores`` instead of the model
            (e.g. unknown users with the popular fallback); the model never sees them.
        fallback_scores: ``(n_items + 1,)`` float32 scores for the fallback rows.
        batch_size: rows per model call.
        chunk: catalogue columns per scoring call (default: see above).

    Returns:
        :class:`TopK` of ``n_rows`` rows in the caller's order.

    Raises:
        ValueError: ``k < 1``, a chunk below 1, or ``fallback`` without ``fallback_scores``.
        ScoringError: the model gave NaN or ``+inf`` scores.
    """
    if k < 1:
        raise ValueError(f"k={k}: expected k >= 1")
    rows_per_tile, columns = tile_shape(n_items, batch_size)
    chunk = min(columns, chunk_items(n_items, rows_per_tile)) if chunk is None else chunk
    if chunk < 1:
        raise ValueError(f"chunk={chunk}: expected at least 1 item per scoring call")
    filters = filters or Filters()
    fallback = np.zeros(n_rows, dtype=bool) if fallback is None else np.asarray(fallback, bool)
    if fallback.any() and fallback_scores is None:
        raise ValueError("fallback rows need fallback_scores")
    model_rows = np.flatnonzero(~fallback)
    if lengths is not None:  # blocks of similar history length
        model_rows = model_rows[np.argsort(np.minimum(lengths[model_rows], 10_000), kind="stable")]
    # PAD alone is never listed: a chunk holding only PAD is not scored
    bounds = [(start, min(start + chunk, n_items + 1)) for start in range(0, n_items + 1, chunk)
              if min(start + chunk, n_items + 1) - start > int(start == 0)]
    parts: list[tuple[np.ndarray, TopK]] = []
    for first in range(0, len(model_rows), batch_size):
        block = model_rows[first : first + batch_size]
        query = scorer.encode(block)
        tiles = [slice(i, i + rows_per_tile) for i in range(0, len(block), rows_per_tile)]
        tile_filters = [filters.select(block[tile]) for tile in tiles]
        best: list[TopK | None] = [None] * len(tiles)
        for start, stop in bounds:  # chunks outermost: a scorer may prepare each chunk once
            for i, tile in enumerate(tiles):
                scores = apply_filters(scorer.score(query[tile], start, stop), tile_filters[i],
                                       start)
                part, kept = top_k(scores, k, start), best[i]
                best[i] = part if kept is None else merge_top_k(kept, part, k)
        for tile, lists in zip(tiles, best, strict=True):
            assert lists is not None
            parts.append((block[tile], lists))
    fallback_rows = np.flatnonzero(fallback)
    if len(fallback_rows):
        assert fallback_scores is not None
        scores = fallback_scores.reshape(1, -1).expand(len(fallback_rows), -1).clone()
        parts.append((fallback_rows, top_k(apply_filters(scores, filters.select(fallback_rows)), k)))
    return in_row_order(parts, n_rows, min(k, n_items))


def in_row_order(parts: list[tuple[np.ndarray, TopK]], n_rows: int, width: int) -> TopK:
    """One :class:`TopK` of ``n_rows`` rows of ``width`` columns from ``(rows, lists)`` parts."""
    items = torch.zeros(n_rows, width, dtype=torch.int64)
    scores = torch.full((n_rows, width), float("-inf"))
    for rows, best in parts:
        index = torch.from_numpy(rows)
        items[index], scores[index] = best.items, best.scores
    return TopK(items, scores)
