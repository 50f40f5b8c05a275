r"""What the sequence recommender's scores become: next-item log-probabilities, then calibrated.

A recommender (:class:`seqrec.SequentialRecommender`, or the popular baseline) scores every item
for a history: ``model.encode_histories(items, offsets, rows)`` then ``model.score_items(hidden)``
give ``(n_rows, n_items + 1)`` logits (PAD at ``-inf``). :func:`next_item_log_probs` turns them
into a probability **of being the user's next item**, with one of two normalisations:

* ``"catalogue"`` (default): ``log softmax`` over the whole catalogue,
  ``log P(next = i | history)``. An item's value does not depend on what else is eligible, so a
  filter never changes a kept item's score, and values are comparable across users (raw logits
  are not: softmax is shift-invariant, and each user's logits carry their own offset).
* ``"eligible"``: ``log softmax`` over the eligible items only, ``log P(next = i | history, next
  is eligible)``; it sums to 1 over the eligible set and equals the catalogue value minus
  ``log sum_{j eligible} P(next = j)``, so it *rises* for every kept item as others are filtered.

Neither is the probability that a user answers (accepts) an item *when shown*: that is what a
calibrator fitted on logged impressions maps the log-probability to
(:func:`fit_model_calibrator`, fitted on a held-out **time window**: impressions later than the
model's training data, reported on the latest of them). :func:`seqrec.value.value_rank.rank_by_value`
chains filter -> score -> calibrate -> order.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd
import torch

from seqrec.value.calibration import CalibrationReport, Holdout, calibrate
from seqrec.value.calibrators import CalibrationMethod

logger = logging.getLogger(__name__)

Normalisation = Literal["catalogue", "eligible"]
NORMALISATIONS = ("catalogue", "eligible")


def next_item_log_probs(
    model: Any,
    items: np.ndarray,
    offsets: np.ndarray,
    rows: np.ndarray,
    normalise: Normalisation = "catalogue",
    eligible: np.ndarray | None = None,
) -> np.ndarray:
    """``(len(rows), n_items + 1) float64`` next-item log-probabilities of CSR histories ``rows``.

    Args:
        model: a fitted recommender (``encode_histories`` / ``score_items``).
        items, offsets: CSR histories of item *indices* (1..n_items).
        rows: ``(n_rows,)`` rows to score.
        normalise: "catalogue" or "eligible" (module docstring).
        eligible: ``(n_items + 1,) bool`` columns of eligible items; needed for "eligible".

    Returns:
        Log-probabilities; PAD (column 0) ``-inf``, and ineligible columns ``-inf`` for "eligible".

    Raises:
        ValueError: naming ``normalise`` or ``eligible`` when unknown, missing, of the wrong
            length or empty.
    """
    if normalise not in NORMALISATIONS:
        raise ValueError(f"normalise must be one of {NORMALISATIONS}; got {normalise!r}")
    hidden = model.encode_histories(items, offsets, np.asarray(rows, dtype=np.int64))
    scores = model.score_items(hidden).double()  # (n_rows, n_items + 1), PAD -inf
    if normalise == "eligible":
        if eligible is None or np.shape(eligible) != (scores.shape[1],):
            raise ValueError(f"eligible must be a ({scores.shape[1]},) bool column mask for "
                             f"normalise='eligible'; got {None if eligible is None else np.shape(eligible)}")
        if not np.any(eligible[1:]):
            raise ValueError("eligible must keep at least one item")
        scores[:, ~torch.from_numpy(np.asarray(eligible, dtype=bool))] = float("-inf")
    return (scores - torch.logsumexp(scores, dim=1, keepdim=True)).numpy()


def history_csr(model: Any, histories: Sequence[Sequence[Any]]) -> tuple[np.ndarray, np.ndarray]:
    """CSR ``(items, offsets)`` int64 of external-id histories (oldest first); unknown ids are
    dropped with one warning that counts them."""
    indexed = [model.catalogue.to_index(list(h), unknown="pad") for h in histories]
    n_unknown = sum(int((idx < 0).sum()) for idx in indexed)
    if n_unknown:
        warnings.warn(f"histories: {n_unknown} unknown item ids dropped", stacklevel=3)
    known = [idx[idx >= 0] for idx in indexed]
    offsets = np.concatenate([[0], np.cumsum([len(k) for k in known])]).astype(np.int64)
    items = np.concatenate(known).astype(np.int64) if known else np.zeros(0, dtype=np.int64)
    return items, offsets


def histories_before(
    model: Any, interactions: pd.DataFrame, user_ids: np.ndarray, times: np.ndarray,
    max_length: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """CSR ``(items, offsets)``: for each (user, time), that user's interactions strictly earlier.

    Args:
        model: the recommender (its catalogue maps item ids; unknown items are dropped).
        interactions: ``user_id``, ``item_id``, ``timestamp`` rows.
        user_ids, times: ``(n,)`` one query per impression.
        max_length: keep only the latest ``max_length`` items of each history (default the
            model's ``config.max_seq_len`` when it has one).

    Raises:
        ValueError: on missing interaction columns.
    """
    missing = [c for c in ("user_id", "item_id", "timestamp") if c not in interactions.columns]
    if missing:
        raise ValueError(f"interactions is missing columns {missing}")
    if max_length is None:
        max_length = getattr(getattr(model, "config", None), "max_seq_len", None)
    item_index = model.catalogue.to_index(interactions["item_id"].tolist(), unknown="pad")
    events = interactions[item_index > 0]
    codes, _ = pd.factorize(pd.concat([events["user_id"], pd.Series(user_ids)], ignore_index=True))
    n_events = len(events)
    # Impressions sort before interactions at the same time (flag 0 < 1): "strictly earlier".
    user = codes
    time = np.concatenate([events["timestamp"].to_numpy(), np.asarray(times)])
    flag = np.concatenate([np.ones(n_events, dtype=np.int8), np.zeros(len(user_ids), dtype=np.int8)])
    order = np.lexsort((flag, time, user))
    is_event = flag[order] == 1
    events_before = np.cumsum(is_event) - is_event  # events earlier in the global order
    first_of_user = np.searchsorted(user[order], user[order], side="left")
    block_start = events_before[first_of_user]  # events of earlier users
    query = np.flatnonzero(~is_event)
    which = order[query] - n_events  # impression number of each query position
    start = np.empty(len(user_ids), dtype=np.int64)
    count = np.empty(len(user_ids), dtype=np.int64)
    start[which], count[which] = block_start[query], (events_before - block_start)[query]
    if max_length is not None:
        start, count = start + np.maximum(count - max_length, 0), np.minimum(count, max_length)
    sorted_items = item_index[item_index > 0][order[is_event]]  # events in (user, time) order
    offsets = np.concatenate([[0], np.cumsum(count)]).astype(np.int64)
    within = np.arange(offsets[-1]) - np.repeat(offsets[:-1], count)
    return sorted_items[np.repeat(start, count) + within].astype(np.int64), offsets


@dataclass(frozen=True)
class ModelScorer:
    """A :class:`~seqrec.value.calibration.Scorer` of impression rows: the log-probability that
    the shown item is the user's next item, given their interactions before the impression.

    Attributes:
        model: a fitted recommender.
        interactions: ``user_id``, ``item_id``, ``timestamp`` rows (the histories).
        normalise: "catalogue" or "eligible" (then over ``candidates``).
        candidates: item ids of the pool shown from (for "eligible").
        batch_size: impressions scored per model call.
    """

    model: Any
    interactions: pd.DataFrame
    normalise: Normalisation = "catalogue"
    candidates: Sequence[Any] | None = None
    batch_size: int = 512

    def __call__(self, rows: pd.DataFrame) -> np.ndarray:
        """``(len(rows),) float64`` log-probabilities of ``rows.item_id`` (rows need ``user_id``,
        ``item_id``, ``timestamp``).

        Raises:
            UnknownItemError: an impression's item is not in the model's catalogue.
        """
        targets = self.model.catalogue.to_index(rows["item_id"].tolist(), where="rows.item_id")
        items, offsets = histories_before(self.model, self.interactions,
                                          rows["user_id"].to_numpy(), rows["timestamp"].to_numpy())
        eligible = None
        if self.normalise == "eligible":
            eligible = np.zeros(len(self.model.catalogue) + 1, dtype=bool)
            pool = self.candidates if self.candidates is not None else self.model.catalogue.ids
            eligible[self.model.catalogue.to_index(list(pool), where="candidates")] = True
        out = np.empty(len(rows))
        for lo in range(0, len(rows), self.batch_size):
            block = np.arange(lo, min(lo + self.batch_size, len(rows)))
            log_p = next_item_log_probs(self.model, items, offsets, block, self.normalise, eligible)
            out[block] = log_p[np.arange(len(block)), targets[block]]
        return out


def fit_model_calibrator(
    model: Any,
    impressions: pd.DataFrame,
    interactions: pd.DataFrame,
    method: CalibrationMethod = "platt",
    holdout: Holdout = "time",
    test_fraction: float = 0.3,
    fit_fraction: float | None = None,
    normalise: Normalisation = "catalogue",
    candidates: Sequence[Any] | None = None,
) -> CalibrationReport:
    """Calibrate the recommender's next-item log-probability into P(answer | shown).

    Args:
        model: a fitted recommender, trained on interactions *before* the impressions.
        impressions: ``user_id``, ``item_id``, ``timestamp``, 0/1 ``answered`` rows.
        interactions: the histories (``user_id``, ``item_id``, ``timestamp``).
        method: calibrator ("platt" default: monotone in the log-probability, two parameters).
        holdout: "time" (default) fits on earlier impressions and reports on the latest.
        test_fraction, fit_fraction: as :func:`seqrec.value.calibration.calibrate`.
        normalise, candidates: as :class:`ModelScorer`.

    Returns:
        The :class:`~seqrec.value.calibration.CalibrationReport`; ``report.calibrator`` serves.

    Raises:
        ValueError: as :func:`~seqrec.value.calibration.calibrate`.
    """
    scorer = ModelScorer(model, interactions, normalise, candidates)
    return calibrate(impressions, scorer, method, test_fraction, holdout=holdout,
                     fit_fraction=fit_fraction)
