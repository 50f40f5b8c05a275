"""Debiased held-out targets: interactions with over-popular items down-sampled, so that a
metric computed on what is kept (dHR@K, dNDCG@K) cannot be won by recommending the few items
most test users interacted with (the eSASRec paper's time-split tables, after RecTools'
``DebiasConfig``; the outlier border is Tukey's fence, Q3 + 1.5·IQR).

Popularity here is the number of test users holding the item as a target. Items above the
border keep a random (seeded) subset of their targets of size ``border``; everything else is
kept. Users left without a target leave the debiased metrics' means.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from seqrec.data.sequences import Sequences


@dataclass(frozen=True)
class Debiased:
    """Which held-out targets a debiased metric keeps.

    Attributes:
        keep: ``(len(targets.items),)`` bool, aligned with ``targets.items``.
        border: the largest number of targets an item keeps, ``int(Q3 + iqr_coef · IQR)`` of the
            per-item target counts.
        n_items_capped: items above the border (down-sampled).
        n_targets_dropped: targets removed.
    """

    keep: np.ndarray
    border: int
    n_items_capped: int
    n_targets_dropped: int


def debias_targets(targets: Sequences, iqr_coef: float = 1.5, seed: int = 0) -> Debiased:
    """Down-sample the targets of over-popular items (see the module docstring).

    Args:
        targets: held-out items per user row; an item appears at most once per row (as after
            the deduplication every evaluation does).
        iqr_coef: the fence is Q3 + iqr_coef · IQR of the per-item counts (quartiles with linear
            interpolation, as pandas' ``quantile``); 1.5 in the paper's tables, 0 caps at Q3.
        seed: the random subset of a capped item's targets.

    Returns:
        :class:`Debiased`.

    Raises:
        ValueError: a negative ``iqr_coef`` or no targets.
    """
    if iqr_coef < 0:
        raise ValueError(f"iqr_coef={iqr_coef}: expected >= 0")
    items = targets.items
    if not len(items):
        raise ValueError("debias_targets: no targets")
    uniques, inverse, counts = np.unique(items, return_inverse=True, return_counts=True)
    q1, q3 = np.percentile(counts, [25, 75])
    border = int(q3 + iqr_coef * (q3 - q1))
    capped = counts > border
    keep = np.ones(len(items), dtype=bool)
    if capped.any():
        rng = np.random.default_rng(seed)
        at_capped = np.flatnonzero(capped[inverse])
        # a random order within each capped item, then the first `border` of each are kept
        order = at_capped[np.lexsort((rng.random(len(at_capped)), inverse[at_capped]))]
        groups = inverse[order]
        first = np.searchsorted(groups, groups, side="left")
        keep[order[np.arange(len(order)) - first >= border]] = False
    return Debiased(keep, border, int(capped.sum()), int((~keep).sum()))
