"""Assembling a :class:`~seqrec.metrics.MetricReport` from the ranks of held-out items and the
top-K lists: per-user accuracy columns, beyond-accuracy metrics, and debiased means."""

from __future__ import annotations

import numpy as np
import pandas as pd

from seqrec.data.debias import Debiased
from seqrec.data.sequences import Sequences
from seqrec.metrics import ItemPopularity, MetricReport, accuracy_from_ranks, truncate_lists


def build_report(
    ranks: np.ndarray,
    targets: Sequences,
    lists: Sequences | None,
    ks: list[int],
    names: list[str],
    n_items: int,
    popularity: ItemPopularity | None,
    debiased: Debiased | None = None,
) -> MetricReport:
    """The :class:`~seqrec.metrics.MetricReport` of ranks and lists.

    Args:
        ranks: ``(len(targets.items),)`` int64 ranks of the distinct targets (CSR order).
        targets: the targets, one row per evaluated user.
        lists: the top-K lists (for coverage, ARP, novelty), or None.
        ks: cutoffs; names: metric names (see :mod:`seqrec.metrics`).
        n_items: catalogue size.
        popularity: for ARP and novelty.
        debiased: targets kept by :func:`seqrec.data.debias.debias_targets`: adds the means
            ``dndcg@K``, ``drecall@K`` and ``dhit_rate@K`` over the users who keep a target.
    """
    columns: dict[str, np.ndarray] = {"n_targets": targets.lengths}
    means: dict[str, float] = {}
    for k in ks:
        accuracy = accuracy_from_ranks(ranks, targets.lengths, k)
        for name in names:
            if name in accuracy:
                columns[f"{name}@{k}"] = accuracy[name]
        if lists is None:
            continue
        top = truncate_lists(lists, k)
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
        if debiased is not None:
            ordered.update(_debiased_means(ranks, targets, debiased, k))
    return MetricReport(per_user, ordered)


def _debiased_means(ranks: np.ndarray, targets: Sequences, debiased: Debiased,
                    k: int) -> dict[str, float]:
    row_of = np.repeat(np.arange(targets.n_sequences), targets.lengths)
    lengths = np.bincount(row_of[debiased.keep], minlength=targets.n_sequences)
    accuracy = accuracy_from_ranks(ranks[debiased.keep], lengths[lengths > 0], k)
    return {f"d{name}@{k}": float(np.mean(accuracy[name])) if len(accuracy[name]) else float("nan")
            for name in ("ndcg", "recall", "hit_rate")}


def _row_mean(rows: np.ndarray, values: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    total = np.bincount(rows, weights=values, minlength=len(lengths))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(lengths > 0, total / lengths, np.nan)


def joined_lists(lists: list[Sequences]) -> Sequences:
    """Consecutive blocks' lists as one :class:`Sequences`."""
    lengths = np.concatenate([part.lengths for part in lists])
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    return Sequences(np.concatenate([part.items for part in lists]), offsets,
                     np.arange(len(lengths)), np.concatenate([part.timestamps for part in lists]))
