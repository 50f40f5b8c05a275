"""Evaluate any recommender on a held-out part: full-catalogue ranking, seen items filtered.

The recommender scores blocks of histories; each block is masked (seen items), ranked and
dropped, so memory stays at one block of ``(block_rows, n_items + 1)`` scores.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import torch

from seqrec.data.sequences import HeldOut
from seqrec.metrics import MetricReport, evaluate_score_blocks, item_popularity
from seqrec.recommend import mask_seen


def evaluate(model: Any, heldout: HeldOut, *, k: int | Sequence[int] = 10,
             filter_viewed: bool = True, metrics: Sequence[str] | None = None,
             batch_size: int = 1024) -> MetricReport:
    """Metrics of ``model`` on ``heldout`` (every catalogue item ranked; never sampled).

    Args:
        model: a fitted recommender with ``score_block``, ``n_items`` and ``histories``
            (training sequences, for ARP / novelty popularity).
        heldout: histories (model inputs) and targets, row-aligned.
        k: cutoff(s).
        filter_viewed: mask each user's history items before ranking (use with splits that
            dropped already-seen targets, as the eSASRec paper's protocol does).
        metrics: metric names (default: all, with ARP and novelty).
        batch_size: users scored per block.

    Returns:
        :class:`~seqrec.metrics.MetricReport`.

    Raises:
        ValueError: as :func:`seqrec.metrics.evaluate_score_blocks`.
    """
    # users in order of history length, so each scored block is padded only to its own longest
    # history (metrics are per user: the order does not change them)
    order = np.argsort(heldout.histories.lengths, kind="stable")
    h = heldout.histories.select(order)
    targets = heldout.targets.select(order)
    popularity = None
    if metrics is None or {"arp", "novelty"} & set(metrics):
        popularity = item_popularity(model.histories, model.n_items)

    def blocks() -> Iterator[torch.Tensor]:
        for start in range(0, h.n_sequences, batch_size):
            rows = np.arange(start, min(start + batch_size, h.n_sequences))
            scores = model.score_block(h.items, h.offsets, rows)
            if filter_viewed:
                mask_seen(scores, h.items, h.offsets, rows)
            yield scores

    return evaluate_score_blocks(blocks(), targets, n_items=model.n_items, k=k,
                                 item_popularity=popularity, metrics=metrics)
