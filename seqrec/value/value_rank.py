"""Value-aware ranking from the sequence recommender: filter -> score -> calibrate -> order.

:func:`rank_by_value` is the whole path for one request (:func:`rank_columns_by_value` the same
on ids already mapped to item indices, as the HTTP service's ``POST /rank/value`` calls it):

1. **filter** — ``is_eligible`` (e.g. :func:`seqrec.value.eligibility.eligibility_mask`) over the
   candidates; ineligible items are never scored into the ranking nor returned;
2. **score** — the recommender's next-item log-probabilities of the candidates
   (:func:`seqrec.value.model_scores.next_item_log_probs`; "catalogue" or "eligible"
   normalisation, see that module for what each probability means);
3. **calibrate** — a calibrator fitted on impressions of a held-out time window
   (:func:`seqrec.value.model_scores.fit_model_calibrator`) maps them to ``p = P(answer | shown)``,
   clipped to ``[eps, 1 - eps]``;
4. **order** — by expected revenue under the cascade
   (:func:`seqrec.value.ranking.cascade_order`: the index order, or the exact capped DP when
   ``cap`` is given).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from seqrec.value._checks import (
    check_mask,
    check_nonnegative,
    check_probabilities,
    clip_probabilities,
)
from seqrec.value.calibrators import Calibrator
from seqrec.value.model_scores import Normalisation, history_csr, next_item_log_probs
from seqrec.value.ranking import cascade_keys, cascade_order, expected_revenue


@dataclass(frozen=True)
class ValueRanking:
    """Items to show, best first, and why.

    Attributes:
        item_ids: ``(k,)`` external ids in showing order (eligible only; ``k <= cap``).
        log_probs: ``(k,) float64`` the model's next-item log-probabilities (``normalise``).
        probabilities: ``(k,) float64`` calibrated P(answer | shown).
        prices: ``(k,) float64`` dollars.
        continuation: ``(k,) float64`` P(session continues after the item).
        keys: ``(k,) float64`` cascade keys ``r p / (1 - c)``.
        expected_revenue: dollars expected from showing ``item_ids`` in this order.
        normalise: "catalogue" or "eligible".
    """

    item_ids: np.ndarray
    log_probs: np.ndarray
    probabilities: np.ndarray
    prices: np.ndarray
    continuation: np.ndarray
    keys: np.ndarray
    expected_revenue: float
    normalise: str


def rank_by_value(
    model: Any,
    history: Sequence[Any],
    item_ids: Sequence[Any],
    prices: Sequence[float] | np.ndarray,
    continuation: Sequence[float] | np.ndarray,
    calibrator: Calibrator,
    *,
    cap: int | None = None,
    is_eligible: np.ndarray | None = None,
    normalise: Normalisation = "catalogue",
) -> ValueRanking:
    """Order candidates by expected revenue from the recommender's calibrated probabilities.

    Args:
        model: a fitted recommender (``catalogue``, ``encode_histories``, ``score_items``).
        history: the user's item ids, oldest first (unknown ids dropped with a warning).
        item_ids: ``(n,)`` candidate item ids (unique, known to the model).
        prices: ``(n,)`` dollars (>= 0).
        continuation: ``(n,)`` P(session continues after the item) in [0, 1].
        calibrator: maps log-probabilities to P(answer | shown), e.g.
            ``fit_model_calibrator(...).calibrator``.
        cap: most items the session shows (>= 1); exact capped order when given.
        is_eligible: ``(n,) bool`` over ``item_ids``; default all.
        normalise: "catalogue" (default) or "eligible".

    Returns:
        :class:`ValueRanking`.

    Raises:
        ValueError: naming the argument for negative prices, continuation outside [0, 1], a mask
            or arrays of the wrong length, duplicate candidates, ``cap < 1``, or no eligible item.
        UnknownItemError: a candidate unknown to the model.
    """
    ids = np.asarray(list(item_ids), dtype=object)
    columns = model.catalogue.to_index(ids.tolist(), where="item_ids")
    items, _ = history_csr(model, [list(history)])
    return rank_columns_by_value(model, items, columns, prices, continuation, calibrator,
                                 cap=cap, is_eligible=is_eligible, normalise=normalise,
                                 item_ids=ids)


def rank_columns_by_value(
    model: Any,
    history: np.ndarray,
    columns: np.ndarray,
    prices: Sequence[float] | np.ndarray,
    continuation: Sequence[float] | np.ndarray,
    calibrator: Calibrator,
    *,
    cap: int | None = None,
    is_eligible: np.ndarray | None = None,
    normalise: Normalisation = "catalogue",
    item_ids: np.ndarray | None = None,
) -> ValueRanking:
    """:func:`rank_by_value` on ids already mapped to item indices (the HTTP service's path).

    Args:
        model: a fitted recommender.
        history: ``(h,) int64`` item indices (1..n_items) the model reads, oldest first. Read
            without event times, as :func:`~seqrec.value.model_scores.fit_model_calibrator`
            scores the impressions its calibrator is fitted on.
        columns: ``(n,) int64`` candidate item indices (unique, 1..n_items).
        prices, continuation, calibrator, cap, is_eligible, normalise: as :func:`rank_by_value`.
        item_ids: ``(n,)`` labels of the candidates in the result (default: the model's external
            ids of ``columns``).

    Returns:
        :class:`ValueRanking`.

    Raises:
        ValueError: as :func:`rank_by_value`, or ``columns`` outside 1..n_items.
    """
    columns = np.asarray(columns, dtype=np.int64)
    n_items = len(model.catalogue)
    if columns.ndim != 1 or (len(columns) and (columns.min() < 1 or columns.max() > n_items)):
        raise ValueError(f"columns must be (n,) item indices in 1..{n_items}; got "
                         f"{columns.tolist()[:5]}")
    ids = model.catalogue.to_external(columns) if item_ids is None else np.asarray(item_ids)
    r = check_nonnegative("prices", prices)
    c = check_probabilities("continuation", continuation)
    if r.shape != columns.shape or c.shape != columns.shape:
        raise ValueError(f"prices and continuation must have shape {columns.shape} (one per "
                         f"item_ids); got {r.shape}, {c.shape}")
    mask = np.ones(len(columns), dtype=bool) if is_eligible is None else check_mask(
        "is_eligible", is_eligible, len(columns))
    if not mask.any():
        raise ValueError("is_eligible must keep at least one item")
    if len(np.unique(columns)) != len(columns):
        raise ValueError("item_ids must be unique")
    items = np.asarray(history, dtype=np.int64)
    offsets = np.array([0, len(items)], dtype=np.int64)
    eligible = np.zeros(n_items + 1, dtype=bool)
    eligible[columns[mask]] = True
    log_p = next_item_log_probs(model, items, offsets, np.zeros(1, dtype=np.int64), normalise,
                                eligible)[0, columns]
    p = np.zeros(len(columns))
    p[mask] = clip_probabilities(calibrator.predict(log_p[mask]))
    order = cascade_order(p, r, c, cap=cap, is_eligible=mask)
    return ValueRanking(
        item_ids=ids[order],
        log_probs=log_p[order],
        probabilities=p[order],
        prices=r[order],
        continuation=c[order],
        keys=cascade_keys(p, r, c)[order],
        expected_revenue=expected_revenue(p, r, c, order),
        normalise=normalise,
    )
