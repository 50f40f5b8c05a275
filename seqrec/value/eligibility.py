"""Eligibility filters applied *before* the model, and a serving call that cannot loop.

The failure this module prevents: a backend asked the model for one item, applied eligibility rules
afterwards, and on rejection asked the model again with the same input — getting the same item
back until the request timed out. Here

1. eligibility (segment membership, already shown or answered, per-item quotas, explicit exclude
   lists) is a boolean mask computed from an :class:`EligibilityState` before any scoring;
2. the scorer sees only eligible items and is called once per request;
3. :func:`rank_eligible` returns the whole ranked eligible list (:class:`Ranked`) or an explicit
   :class:`NothingEligible` record with the reasons — never an ineligible item, never ``None``.
   It ranks through :mod:`seqrec.rank` (ineligible items at ``-inf``, then
   :func:`seqrec.rank.top_k`), so ties follow the library's one tie rule;
4. a backend rejection is recorded in the state (:meth:`EligibilityState.with_rejected`), so the
   same input cannot produce the rejected item again: :func:`serve_first_accepted` walks the ranked
   list, records rejections, and returns the first accepted item or ``NothingEligible`` — one
   model call.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Hashable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType

import numpy as np
import torch

from seqrec.data.catalogue import PAD
from seqrec.errors import ScoringError
from seqrec.filters import Filters, apply_filters, item_mask
from seqrec.rank import top_k

logger = logging.getLogger(__name__)

ItemId = Hashable
ScoreFn = Callable[[np.ndarray], np.ndarray]
"""Scores ``(n_eligible,) float64`` for item ids ``(n_eligible,)``; larger is better."""

REASONS = ("segment", "shown", "answered", "quota", "excluded")
"""Why an item can be ineligible, in the order they are checked (an item counts once, first reason)."""


def _frozen(mapping: Mapping | None) -> Mapping:
    return MappingProxyType(dict(mapping or {}))


@dataclass(frozen=True)
class EligibilityState:
    """Everything that decides which items a user may be shown now.

    Attributes:
        item_ids: ``(n_items,)`` the catalogue of candidate item ids (unique).
        user_segments: segments the user belongs to.
        item_segments: item id -> segments allowed to see it; items not listed are open to all.
        shown: items already shown (in this session: the caller decides the scope).
        answered: items the user already answered (ever).
        quotas: item id -> remaining impressions (>= 0); items not listed are unlimited.
        excluded: explicit exclude list (business rules, backend rejections).

    Raises:
        ValueError: on duplicate catalogue ids, negative quotas, or unknown item ids anywhere.
    """

    item_ids: np.ndarray
    user_segments: frozenset = frozenset()
    item_segments: Mapping[ItemId, frozenset] = field(default_factory=dict)
    shown: frozenset = frozenset()
    answered: frozenset = frozenset()
    quotas: Mapping[ItemId, int] = field(default_factory=dict)
    excluded: frozenset = frozenset()

    def __post_init__(self) -> None:
        ids = np.asarray(self.item_ids)
        if ids.ndim != 1:
            raise ValueError(f"item_ids must be 1-D; got shape {ids.shape}")
        known = set(ids.tolist())
        if len(known) != len(ids):
            raise ValueError("item_ids must be unique")
        object.__setattr__(self, "item_ids", ids)
        for name in ("user_segments", "shown", "answered", "excluded"):
            object.__setattr__(self, name, frozenset(getattr(self, name)))
        object.__setattr__(
            self, "item_segments", _frozen({k: frozenset(v) for k, v in self.item_segments.items()})
        )
        object.__setattr__(self, "quotas", _frozen(self.quotas))
        for name in ("item_segments", "quotas", "shown", "answered", "excluded"):
            unknown = set(getattr(self, name)) - known
            if unknown:
                raise ValueError(f"{name} names unknown items: {sorted(map(repr, unknown))[:5]}")
        for item, quota in self.quotas.items():
            if not (isinstance(quota, int | np.integer) and quota >= 0):
                raise ValueError(f"quotas[{item!r}] must be an integer >= 0; got {quota!r}")

    def _check_known(self, name: str, items: Iterable[ItemId]) -> frozenset:
        items = frozenset(items)
        unknown = items - set(self.item_ids.tolist())
        if unknown:
            raise ValueError(f"{name}: unknown items {sorted(map(repr, unknown))[:5]}")
        return items

    def with_shown(self, item: ItemId) -> EligibilityState:
        """New state after showing ``item``: marked shown, its quota (if any) decremented."""
        self._check_known("item", [item])
        quotas = dict(self.quotas)
        if item in quotas:
            quotas[item] = max(quotas[item] - 1, 0)
        return replace(self, shown=self.shown | {item}, quotas=quotas)

    def with_answered(self, item: ItemId) -> EligibilityState:
        """New state after the user answered ``item``."""
        return replace(self, answered=self.answered | self._check_known("item", [item]))

    def with_rejected(self, items: Iterable[ItemId]) -> EligibilityState:
        """New state with backend-rejected ``items`` added to the exclude list (deterministic)."""
        return replace(self, excluded=self.excluded | self._check_known("items", items))


def ineligibility_reasons(state: EligibilityState) -> np.ndarray:
    """Per item, the first reason it is ineligible (an entry of :data:`REASONS`) or "" if eligible.

    Returns:
        ``(n_items,)`` object array of strings, in catalogue order.
    """
    reasons = np.full(len(state.item_ids), "", dtype=object)
    for i, item in enumerate(state.item_ids.tolist()):
        allowed = state.item_segments.get(item)
        if allowed is not None and not (allowed & state.user_segments):
            reasons[i] = "segment"
        elif item in state.shown:
            reasons[i] = "shown"
        elif item in state.answered:
            reasons[i] = "answered"
        elif state.quotas.get(item, 1) <= 0:
            reasons[i] = "quota"
        elif item in state.excluded:
            reasons[i] = "excluded"
    return reasons


def eligibility_mask(state: EligibilityState) -> np.ndarray:
    """``(n_items,) bool``: True where the item may be shown now (catalogue order)."""
    return ineligibility_reasons(state) == ""


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
        reasons: reason -> number of catalogue items excluded for it (see :data:`REASONS`).
    """

    reasons: Mapping[str, int]


@dataclass(frozen=True)
class Served:
    """An item the backend accepted, plus the state after the rejections met on the way."""

    item_id: ItemId
    state: EligibilityState
    n_rejected: int


def _nothing(reasons: np.ndarray) -> NothingEligible:
    counts = {r: int(np.sum(reasons == r)) for r in REASONS if np.any(reasons == r)}
    return NothingEligible(MappingProxyType(counts))


def _scorer_name(score: ScoreFn) -> str:
    return getattr(score, "__qualname__", None) or type(score).__qualname__


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
    reasons = ineligibility_reasons(state)
    positions = np.flatnonzero(reasons == "")  # catalogue positions of eligible items
    if len(positions) == 0:
        return _nothing(reasons)
    eligible = state.item_ids[positions]
    scores = np.asarray(score(eligible), dtype=np.float64)
    if scores.shape != eligible.shape:
        raise ValueError(
            f"score {_scorer_name(score)!r} returned shape {scores.shape}; expected {eligible.shape}"
        )
    bad = ~np.isfinite(scores)
    if bad.any():  # -inf would silently mean "ineligible" to top_k; NaN / +inf a broken scorer
        first = int(np.flatnonzero(bad)[0])
        raise ScoringError(
            f"score {_scorer_name(score)!r} must return finite scores; got "
            f"{float(scores[first])!r} for item {eligible.tolist()[first]!r}"
        )
    n_items = len(state.item_ids)
    columns = torch.from_numpy(positions + 1)
    row = torch.zeros(1, n_items + 1, dtype=torch.float64)  # (1, n_items + 1), column 0 = PAD
    row[0, columns] = torch.from_numpy(scores)
    apply_filters(row, Filters(include=item_mask(n_items, positions + 1)))
    best = top_k(row, len(positions) if k is None else k)
    picked = best.items[0][best.items[0] != PAD].numpy()  # (min(k, n_eligible),) columns
    return Ranked(state.item_ids[picked - 1], row[0, picked].numpy())


def serve_first_accepted(
    state: EligibilityState, score: ScoreFn, backend_accepts: Callable[[ItemId], bool]
) -> Served | NothingEligible:
    """Return the best eligible item the backend accepts, with one model call.

    Walks the ranked eligible list (:func:`rank_eligible`); each rejected item is added to the
    state's exclude list so that calling again with the returned state can never propose it again.

    Args:
        state: what is eligible.
        score: as in :func:`rank_eligible` (called once).
        backend_accepts: ``backend_accepts(item_id) -> bool``, asked best item first.

    Returns:
        :class:`Served` (item + updated state) or :class:`NothingEligible` when every eligible item
        was rejected or none was eligible.

    Raises:
        ValueError: as :func:`rank_eligible`.
    """
    ranked = rank_eligible(state, score)
    if isinstance(ranked, NothingEligible):
        return ranked
    rejected: list[ItemId] = []
    for item in ranked.item_ids.tolist():
        if backend_accepts(item):
            return Served(item, state.with_rejected(rejected), len(rejected))
        rejected.append(item)
    logger.info("backend rejected all %d eligible items", len(rejected))
    return _nothing(ineligibility_reasons(state.with_rejected(rejected)))
