"""Item-to-item neighbours: cosine similarity of item embeddings, ranked by the one ranking path
(:mod:`seqrec.rank`), never the query item itself."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from seqrec.filters import Filters, ItemSets
from seqrec.rank import TopK, rank_rows


@dataclass(frozen=True)
class CosineScorer:
    """Query items against the catalogue by cosine similarity (a :class:`~seqrec.rank.RowScorer`).

    Attributes:
        unit: ``(n_items + 1, dim)`` float32 L2-normalised embeddings (row 0 = PAD).
        query: ``(n_rows,)`` int64 item indices.
    """

    unit: Tensor
    query: Tensor

    def encode(self, rows: np.ndarray) -> Tensor:
        return self.unit[self.query[torch.from_numpy(rows)]]  # (len(rows), dim)

    def score(self, query: Tensor, start: int, stop: int) -> Tensor:
        scores = query @ self.unit[start:stop].T  # (n, stop - start)
        if start == 0:
            scores[:, 0] = float("-inf")
        return scores


def cosine_neighbours(unit: Tensor, item_indices: np.ndarray, k: int) -> TopK:
    """The ``k`` nearest items of each query item by cosine similarity.

    Args:
        unit: ``(n_items + 1, dim)`` L2-normalised item embeddings.
        item_indices: ``(n,)`` query item indices in ``1..n_items``.
        k: neighbours per item.

    Returns:
        ``(n, min(k, n_items))`` :class:`~seqrec.rank.TopK`; an item is never its own neighbour.
    """
    query = torch.from_numpy(np.asarray(item_indices, dtype=np.int64))
    itself = ItemSets.from_lists([[int(i)] for i in item_indices])
    return rank_rows(CosineScorer(unit, query), len(query), unit.shape[0] - 1, k,
                     Filters(seen=itself))
