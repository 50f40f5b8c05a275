"""Serve from the eligible items only: one model call and one back-end call per request.

The failure this module prevents: a back end asked the model for one item, applied eligibility
rules afterwards, and on rejection asked the model again with the same input — getting the same
item back until the request timed out. Here

1. eligibility is the vectorised mask of :mod:`seqrec.value.eligibility`, computed before any
   scoring;
2. the scorer sees only eligible items and is called once per request;
3. :func:`rank_eligible` returns the whole ranked eligible list (:class:`Ranked`) or an explicit
   :class:`NothingEligible` record with the reasons — never an ineligible item, never ``None``.
   It ranks through :mod:`seqrec.rank` (ineligible items at ``-inf``, then
   :func:`seqrec.rank.top_k`), so ties follow the library's one tie rule;
4. the back end's own rules are evaluated **in bulk**: :func:`serve_first_accepted` sends the
   ranked eligible list in one ``backend_check`` call, serves the best accepted item and records
   every rejection in the state (:meth:`~seqrec.value.eligibility.EligibilityState.with_rejected`),
   so the same input cannot produce a rejected item again.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType

import numpy as np
import torch

from seqrec.data.catalogue import PAD
from seqrec.errors import ScoringError
from seqrec.filters import Filters, apply_filters, item_mask
from seqrec.rank import top_k
from seqrec.value.eligibility import (
    REASONS,
    EligibilityState,
    ItemId,
    eligibility_mask,
    ineligibility_reasons,
)

logger = logging.getLogger(__name__)

ScoreFn = Callable[[np.ndarray], np.ndarray]
"""Scores ``(n_eligible,) float64`` for item ids ``(n_eligible,)``; larger is better."""
BulkCheck = Callable[[np.ndarray], np.ndarray]
"""``backend_check(item_ids (k,)) -> (k,) bool``: True where the back end accepts the item."""


@dataclass(frozen=True)
class Ranked:
    """Eligible items, best first: ``item_ids (k,)`` and their ``scores (k,) float64``; k >= 1."""

    item_ids: np.ndarray
    scores: np.ndarray

    @property
    def best(self) -> ItemId:
        """The top eligible item."""
        return self.item_ids[0]


@dataclass(frozen=True)
class NothingEligible:
    """Explicit "no item can be shown" result.

    Attributes:
        reasons: reason -> number of catalogue items excluded for it (see
            :data:`~seqrec.value.eligibility.REASONS`).
    """

    reasons: Mapping[str, int]


@dataclass(frozen=True)
class Served:
    """An item the back end accepted, plus the state after the rejections of this request."""

    item_id: ItemId
    state: EligibilityState
    n_rejected: int


def nothing_eligible(state: EligibilityState) -> NothingEligible:
    """The :class:`NothingEligible` record of ``state`` (reason counts)."""
    reasons = ineligibility_reasons(state)
    counts = {r: int(np.sum(reasons == r)) for r in REASONS if np.any(reasons == r)}
    return NothingEligible(MappingProxyType(counts))


def _name(fn: Callable) -> str:
    return getattr(fn, "__qualname__", None) or type(fn).__qualname__


def rank_eligible(
    state: EligibilityState, score: ScoreFn, k: int | None = None
) -> Ranked | NothingEligible:
    """Mask, then score only eligible items (one call to ``score``), then cut with
    :func:`seqrec.rank.top_k`, the library's one ranking path.

    The scores go into one ``(1, n_items + 1) float64`` row over catalogue positions (catalogue
    position ``i`` at column ``i + 1``; column 0 is PAD); the eligibility mask sets every
    ineligible item (and PAD) to ``-inf`` through :func:`seqrec.filters.apply_filters` *before*
    ranking. Kept float64, so distinct scores are never merged into ties by a float32 cast.

    Args:
        state: what is eligible.
        score: scores ``(n_eligible,)`` for an array of eligible item ids ``(n_eligible,)``
            (called at most once; never with an ineligible item, never with an empty array).
        k: keep the top ``k`` (default: the whole eligible list).

    Returns:
        :class:`Ranked` ordered by :mod:`seqrec.rank`'s tie rule — higher score first, equal
        scores by the hashed :func:`seqrec.rank.tie_keys` of their column ``i + 1``, **not** by
        catalogue order — or :class:`NothingEligible` when no item is eligible.

    Raises:
        ValueError: if ``k < 1`` or ``score`` returns the wrong shape.
        ScoringError: (a ``ValueError``) if ``score`` returns NaN or infinite scores; the message
            names the scorer.
    """
    if k is not None and k < 1:
        raise ValueError(f"k must be >= 1; got {k!r}")
    positions = np.flatnonzero(eligibility_mask(state))  # catalogue positions of eligible items
    if len(positions) == 0:
        return nothing_eligible(state)
    eligible = state.item_ids[positions]
    scores = np.asarray(score(eligible), dtype=np.float64)
    if scores.shape != eligible.shape:
        raise ValueError(
            f"score {_name(score)!r} returned shape {scores.shape}; expected {eligible.shape}"
        )
    bad = ~np.isfinite(scores)
    if bad.any():  # -inf would silently mean "ineligible" to top_k; NaN / +inf a broken scorer
        first = int(np.flatnonzero(bad)[0])
        raise ScoringError(
            f"score {_name(score)!r} must return finite scores; got "
            f"{float(scores[first])!r} for item {eligible.tolist()[first]!r}"
        )
    n_items = len(state.item_ids)
    row = torch.zeros(1, n_items + 1, dtype=torch.float64)  # (1, n_items + 1), column 0 = PAD
    row[0, torch.from_numpy(positions + 1)] = torch.from_numpy(scores)
    apply_filters(row, Filters(include=item_mask(n_items, positions + 1)))
    best = top_k(row, len(positions) if k is None else k)
    picked = best.items[0][best.items[0] != PAD].numpy()  # (min(k, n_eligible),) columns
    return Ranked(state.item_ids[picked - 1], row[0, picked].numpy())


def serve_first_accepted(
    state: EligibilityState, score: ScoreFn, backend_check: BulkCheck
) -> Served | NothingEligible:
    """Serve the best eligible item the back end accepts: one model call, one back-end call.

    Args:
        state: what is eligible.
        score: as in :func:`rank_eligible` (called once).
        backend_check: the back end's rules over the whole ranked eligible list at once
            (:data:`BulkCheck`), called once.

    Returns:
        :class:`Served` (best accepted item; every rejected item of the list is excluded in the
        returned state) or :class:`NothingEligible` when nothing was eligible or accepted.

    Raises:
        ValueError: as :func:`rank_eligible`, or naming ``backend_check`` when it does not return
            one boolean per item.
    """
    ranked = rank_eligible(state, score)
    if isinstance(ranked, NothingEligible):
        return ranked
    accepted = np.asarray(backend_check(ranked.item_ids))
    if accepted.dtype != np.bool_ or accepted.shape != ranked.item_ids.shape:
        raise ValueError(
            f"backend_check {_name(backend_check)!r} must return {ranked.item_ids.shape} booleans; "
            f"got dtype {accepted.dtype}, shape {accepted.shape}"
        )
    after = state.with_rejected(ranked.item_ids[~accepted].tolist())
    if not accepted.any():
        logger.info("back end rejected all %d eligible items", len(accepted))
        return nothing_eligible(after)
    return Served(ranked.item_ids[int(np.argmax(accepted))], after, int((~accepted).sum()))
