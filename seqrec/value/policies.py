"""Ranking policies of the survey simulator: which eligible question to ask next.

Each policy picks, per session, the next question among eligible ones from estimated answer
probability ``p``, continuation ``c = 1 - P(end)`` and price ``r`` (dollars):

* ``random``: uniform (also the logging policy of the training logs);
* ``likely``: max ``p`` (what an engagement model with the best NDCG does; "by probability");
* ``price``: max ``r`` ("by price");
* ``value``: max ``p r``;
* ``cascade``: max ``p r / (1 - c)``, re-scored at every step — the greedy index
  (:func:`seqrec.value.ranking.best_next`), blind to the session cap;
* ``capped``: the first item of the exact best order of the positions left in the session
  (:func:`seqrec.value.planning.capped_first`), re-planned at every step;
* ``positional``: an exact position-aware plan made at the session's first position over the 8
  best candidates (:func:`seqrec.value.planning.positional_plans`, using ``p`` and ``c``
  estimated at every position), followed step by step; its choice is made by
  :func:`seqrec.value.sessions.simulate`, which holds the plans.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Literal

import numpy as np

from seqrec.value.planning import capped_first
from seqrec.value.ranking import best_next

Policy = Literal["random", "likely", "price", "value", "cascade", "capped", "positional"]
POLICIES: tuple[str, ...] = ("random", "likely", "price", "value", "cascade", "capped", "positional")

PolicyOf = Callable[[np.ndarray, np.ndarray], np.ndarray]
"""``policy_of(user_ids (batch,), session_ids (batch,)) -> (batch,)`` object array of policy names."""


def choose(
    policy: str,
    p: np.ndarray,
    c: np.ndarray,
    price: np.ndarray,
    is_eligible: np.ndarray,
    rng: np.random.Generator,
    positions_left: int = 1,
) -> np.ndarray:
    """Next item column ``(batch,) int64`` for one step-by-step policy (not ``positional``).

    Args:
        policy: one of :data:`POLICIES` other than ``positional``.
        p: ``(batch, n_items)`` float64 estimated answer probabilities.
        c: ``(batch, n_items)`` float64 estimated continuation probabilities.
        price: ``(n_items,)`` float64 dollars.
        is_eligible: ``(batch, n_items)`` bool, True where the item may be asked; every row has
            at least one.
        rng: draws the ``random`` policy's choice.
        positions_left: positions left in the session including this one (``capped``).

    Returns:
        Columns of the chosen items; among equal estimates the lowest column (``np.argmax``).

    Raises:
        ValueError: for an unknown policy, or (``cascade``, ``capped``) a row without eligible
            items.
    """
    if policy == "random":
        noise = np.where(is_eligible, rng.random(is_eligible.shape), -1.0)
        return np.argmax(noise, axis=1)
    if policy == "likely":
        return np.argmax(np.where(is_eligible, p, -1.0), axis=1)
    if policy == "price":
        return np.argmax(np.where(is_eligible, price[None, :], -1.0), axis=1)
    if policy == "value":
        return np.argmax(np.where(is_eligible, p * price[None, :], -1.0), axis=1)
    if policy == "cascade":
        return best_next(p, price[None, :], c, is_eligible)
    if policy == "capped":
        return capped_first(p, price, c, is_eligible, positions_left)
    raise ValueError(f"policy must be one of {POLICIES[:-1]} here; got {policy!r}")


def constant_policy(policy: str) -> PolicyOf:
    """A :data:`PolicyOf` giving every session ``policy`` (no check: :func:`choose` raises)."""
    return lambda user_ids, session_ids: np.full(len(user_ids), policy, dtype=object)


def policy_names(text: str | Sequence[str]) -> tuple[str, ...]:
    """Parse ``"random,likely"`` (or a sequence) into checked policy names.

    Raises:
        ValueError: naming an unknown policy, or when no name is given.
    """
    names = tuple(
        p.strip() for p in (text.split(",") if isinstance(text, str) else text) if p.strip()
    )
    unknown = [p for p in names if p not in POLICIES]
    if unknown or not names:
        raise ValueError(f"policies must be a comma list of {POLICIES}; got {text!r}")
    return names
