r"""Expected-value ranking under a cascade (each shown item may end the session), with a cap.

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

Session cap (at most ``cap`` items shown). Truncating the key order is *not* optimal: with
``p = [.5, .9]``, ``r = [1, 1]``, ``c = [.99, 0]`` and ``cap = 1`` it shows the 0.50 item (key 50)
instead of the 0.90 one. The swap argument still holds inside any fixed set, so an optimal capped
order is a key-sorted *subsequence* of at most ``cap`` items; :func:`capped_order` finds the best
one by dynamic programming over the key order, ``V_k(i) = max(V_k(i + 1), r_i p_i + c_i
V_{k-1}(i + 1))`` (take item ``i`` or skip it, ``k`` slots left): exact, O(n cap) time and memory.
:func:`cascade_order` uses it whenever ``cap`` is given.

Clipping. ``p`` and ``c`` enter the key clipped to ``[eps, 1 - eps]``
(:data:`~seqrec.value._checks.PROBABILITY_EPS` = 1e-6), so keys are finite: an item with
``c = 1`` (it never ends the session) gets ``key = r p / eps`` and goes first unless its ``r p`` is
below ``eps`` times another item's key. Revenue is computed with the unclipped values; the order
is exact for the clipped probabilities, and the clip costs at most about ``2 eps n sum(r)``.
Ties (equal keys) keep the input order (stable sort), so results are deterministic.

Eligibility. Every ordering function takes ``is_eligible`` ``(n,) bool``: ineligible items are
never returned (the order covers the eligible items only, as indices into the inputs).

When ``p`` or ``c`` depend on the position see :mod:`seqrec.value.positional` (exact for up to
about 20 candidates); :func:`greedy_order` re-scores after every step and picks the best key among
what is left (a heuristic: it can earn half the optimum).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from seqrec.value._checks import (
    check_cap,
    check_mask,
    check_nonnegative,
    check_probabilities,
    clip_probabilities,
)

MAX_BRUTE_FORCE_ITEMS = 8


def _check_prc(p: object, r: object, c: object) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    p = check_probabilities("p", p)
    r = check_nonnegative("r", r)
    c = check_probabilities("c", c)
    if not (p.shape == r.shape == c.shape):
        raise ValueError(f"p, r, c must have one shape; got {p.shape}, {r.shape}, {c.shape}")
    return p, r, c


def _check_1d(p: object, r: object, c: object) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    p, r, c = _check_prc(p, r, c)
    if p.ndim != 1:
        raise ValueError(f"p, r, c must be 1-D; got shape {p.shape}")
    return p, r, c


def eligible_positions(is_eligible: object, n_items: int) -> np.ndarray:
    """``(n_eligible,) int64`` indices where ``is_eligible`` is True (all items when None).

    Raises:
        ValueError: naming ``is_eligible`` for a non-boolean mask or one of the wrong length.
    """
    if is_eligible is None:
        return np.arange(n_items, dtype=np.int64)
    return np.flatnonzero(check_mask("is_eligible", is_eligible, n_items)).astype(np.int64)


def cascade_keys(p: np.ndarray, r: np.ndarray, c: np.ndarray) -> np.ndarray:
    """The index ``r p / (1 - c)`` elementwise (any shape), ``p`` and ``c`` clipped to
    ``[eps, 1 - eps]`` first, so every key is finite.

    Args:
        p: answer probabilities in [0, 1].
        r: values in dollars (>= 0).
        c: continuation probabilities in [0, 1] (1 - abandonment).

    Returns:
        float64 array of the same shape, finite and >= 0.

    Raises:
        ValueError: on NaN, probabilities outside [0, 1], negative values or mismatched shapes.
    """
    p, r, c = _check_prc(p, r, c)
    return r * clip_probabilities(p) / (1.0 - clip_probabilities(c))


def cascade_order(
    p: np.ndarray,
    r: np.ndarray,
    c: np.ndarray,
    cap: int | None = None,
    is_eligible: np.ndarray | None = None,
) -> np.ndarray:
    """Indices ``(min(cap, n_eligible),) int64`` of the revenue-maximising order.

    Without ``cap``: the eligible items by ``r p / (1 - c)`` descending, ties in input order.
    With ``cap``: the exact capped order of :func:`capped_order` (not the truncated key order).

    Raises:
        ValueError: as :func:`cascade_keys`, if the inputs are not 1-D, ``cap < 1`` or the mask
            has the wrong length (each message names the argument).
    """
    p, r, c = _check_1d(p, r, c)
    if cap is not None:
        return capped_order(p, r, c, cap, is_eligible)
    positions = eligible_positions(is_eligible, len(p))
    keys = cascade_keys(p, r, c)[positions]
    return positions[np.argsort(-keys, kind="stable")]


def capped_order(
    p: np.ndarray, r: np.ndarray, c: np.ndarray, cap: int, is_eligible: np.ndarray | None = None
) -> np.ndarray:
    """Exact best order of at most ``cap`` eligible items (dynamic program, module docstring).

    Args:
        p, r, c: ``(n,)`` answer probabilities, dollars (>= 0), continuation probabilities.
        cap: most items the session may show (>= 1).
        is_eligible: ``(n,) bool``; ineligible items are never chosen (default: all eligible).

    Returns:
        ``(min(cap, n_eligible),) int64`` item indices in the order to show them. Among equally
        good sets the DP prefers items earlier in the key order.

    Raises:
        ValueError: on bad probabilities, prices, cap or mask (naming the argument).
    """
    p, r, c = _check_1d(p, r, c)
    cap = check_cap(cap)
    base = cascade_order(p, r, c, is_eligible=is_eligible)  # eligible items, key order
    n, k_max = len(base), min(cap, len(base))
    if k_max == n:
        return base
    value, cont = (r * p)[base], c[base]
    best = np.zeros(n + 1)  # best[i]: V_{k-1}(i), revenue of items i.. with k - 1 slots
    takes = []
    for _ in range(k_max):
        take = value + cont * best[1:]  # (n,) show item i, then the best of i + 1.. (k - 1 slots)
        best = np.append(np.maximum.accumulate(take[::-1])[::-1], 0.0)  # V_k(i) = max_{j>=i} take
        takes.append(take)
    order, start = [], 0
    for take in reversed(takes):  # k_max slots left, then k_max - 1, ...
        if start >= n:
            break
        j = start + int(np.argmax(take[start:]))  # first (highest-key) best choice
        order.append(base[j])
        start = j + 1
    return np.array(order, dtype=np.int64)


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


def brute_force_order(
    p: np.ndarray,
    r: np.ndarray,
    c: np.ndarray,
    cap: int | None = None,
    is_eligible: np.ndarray | None = None,
) -> tuple[np.ndarray, float]:
    """Reference: the best order of ``min(cap, n_eligible)`` eligible items and its value, by
    enumerating every ordered selection (n <= 8; showing one more item never loses revenue).

    Raises:
        ValueError: if there are more than :data:`MAX_BRUTE_FORCE_ITEMS` items, and as
            :func:`cascade_order`.
    """
    p, r, c = _check_1d(p, r, c)
    if len(p) > MAX_BRUTE_FORCE_ITEMS:
        raise ValueError(f"brute force allows at most {MAX_BRUTE_FORCE_ITEMS} items; got {len(p)}")
    positions = eligible_positions(is_eligible, len(p))
    size = len(positions) if cap is None else min(check_cap(cap), len(positions))
    best_order, best_value = np.zeros(0, dtype=np.int64), -1.0
    for perm in itertools.permutations(positions.tolist(), size):
        value = expected_revenue(p, r, c, np.array(perm, dtype=np.int64))
        if value > best_value + 1e-15:
            best_order, best_value = np.array(perm, dtype=np.int64), value
    return best_order, best_value


def best_next(p: np.ndarray, r: np.ndarray, c: np.ndarray, is_eligible: np.ndarray) -> np.ndarray:
    """Batched greedy step: for each row the eligible item with the largest (clipped) cascade key.

    Args:
        p, r, c: ``(batch, n_items)`` (or broadcastable) probabilities / dollars / probabilities.
        is_eligible: ``(batch, n_items)`` bool, True where the item may be shown.

    Returns:
        ``(batch,) int64`` item columns; ties go to the lowest column.

    Raises:
        ValueError: as :func:`cascade_keys`, or if some row has no eligible item.
    """
    p, r, c = np.broadcast_arrays(*(np.asarray(a, dtype=np.float64) for a in (p, r, c)))
    keys = cascade_keys(p, r, c)
    is_eligible = np.asarray(is_eligible, dtype=bool)
    if is_eligible.shape != keys.shape:
        raise ValueError(f"is_eligible must have shape {keys.shape}; got {is_eligible.shape}")
    empty = ~is_eligible.any(axis=-1)
    if empty.any():
        raise ValueError(
            f"is_eligible has rows with no eligible item: {np.flatnonzero(empty)[:5].tolist()}"
        )
    return np.argmax(np.where(is_eligible, keys, -1.0), axis=-1).astype(np.int64)


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
    is_eligible: np.ndarray | None = None,
) -> np.ndarray:
    """Step-by-step heuristic for position-dependent probabilities: re-score, take the best key.

    Not optimal when probabilities depend on the position: with ``p = [[.9, .1], [.5, .5]]`` and
    ``c = [[.5, .5], [.99, .99]]`` (item x position, ``r = 1``) it earns 0.60 against 1.15 (see
    :func:`seqrec.value.positional.positional_order` for the exact search).

    Args:
        predict: ``predict(position, shown)`` with 1-based ``position`` and ``shown`` the ``(t,)``
            int64 indices already chosen, returns :class:`StepProbabilities` for all items (it may
            also read answers the caller has observed: the policy re-scores after each answer).
        n_items: catalogue size.
        n_steps: how many items to pick (default: every eligible item); a session cap.
        is_eligible: ``(n_items,) bool``; ineligible items are never picked.

    Returns:
        ``(n_steps,) int64`` item indices. Equals :func:`cascade_order` when ``predict`` ignores
        its arguments.

    Raises:
        ValueError: if ``n_steps`` exceeds the eligible items, the mask has the wrong length or
            predictions are invalid.
    """
    eligible = np.zeros(n_items, dtype=bool)
    eligible[eligible_positions(is_eligible, n_items)] = True
    n_steps = int(eligible.sum()) if n_steps is None else n_steps
    if not 0 <= n_steps <= eligible.sum():
        raise ValueError(f"n_steps must be in [0, {int(eligible.sum())}] (eligible items); got {n_steps!r}")
    shown: list[int] = []
    for position in range(1, n_steps + 1):
        step = predict(position, np.array(shown, dtype=np.int64))
        choice = int(best_next(step.p[None], step.r[None], step.c[None], eligible[None])[0])
        shown.append(choice)
        eligible[choice] = False
    return np.array(shown, dtype=np.int64)
