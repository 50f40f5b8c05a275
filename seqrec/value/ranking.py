r"""Expected-value ranking under a cascade (each shown item may end the session).

Model. Items are shown one at a time. Item ``i`` is answered with probability ``p_i`` and then pays
``r_i`` dollars; after it, the session continues with probability ``c_i`` (``1 - c_i`` is the
abandonment probability), independently of the answer and of the position. The expected revenue
of an order ``(i_1, ..., i_n)`` is

    E[revenue] = sum_t r_{i_t} p_{i_t} prod_{s<t} c_{i_s}.

Optimal order (adjacent-swap / interchange argument). Take an order with items ``i`` then ``j`` at
positions ``t, t + 1``; let ``S = prod_{s<t} c`` be the probability of reaching ``t``. Swapping them
changes only their two terms (the items after both see the same ``S c_i c_j``):

    i first: S (r_i p_i + c_i r_j p_j)        j first: S (r_j p_j + c_j r_i p_i)

so ``i`` first is at least as good iff ``r_i p_i (1 - c_j) >= r_j p_j (1 - c_i)``, i.e. iff

    key_i = r_i p_i / (1 - c_i)  >=  key_j = r_j p_j / (1 - c_j).

Any order not sorted by ``key`` has an adjacent inversion whose swap does not decrease revenue, so
sorting by ``key`` (descending) is optimal (Weitzman-style index; cf. the cascade model of
Craswell et al. 2008 and "Pandora's box"-type index policies).

Edge cases, handled explicitly:

* ``c_i = 1`` (the item never ends the session): ``key_i = +inf``. Such items go first; among
  several of them the swap condition becomes ``r_i p_i * 0 >= r_j p_j * 0``: any order has the same
  value, and we order them by ``r p`` (descending) for readability.
* ties (equal keys, including ``r p = 0``): the swap condition holds with equality, every order of
  the tied items is optimal; we keep the input order (stable sort), so results are deterministic.

When ``p`` or ``c`` depend on the position or on what was answered, the index is no longer exact;
:func:`greedy_order` re-scores after every step and picks the best key among what is left.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from seqrec.value._checks import check_nonnegative, check_probabilities

MAX_BRUTE_FORCE_ITEMS = 8


def _check_prc(p: object, r: object, c: object) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    p = check_probabilities("p", p)
    r = check_nonnegative("r", r)
    c = check_probabilities("c", c)
    if not (p.shape == r.shape == c.shape):
        raise ValueError(f"p, r, c must have one shape; got {p.shape}, {r.shape}, {c.shape}")
    return p, r, c


def cascade_keys(p: np.ndarray, r: np.ndarray, c: np.ndarray) -> np.ndarray:
    """The index ``r p / (1 - c)`` elementwise (any shape), ``+inf`` where ``c == 1``.

    Args:
        p: answer probabilities in [0, 1].
        r: values in dollars (>= 0).
        c: continuation probabilities in [0, 1] (1 - abandonment).

    Returns:
        float64 array of the same shape.

    Raises:
        ValueError: on NaN, probabilities outside [0, 1], negative values or mismatched shapes.
    """
    p, r, c = _check_prc(p, r, c)
    never_ends = c >= 1.0
    with np.errstate(divide="ignore", invalid="ignore"):
        keys = r * p / (1.0 - c)
    return np.where(never_ends, np.inf, keys)


def cascade_order(p: np.ndarray, r: np.ndarray, c: np.ndarray) -> np.ndarray:
    """Indices ``(n,) int64`` of the revenue-maximising order (see the module docstring).

    ``c == 1`` items first (by ``r p`` descending), then the rest by ``r p / (1 - c)`` descending;
    ties keep the input order.

    Raises:
        ValueError: as :func:`cascade_keys`, or if the inputs are not 1-D.
    """
    keys = cascade_keys(p, r, c)
    if keys.ndim != 1:
        raise ValueError(f"p, r, c must be 1-D; got shape {keys.shape}")
    value = np.asarray(r, dtype=np.float64) * np.asarray(p, dtype=np.float64)
    secondary = np.where(np.isinf(keys), value, 0.0)
    # np.lexsort sorts by the last key first; negate for descending, index last for stability.
    return np.lexsort((np.arange(len(keys)), -secondary, -keys)).astype(np.int64)


def expected_revenue(
    p: np.ndarray, r: np.ndarray, c: np.ndarray, order: np.ndarray | None = None
) -> float:
    """``sum_t r p prod_{s<t} c`` over ``order`` (default: the given order), in dollars.

    Raises:
        ValueError: as :func:`cascade_keys`, or if ``order`` is not a permutation prefix of the items.
    """
    p, r, c = _check_prc(p, r, c)
    if order is None:
        order = np.arange(len(p))
    order = np.asarray(order, dtype=np.int64)
    if len(np.unique(order)) != len(order) or (
        len(order) and (order.min() < 0 or order.max() >= len(p))
    ):
        raise ValueError(
            f"order must list distinct item indices in [0, {len(p)}); got {order.tolist()}"
        )
    reach = np.concatenate([[1.0], np.cumprod(c[order])[:-1]])  # (len(order),) P(reach position t)
    return float(np.sum(r[order] * p[order] * reach))


def brute_force_order(p: np.ndarray, r: np.ndarray, c: np.ndarray) -> tuple[np.ndarray, float]:
    """Reference: the best order and its value by enumerating all ``n!`` orders (n <= 8).

    Raises:
        ValueError: if there are more than :data:`MAX_BRUTE_FORCE_ITEMS` items.
    """
    p, r, c = _check_prc(p, r, c)
    if len(p) > MAX_BRUTE_FORCE_ITEMS:
        raise ValueError(f"brute force allows at most {MAX_BRUTE_FORCE_ITEMS} items; got {len(p)}")
    best_order, best_value = np.arange(len(p)), -1.0
    for perm in itertools.permutations(range(len(p))):
        value = expected_revenue(p, r, c, np.array(perm))
        if value > best_value + 1e-15:
            best_order, best_value = np.array(perm), value
    return best_order, best_value


def best_next(p: np.ndarray, r: np.ndarray, c: np.ndarray, is_eligible: np.ndarray) -> np.ndarray:
    """Batched greedy step: for each row the eligible item with the largest cascade key.

    Args:
        p, r, c: ``(batch, n_items)`` (or broadcastable) probabilities / dollars / probabilities.
        is_eligible: ``(batch, n_items)`` bool, True where the item may be shown.

    Returns:
        ``(batch,) int64`` item columns; ties go to the lowest column, ``c == 1`` rows by ``r p``.

    Raises:
        ValueError: as :func:`cascade_keys`, or if some row has no eligible item.
    """
    p, r, c = np.broadcast_arrays(*(np.asarray(a, dtype=np.float64) for a in (p, r, c)))
    keys = cascade_keys(p, r, c)
    is_eligible = np.asarray(is_eligible, dtype=bool)
    empty = ~is_eligible.any(axis=-1)
    if empty.any():
        raise ValueError(
            f"is_eligible has rows with no eligible item: {np.flatnonzero(empty)[:5].tolist()}"
        )
    # Two-tier key as in cascade_order: +inf keys compare by r p; argmax picks the first maximum.
    tier = np.where(np.isinf(keys), 1.0, 0.0)
    finite = np.where(np.isinf(keys), r * p, keys)
    best_tier = np.where(is_eligible, tier, -1.0).max(axis=-1, keepdims=True)
    candidates = is_eligible & (tier == best_tier)
    return np.argmax(np.where(candidates, finite, -np.inf), axis=-1).astype(np.int64)


@dataclass(frozen=True)
class StepProbabilities:
    """What a model predicts for every item at one step: ``(n_items,)`` arrays p, r (dollars), c."""

    p: np.ndarray
    r: np.ndarray
    c: np.ndarray


def greedy_order(
    predict: Callable[[int, np.ndarray], StepProbabilities],
    n_items: int,
    n_steps: int | None = None,
) -> np.ndarray:
    """Step-by-step policy for position-dependent probabilities: re-score, take the best key, repeat.

    Args:
        predict: ``predict(position, shown)`` with 1-based ``position`` and ``shown`` the ``(t,)``
            int64 indices already chosen, returns :class:`StepProbabilities` for all items (it may
            also read answers the caller has observed: the policy re-scores after each answer).
        n_items: catalogue size.
        n_steps: how many items to pick (default all).

    Returns:
        ``(n_steps,) int64`` item indices. Equals :func:`cascade_order` when ``predict`` ignores
        its arguments.

    Raises:
        ValueError: if ``n_steps`` exceeds ``n_items`` or predictions are invalid.
    """
    n_steps = n_items if n_steps is None else n_steps
    if not 0 <= n_steps <= n_items:
        raise ValueError(f"n_steps must be in [0, n_items={n_items}]; got {n_steps!r}")
    shown: list[int] = []
    is_eligible = np.ones(n_items, dtype=bool)
    for position in range(1, n_steps + 1):
        step = predict(position, np.array(shown, dtype=np.int64))
        choice = int(best_next(step.p[None], step.r[None], step.c[None], is_eligible[None])[0])
        shown.append(choice)
        is_eligible[choice] = False
    return np.array(shown, dtype=np.int64)
