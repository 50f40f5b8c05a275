"""Evaluate any recommender on a held-out part: full-catalogue ranking, seen items filtered.

The recommender scores blocks of histories; each block is masked by :mod:`seqrec.rank`'s
filters, ranked under its tie rule and dropped, so memory stays at one block of
``(block_rows, n_items + 1)`` scores, and the metrics are those of the lists the recommender
would serve for the same histories.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Protocol

import numpy as np
import torch

from seqrec.data.sequences import HeldOut, Sequences
from seqrec.metrics import MetricReport, evaluate_score_blocks, item_popularity
from seqrec.rank import Filters, ItemSets, apply_filters


class Scorer(Protocol):
    """What :func:`evaluate` needs of a recommender."""

    n_items: int
    histories: Sequences

    def score_block(self, items: np.ndarray, offsets: np.ndarray, rows: np.ndarray) -> torch.Tensor:
        """``(len(rows), n_items + 1)`` float32 full-catalogue scores of CSR histories ``rows``."""
        ...


def evaluate(model: Scorer, heldout: HeldOut, *, k: int | Sequence[int] = 10,
             filter_viewed: bool = True, metrics: Sequence[str] | None = None,
             batch_size: int = 1024, train: Sequences | None = None) -> MetricReport:
    """Metrics of ``model`` on ``heldout`` (every catalogue item ranked; never sampled).

    Args:
        model: a fitted recommender (``score_block``, ``n_items``, ``histories``).
        heldout: histories (model inputs) and targets, row-aligned.
        k: cutoff(s).
        filter_viewed: mask each user's history items before ranking (use with splits that
            dropped already-seen targets, as the eSASRec paper's protocol does).
        metrics: metric names (default: all, with ARP and novelty).
        batch_size: users scored per block.
        train: sequences to count item popularity on for ARP and novelty (default: the
            model's histories), e.g. the train part of the split.

    Returns:
        :class:`~seqrec.metrics.MetricReport`, equal to the metrics of the lists
        ``recommend_for_histories`` returns for the same histories and filters.

    Raises:
        ValueError: as :func:`seqrec.metrics.evaluate_score_blocks`.
        ScoringError: the model gives NaN or ``+inf`` scores.
    """
    # users in order of history length, so each scored block is padded only to its own longest
    # history (metrics are per user: the order does not change them)
    order = np.argsort(heldout.histories.lengths, kind="stable")
    h = heldout.histories.select(order)
    targets = heldout.targets.select(order)
    popularity = None
    if metrics is None or {"arp", "novelty"} & set(metrics):
        popularity = item_popularity(model.histories if train is None else train, model.n_items)
    seen = ItemSets(h.items, h.offsets) if filter_viewed else None

    def blocks() -> Iterator[torch.Tensor]:
        for start in range(0, h.n_sequences, batch_size):
            rows = np.arange(start, min(start + batch_size, h.n_sequences))
            scores = model.score_block(h.items, h.offsets, rows)
            yield apply_filters(scores, Filters(seen=None if seen is None else seen.select(rows)))

    return evaluate_score_blocks(blocks(), targets, n_items=model.n_items, k=k,
                                 item_popularity=popularity, metrics=metrics)
