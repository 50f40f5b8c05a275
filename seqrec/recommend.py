"""Scores → masks (seen, include, exclude) → top-K. Filters are applied before ranking, never after.

Every excluded item gets a score of ``-inf`` before :func:`torch.topk`, so one call returns exactly
``min(k, number of eligible items)`` items per row, never PAD or MASK, never a filtered item, and
never needs a second model call to "refill" a list.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

PAD = 0


@dataclass(frozen=True)
class TopK:
    """Top-K lists for a block of rows.

    Attributes:
        items: ``(n_rows, k)`` int64 item indices, best first; ``PAD`` (0) where a row has fewer
            than ``k`` eligible items (such slots also have score ``-inf``).
        scores: ``(n_rows, k)`` float32 scores of those items.
    """

    items: Tensor
    scores: Tensor


def mask_seen(scores: Tensor, items: np.ndarray, offsets: np.ndarray, rows: np.ndarray) -> Tensor:
    """Set the score of every item in each row's history to ``-inf`` (in place).

    Args:
        scores: ``(len(rows), n_items + 1)`` float.
        items, offsets: CSR histories.
        rows: ``(len(rows),)`` which history belongs to each score row.

    Returns:
        ``scores`` (modified).
    """
    starts, ends = offsets[rows], offsets[rows + 1]
    lengths = ends - starts
    row_ids = np.repeat(np.arange(len(rows)), lengths)
    flat = np.repeat(starts - np.concatenate([[0], np.cumsum(lengths)[:-1]]), lengths) + np.arange(lengths.sum())
    scores[torch.from_numpy(row_ids), torch.from_numpy(items[flat])] = float("-inf")
    return scores


def item_mask(n_items: int, indices: np.ndarray) -> Tensor:
    """``(n_items + 1,)`` bool, True at ``indices``."""
    mask = torch.zeros(n_items + 1, dtype=torch.bool)
    mask[torch.from_numpy(np.asarray(indices, dtype=np.int64))] = True
    return mask


def apply_filters(scores: Tensor, include: Tensor | None = None, exclude: Tensor | None = None) -> Tensor:
    """Whitelist / blacklist masks on scores (in place); PAD always excluded.

    Args:
        scores: ``(n_rows, n_items + 1)`` float.
        include: ``(n_items + 1,)`` bool; only True items stay eligible. None = all items.
        exclude: ``(n_items + 1,)`` bool; True items are removed.
    """
    if include is not None:
        scores.masked_fill_(~include.to(scores.device), float("-inf"))
    if exclude is not None:
        scores.masked_fill_(exclude.to(scores.device), float("-inf"))
    scores[:, PAD] = float("-inf")
    return scores


def top_k(scores: Tensor, k: int) -> TopK:
    """Top-``k`` items per row after masking.

    Ties are broken by :func:`torch.topk` (implementation-defined order among equal scores);
    metrics use their own pessimistic tie rule (see :mod:`seqrec.metrics`).

    Args:
        scores: ``(n_rows, n_items + 1)`` float with excluded items at ``-inf``.
        k: list length requested (>= 1).

    Returns:
        :class:`TopK` with ``min(k, n_items)`` columns; slots beyond a row's eligible items hold
        PAD and ``-inf``.

    Raises:
        ValueError: ``k < 1``.
    """
    if k < 1:
        raise ValueError(f"k={k}: expected k >= 1")
    k = min(k, scores.shape[1] - 1)
    values, indices = torch.topk(scores, k, dim=1)
    indices = indices.masked_fill(torch.isneginf(values), PAD)
    return TopK(indices, values)
