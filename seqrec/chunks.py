"""Held-out ranks and top-K lists of one block of users, scored against the catalogue in chunks,
so evaluation memory is bounded by ``(rows, chunk)`` instead of ``(rows, n_items + 1)``.

The ranks follow the tie rule of :mod:`seqrec.rank` exactly as :func:`seqrec.metrics.target_ranks`
computes them on a whole score matrix: ``rank_t = 1 + #{j : s_j > s_t} + #{j : s_j == s_t and
tie_key(j) < tie_key(t)}``. A target's score must be the very number its chunk holds (a separate
dot product may round differently), so a block is scored twice: a first pass reads the targets'
scores (and builds the lists), a second counts. Used only when the catalogue does not fit the
memory budget in one pass.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from torch import Tensor

from seqrec.data.sequences import Sequences
from seqrec.errors import ScoringError
from seqrec.metrics import NOT_RETRIEVED
from seqrec.rank import TopK, merge_top_k, tie_keys, top_k

ScoreChunk = Callable[[int, int], Tensor]
"""``(start, stop) -> (rows, stop - start)`` masked scores of items ``start .. stop - 1``."""


def chunked_ranks(score_chunk: ScoreChunk, targets: Sequences, n_items: int, chunk: int,
                  list_k: int | None) -> tuple[np.ndarray, TopK | None]:
    """Ranks of ``targets`` (distinct per row) and, with ``list_k``, the top-``list_k`` lists.

    Args:
        score_chunk: masked scores of this block's rows for a chunk of items.
        targets: the block's target rows, item indices in ``1..n_items``, no duplicates in a row.
        n_items: catalogue size.
        chunk: items per call.
        list_k: list length for beyond-accuracy metrics, or None.

    Returns:
        ``(ranks, lists)``: ``(len(targets.items),)`` int64 ranks aligned with
        ``targets.items`` (:data:`~seqrec.metrics.NOT_RETRIEVED` for masked targets), and the
        lists as :class:`~seqrec.rank.TopK` (None without ``list_k``).

    Raises:
        ScoringError: NaN scores.
    """
    row_of = torch.from_numpy(np.repeat(np.arange(targets.n_sequences), targets.lengths))
    items = torch.from_numpy(targets.items.astype(np.int64))
    target_scores = torch.empty(len(items))
    best: TopK | None = None
    bounds = [(start, min(start + chunk, n_items + 1)) for start in range(0, n_items + 1, chunk)]
    for start, stop in bounds:  # pass 1: the targets' own scores, and the lists
        scores = score_chunk(start, stop)
        if bool(torch.isnan(scores).any()):
            raise ScoringError("scores contain NaN: the model's weights are broken")
        inside = (items >= start) & (items < stop)
        target_scores[inside] = scores[row_of[inside], items[inside] - start]
        if list_k is not None and stop - start > int(start == 0):
            part = top_k(scores, list_k, start)
            best = part if best is None else merge_top_k(best, part, list_k)
    above = torch.zeros(len(items), dtype=torch.int64)
    before = torch.zeros(len(items), dtype=torch.int64)
    target_keys = tie_keys(items)[:, None]
    threshold = target_scores[:, None]
    for start, stop in bounds:  # pass 2: who comes first
        scores = score_chunk(start, stop)[row_of]  # (n_targets, stop - start)
        above += (scores > threshold).sum(dim=1)
        keys = tie_keys(torch.arange(start, stop))[None, :]
        before += ((scores == threshold) & (keys < target_keys)).sum(dim=1)
    ranks = (1 + above + before).numpy()
    ranks[torch.isneginf(target_scores).numpy()] = NOT_RETRIEVED
    return ranks, best
