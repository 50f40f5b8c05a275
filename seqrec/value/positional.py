r"""Ordering when answer and continuation probabilities depend on the position shown.

Model. ``p[i, t]`` and ``c[i, t]`` (item ``i`` shown at 0-based position ``t``) replace the
position-free ``p_i`` and ``c_i`` of :mod:`seqrec.value.ranking`; item ``i`` pays ``r_i`` dollars:

    E[revenue] = sum_t r_{o_t} p[o_t, t] prod_{s<t} c[o_s, s].

The index ``r p / (1 - c)`` is no longer optimal (the swap argument needs position-free terms):
with ``p = [[.9, .1], [.5, .5]]``, ``c = [[.5, .5], [.99, .99]]`` and ``r = [1, 1]`` the greedy
index earns 0.60 and the best order 1.15.

Exact search (:func:`positional_exact_order`). What is left to earn after showing a *set* ``S``
depends only on ``S`` (its size is the next position), not on the order it was shown in, so a
dynamic program over subsets (bitmask DP, Held & Karp 1962) is exact:

    V(S) = max_{i not in S} r_i p[i, |S|] + c[i, |S|] V(S + {i}),   V(S) = 0 when |S| = horizon.

States are the subsets of at most ``horizon`` candidates: ``2^n`` without a cap (feasible to about
20 candidates: ~1 s), far fewer with a small cap. Each state costs ``n`` operations, vectorised
layer by layer (subsets of equal size) in numpy.

Heuristic (:func:`positional_heuristic_order`, used by :func:`positional_order` beyond
:data:`MAX_EXACT_STATES` subsets): the better of the greedy index order and the exact capped order of the
position-1 probabilities, then steepest-ascent local search over swaps of two shown items, moves
of one shown item to another slot and replacements of a shown item by an unshown one, until no
move gains. Its measured gap to the exact
order is in docs/value.md (benchmarks/value.py).
"""

from __future__ import annotations

import itertools
from math import comb

import numpy as np

from seqrec.value._checks import check_cap, check_nonnegative, check_probabilities
from seqrec.value.ranking import capped_order, cascade_keys, eligible_positions

MAX_EXACT_STATES = 1 << 20
"""Most subsets :func:`positional_exact_order` searches: 2^20, i.e. 20 candidates uncapped (about
1-2 s), or many more candidates under a small cap (60 candidates, cap 3: 36 051 subsets)."""
MAX_BITS = 62
"""Subsets are int64 bitmasks: at most 62 candidates in an exact search."""
_CHUNK = 1 << 15


def _check(
    p: object, r: object, c: object, cap: int | None, is_eligible: object
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, int]:
    """Checked ``p, r, c``, eligible positions and the horizon (positions to fill)."""
    p = check_probabilities("p", p)
    c = check_probabilities("c", c)
    r = check_nonnegative("r", r)
    if p.ndim != 2 or p.shape != c.shape or r.shape != (p.shape[0],):
        raise ValueError(
            f"p and c must be (n_items, n_positions) and r (n_items,); got {p.shape}, {c.shape}, "
            f"{r.shape}"
        )
    positions = eligible_positions(is_eligible, p.shape[0])
    horizon = min(len(positions), p.shape[1])
    if cap is not None:
        if check_cap(cap) > p.shape[1]:
            raise ValueError(f"cap must be <= n_positions = {p.shape[1]} (columns of p); got {cap}")
        horizon = min(horizon, cap)
    return p, r, c, positions, horizon


def positional_revenue(p: np.ndarray, r: np.ndarray, c: np.ndarray, order: np.ndarray) -> float:
    """Expected revenue (dollars) of showing ``order`` at positions ``0 .. len(order) - 1``.

    Args:
        p, c: ``(n_items, n_positions)`` probabilities; r: ``(n_items,)`` dollars.
        order: ``(k,)`` distinct item indices, ``k <= n_positions``.

    Raises:
        ValueError: on bad probabilities or prices, or an order that is not distinct items within
            range and within the position columns.
    """
    p, r, c, _, _ = _check(p, r, c, None, None)
    order = np.asarray(order, dtype=np.int64)
    if len(np.unique(order)) != len(order) or len(order) > p.shape[1] or (
        len(order) and (order.min() < 0 or order.max() >= len(r))
    ):
        raise ValueError(f"order must list <= {p.shape[1]} distinct items in [0, {len(r)}); got "
                         f"{order.tolist()}")
    return float(_revenues(p, r, c, order[None])[0])


def _revenues(p: np.ndarray, r: np.ndarray, c: np.ndarray, orders: np.ndarray) -> np.ndarray:
    """``(n_orders,)`` revenues of ``orders (n_orders, k)`` (unchecked)."""
    t = np.arange(orders.shape[1])
    reach = np.cumprod(c[orders, t], axis=1)  # (n_orders, k) P(still there after position t)
    reach = np.concatenate([np.ones((len(orders), 1)), reach[:, :-1]], axis=1)
    return np.sum(r[orders] * p[orders, t] * reach, axis=1)


def positional_brute_force(
    p: np.ndarray, r: np.ndarray, c: np.ndarray, cap: int | None = None,
    is_eligible: np.ndarray | None = None,
) -> tuple[np.ndarray, float]:
    """Reference: best order over every ordered selection of ``horizon`` eligible items (n <= 8).

    Raises:
        ValueError: for more than 8 items, and as :func:`positional_exact_order`.
    """
    p, r, c, positions, horizon = _check(p, r, c, cap, is_eligible)
    if len(r) > 8:
        raise ValueError(f"brute force allows at most 8 items; got {len(r)}")
    orders = np.array(list(itertools.permutations(positions.tolist(), horizon)), dtype=np.int64)
    values = _revenues(p, r, c, orders.reshape(len(orders), horizon))
    best = int(np.argmax(values))
    return orders.reshape(len(orders), horizon)[best], float(values[best])


def _exact_is_feasible(n: int, horizon: int) -> bool:
    return n <= MAX_BITS and sum(comb(n, t) for t in range(horizon + 1)) <= MAX_EXACT_STATES


def _layers(n: int, horizon: int) -> list[np.ndarray]:
    """Sorted bitmasks of the subsets of ``n`` candidates with 0, 1, .., ``horizon`` members."""
    if n <= 22:
        masks = np.arange(1 << n, dtype=np.int64)
        size = np.bitwise_count(masks)
        return [masks[size == t] for t in range(horizon + 1)]
    bits = np.int64(1) << np.arange(n, dtype=np.int64)
    layers = [np.zeros(1, dtype=np.int64)]
    for _ in range(horizon):
        children = layers[-1][:, None] | bits[None, :]  # (n_masks, n)
        layers.append(np.unique(children[children != layers[-1][:, None]]))
    return layers


def positional_exact_order(
    p: np.ndarray, r: np.ndarray, c: np.ndarray, cap: int | None = None,
    is_eligible: np.ndarray | None = None,
) -> np.ndarray:
    """Exact best order by dynamic programming over subsets (module docstring).

    Args:
        p, c: ``(n_items, n_positions)`` answer / continuation probabilities by item and
            0-based position; r: ``(n_items,)`` dollars (>= 0).
        cap: most items shown (<= n_positions); default ``min(n_eligible, n_positions)``.
        is_eligible: ``(n_items,) bool``; ineligible items are never chosen.

    Returns:
        ``(horizon,) int64`` item indices, ``horizon = min(cap, n_eligible, n_positions)``; among
        equally good choices the lowest item index.

    Raises:
        ValueError: on bad inputs (naming the argument), or more than :data:`MAX_EXACT_STATES`
            subsets to search (use :func:`positional_heuristic_order`).
    """
    p, r, c, positions, horizon = _check(p, r, c, cap, is_eligible)
    n = len(positions)
    if horizon == 0:
        return np.zeros(0, dtype=np.int64)
    if not _exact_is_feasible(n, horizon):
        raise ValueError(f"exact search over {n} candidates with horizon {horizon} needs more "
                         f"than {MAX_EXACT_STATES} subsets or {MAX_BITS} bits; use the heuristic "
                         "or a smaller cap")
    value = r[positions, None] * p[positions]  # (n, n_positions) dollars if shown at t
    cont = c[positions]
    bits = np.int64(1) << np.arange(n, dtype=np.int64)
    layers = _layers(n, horizon)
    best_after = np.zeros(len(layers[horizon]))  # V of full states
    choices: list[np.ndarray] = [np.zeros(0, dtype=np.int64)] * horizon
    for t in reversed(range(horizon)):
        masks, following = layers[t], layers[t + 1]
        best, choice = np.empty(len(masks)), np.empty(len(masks), dtype=np.int64)
        for lo in range(0, len(masks), _CHUNK):
            block = masks[lo : lo + _CHUNK, None]  # (chunk, 1)
            child = np.searchsorted(following, block | bits)  # (chunk, n) index of S + {i}
            gain = value[:, t] + cont[:, t] * best_after[np.minimum(child, len(following) - 1)]
            gain = np.where((block & bits) == 0, gain, -np.inf)  # i already in S: not allowed
            choice[lo : lo + _CHUNK] = np.argmax(gain, axis=1)
            best[lo : lo + _CHUNK] = np.take_along_axis(gain, choice[lo : lo + _CHUNK, None], 1)[:, 0]
        best_after, choices[t] = best, choice
    order, mask = [], np.int64(0)
    for t in range(horizon):
        j = int(choices[t][np.searchsorted(layers[t], mask)])
        order.append(positions[j])
        mask |= bits[j]
    return np.array(order, dtype=np.int64)


def positional_greedy_order(
    p: np.ndarray, r: np.ndarray, c: np.ndarray, cap: int | None = None,
    is_eligible: np.ndarray | None = None,
) -> np.ndarray:
    """The greedy index at each position: the unshown item with the largest ``r p / (1 - c)`` at
    position ``t`` (clipped as in :func:`seqrec.value.ranking.cascade_keys`). A heuristic.

    Returns:
        ``(horizon,) int64`` item indices.
    """
    p, r, c, positions, horizon = _check(p, r, c, cap, is_eligible)
    keys = cascade_keys(p, np.broadcast_to(r[:, None], p.shape), c)  # (n_items, n_positions)
    left = np.zeros(len(r), dtype=bool)
    left[positions] = True
    order = []
    for t in range(horizon):
        i = int(np.argmax(np.where(left, keys[:, t], -1.0)))
        order.append(i)
        left[i] = False
    return np.array(order, dtype=np.int64)


def _rearrangements(horizon: int) -> np.ndarray:
    """``(n_moves, horizon) int64`` slot orders: every swap of two slots and every move of one
    slot's item to another slot (the items between shift by one)."""
    base = list(range(horizon))
    moves = []
    for i, j in itertools.permutations(range(horizon), 2):
        if i < j:
            swapped = base.copy()
            swapped[i], swapped[j] = j, i
            moves.append(swapped)
        if abs(i - j) > 1:  # adjacent moves are swaps
            moved = base[:i] + base[i + 1 :]
            moves.append(moved[:j] + [i] + moved[j:])
    return np.array(moves, dtype=np.int64).reshape(-1, horizon)


def positional_heuristic_order(
    p: np.ndarray, r: np.ndarray, c: np.ndarray, cap: int | None = None,
    is_eligible: np.ndarray | None = None, max_rounds: int = 200,
) -> np.ndarray:
    """Greedy or position-1 capped order, improved by swap / replace local search (module doc).

    Returns:
        ``(horizon,) int64`` item indices; never worse than :func:`positional_greedy_order`.
    """
    p, r, c, positions, horizon = _check(p, r, c, cap, is_eligible)
    if horizon == 0:
        return np.zeros(0, dtype=np.int64)
    mask = np.zeros(len(r), dtype=bool)
    mask[positions] = True
    starts = np.stack([
        positional_greedy_order(p, r, c, horizon, mask),
        capped_order(p[:, 0], r, c[:, 0], horizon, mask),
    ])
    values = _revenues(p, r, c, starts)
    order, value = starts[int(np.argmax(values))], float(values.max())
    slots = _rearrangements(horizon)  # (n_moves, horizon) slot permutations: swaps, insertions
    for _ in range(max_rounds):
        moves = order[slots]
        unshown = np.setdiff1d(positions, order)
        if len(unshown):  # replace the item at slot s by an unshown item u
            slot, item = np.meshgrid(np.arange(horizon), unshown, indexing="ij")
            replaced = np.repeat(order[None], slot.size, axis=0)
            replaced[np.arange(slot.size), slot.ravel()] = item.ravel()
            moves = np.concatenate([moves, replaced])
        if len(moves) == 0:
            break
        gains = _revenues(p, r, c, moves)
        best = int(np.argmax(gains))
        if gains[best] <= value * (1 + 1e-12) + 1e-15:
            break
        order, value = moves[best], float(gains[best])
    return order


def positional_order(
    p: np.ndarray, r: np.ndarray, c: np.ndarray, cap: int | None = None,
    is_eligible: np.ndarray | None = None,
) -> np.ndarray:
    """Exact order (:func:`positional_exact_order`) when the search has at most
    :data:`MAX_EXACT_STATES` subsets (up to 20 eligible candidates without a cap, many more with a
    small one), else :func:`positional_heuristic_order`.

    Raises:
        ValueError: as :func:`positional_exact_order` for bad inputs.
    """
    p, r, c, positions, horizon = _check(p, r, c, cap, is_eligible)
    mask = np.zeros(len(r), dtype=bool)
    mask[positions] = True
    if horizon == 0:
        return np.zeros(0, dtype=np.int64)
    if _exact_is_feasible(len(positions), horizon):
        return positional_exact_order(p, r, c, horizon, mask)
    return positional_heuristic_order(p, r, c, horizon, mask)
