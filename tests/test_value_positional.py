"""Position-dependent ordering: the exact subset DP against brute force (with and without cap and
mask), the heuristic's gap, the batched planners of the simulator, and bad input."""

import itertools

import numpy as np
import pytest

from seqrec.value.planning import capped_first, positional_plans
from seqrec.value.positional import (
    _layers,
    positional_brute_force,
    positional_exact_order,
    positional_greedy_order,
    positional_heuristic_order,
    positional_order,
    positional_revenue,
)
from seqrec.value.ranking import capped_order, expected_revenue

P2 = np.array([[0.9, 0.1], [0.5, 0.5]])
C2 = np.array([[0.5, 0.5], [0.99, 0.99]])


def _instance(rng, n, positions=None):
    t = n if positions is None else positions
    return rng.random((n, t)), rng.exponential(1.0, n), rng.random((n, t))


def test_two_question_case_exact_beats_greedy_twice_over():
    r = np.ones(2)
    assert positional_exact_order(P2, r, C2).tolist() == [0, 1]
    assert positional_revenue(P2, r, C2, positional_exact_order(P2, r, C2)) == pytest.approx(1.15)
    assert positional_revenue(P2, r, C2, positional_greedy_order(P2, r, C2)) == pytest.approx(0.599)
    assert positional_order(P2, r, C2).tolist() == [0, 1]


@pytest.mark.parametrize("n", range(1, 8))
@pytest.mark.parametrize("capped", [False, True])
@pytest.mark.parametrize("masked", [False, True])
def test_exact_positional_order_matches_brute_force(n, capped, masked):
    rng = np.random.default_rng([n, capped, masked, 1])
    for _ in range(10 if n < 7 else 3):
        p, r, c = _instance(rng, n)
        cap = int(rng.integers(1, n + 1)) if capped else None
        mask = rng.random(n) < 0.7 if masked else None
        _, best = positional_brute_force(p, r, c, cap, mask)
        exact = positional_exact_order(p, r, c, cap, mask)
        assert positional_revenue(p, r, c, exact) == pytest.approx(best, rel=1e-12, abs=1e-12)
        heuristic = positional_heuristic_order(p, r, c, cap, mask)
        assert positional_revenue(p, r, c, heuristic) <= best + 1e-12
        for order in (exact, heuristic, positional_greedy_order(p, r, c, cap, mask)):
            assert len(set(order.tolist())) == len(order)
            assert mask is None or mask[order].all()


def test_position_free_inputs_reduce_to_the_capped_cascade():
    rng = np.random.default_rng(5)
    p, r, c = rng.random(7), rng.exponential(1.0, 7), rng.random(7)
    wide_p, wide_c = np.repeat(p[:, None], 7, axis=1), np.repeat(c[:, None], 7, axis=1)
    for cap in (1, 3, 7):
        exact = positional_exact_order(wide_p, r, wide_c, cap)
        assert positional_revenue(wide_p, r, wide_c, exact) == pytest.approx(
            expected_revenue(p, r, c, capped_order(p, r, c, cap)), rel=1e-9)


def test_heuristic_is_close_to_exact_on_smooth_position_effects():
    """Smooth effects (logistic in the position with item-specific slopes): mean ratio to the
    exact revenue >= 0.99 and never below 0.95 on 40 instances of 10 items."""
    rng = np.random.default_rng(11)
    ratios = []
    for _ in range(40):
        n, t = 10, np.arange(10)
        p = 1 / (1 + np.exp(-(rng.normal(0, 1, n)[:, None] - rng.normal(0, 0.3, n)[:, None] * t)))
        c = 1 / (1 + np.exp(-(2 + rng.normal(0, 1, n)[:, None] - 0.2 * rng.random(n)[:, None] * t)))
        r = rng.exponential(1.0, n)
        exact = positional_revenue(p, r, c, positional_exact_order(p, r, c))
        heuristic = positional_revenue(p, r, c, positional_heuristic_order(p, r, c))
        greedy = positional_revenue(p, r, c, positional_greedy_order(p, r, c))
        assert greedy <= heuristic + 1e-12 <= exact + 2e-12
        ratios.append(heuristic / exact)
    assert np.mean(ratios) >= 0.99 and np.min(ratios) >= 0.95


def test_many_candidates_use_the_heuristic_and_small_caps_stay_exact():
    rng = np.random.default_rng(2)
    p, r, c = _instance(rng, 30, positions=30)
    order = positional_order(p, r, c)  # 2^30 subsets: heuristic
    assert len(order) == 30 and len(set(order.tolist())) == 30
    p, r, c = _instance(rng, 24, positions=3)  # capped at 2: 301 subsets, exact (expansion path)
    exact = positional_order(p, r, c, cap=2)
    orders = np.array(list(itertools.permutations(range(24), 2)))
    best = max(positional_revenue(p, r, c, o) for o in orders)
    assert positional_revenue(p, r, c, exact) == pytest.approx(best, rel=1e-12)


def test_subset_layers_agree_between_enumeration_and_expansion():
    small = _layers(10, 4)
    bits = 1 << np.arange(10)
    grown = [np.zeros(1, dtype=np.int64)]
    for _ in range(4):
        children = grown[-1][:, None] | bits[None, :]
        grown.append(np.unique(children[children != grown[-1][:, None]]))
    for a, b in zip(small, grown, strict=True):
        assert a.tolist() == b.tolist()
    assert [len(x) for x in _layers(23, 2)] == [1, 23, 253]


def test_batched_capped_first_equals_the_capped_order():
    rng = np.random.default_rng(0)
    p, c, r = rng.random((100, 7)), rng.random((100, 7)), rng.exponential(1.0, 7)
    mask = rng.random((100, 7)) < 0.7
    mask[:, 3] = True
    for cap in (1, 2, 4, 9):
        first = capped_first(p, r, c, mask, cap)
        expected = [capped_order(p[b], r, c[b], cap, mask[b])[0] for b in range(100)]
        assert first.tolist() == expected


def test_batched_positional_plans_are_exact_over_their_candidates():
    rng = np.random.default_rng(1)
    p, c, r = rng.random((60, 6, 4)), rng.random((60, 6, 4)), rng.exponential(1.0, 6)
    mask = rng.random((60, 6)) < 0.6
    mask[:, 0] = True
    plans = positional_plans(p, r, c, mask, horizon=4, n_candidates=6)
    for b in range(60):
        plan = plans[b][plans[b] >= 0]
        exact = positional_exact_order(p[b], r, c[b], 4, mask[b])
        assert len(plan) == len(exact) and mask[b][plan].all()
        assert positional_revenue(p[b], r, c[b], plan) == pytest.approx(
            positional_revenue(p[b], r, c[b], exact), rel=1e-12)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"p": np.full((2, 2), 1.5)}, "p must lie in"),
        ({"r": np.array([-1.0, 1.0])}, "r must be >= 0"),
        ({"r": np.ones(3)}, "must be \\(n_items, n_positions\\)"),
        ({"cap": 3}, "cap must be <= n_positions"),
        ({"cap": 0}, "cap must be an integer >= 1"),
        ({"is_eligible": np.array([True, True, True])}, "is_eligible must have shape"),
    ],
)
def test_bad_input_raises_naming_the_argument(kwargs, match):
    args = {"p": P2, "r": np.ones(2), "c": C2, "cap": None, "is_eligible": None} | kwargs
    for function in (positional_exact_order, positional_heuristic_order, positional_order):
        with pytest.raises(ValueError, match=match):
            function(args["p"], args["r"], args["c"], args["cap"], args["is_eligible"])


def test_capped_first_rejects_bad_caps_and_empty_rows():
    with pytest.raises(ValueError, match="cap must be"):
        capped_first(np.full((1, 2), 0.5), np.ones(2), np.full((1, 2), 0.5), np.ones((1, 2), bool), 0)
    with pytest.raises(ValueError, match="no eligible item"):
        capped_first(np.full((1, 2), 0.5), np.ones(2), np.full((1, 2), 0.5),
                     np.zeros((1, 2), bool), 1)
