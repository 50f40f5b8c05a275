"""Cascade ranking: hand-computed values, brute-force parity with and without a cap and a mask,
the exact capped DP, clipping (no infinite key), the greedy policy and bad input."""

import numpy as np
import pytest

from seqrec.value.ranking import (
    StepProbabilities,
    best_next,
    brute_force_order,
    capped_order,
    cascade_keys,
    cascade_order,
    expected_revenue,
    greedy_order,
)


def _instance(rng, n):
    p, r, c = rng.random(n), rng.exponential(1.0, n), rng.random(n)
    if rng.random() < 0.3:
        c[rng.integers(n)] = 1.0  # an item that never ends the session
    return p, r, c


def test_expected_revenue_hand_computed():
    p, r, c = np.array([0.5, 0.9]), np.array([2.0, 1.0]), np.array([0.5, 0.8])
    # order (0, 1): 2*0.5 + 0.5 * 1*0.9 = 1.45; order (1, 0): 0.9 + 0.8 * 1.0 = 1.7
    assert expected_revenue(p, r, c, np.array([0, 1])) == pytest.approx(1.45)
    assert expected_revenue(p, r, c, np.array([1, 0])) == pytest.approx(1.7)
    # keys: 1.0 / 0.5 = 2.0 and 0.9 / 0.2 = 4.5 -> item 1 first
    assert cascade_keys(p, r, c) == pytest.approx([2.0, 4.5])
    assert cascade_order(p, r, c).tolist() == [1, 0]


@pytest.mark.parametrize("n", range(1, 8))
@pytest.mark.parametrize("capped", [False, True])
@pytest.mark.parametrize("masked", [False, True])
def test_cascade_order_matches_brute_force(n, capped, masked):
    """Exact (up to the 1e-6 probability clip) for every n <= 7, cap and eligibility mask."""
    rng = np.random.default_rng([n, capped, masked])
    for _ in range(15 if n < 7 else 3):
        p, r, c = _instance(rng, n)
        cap = int(rng.integers(1, n + 1)) if capped else None
        mask = rng.random(n) < 0.7 if masked else None
        best_order, best = brute_force_order(p, r, c, cap, mask)
        order = cascade_order(p, r, c, cap=cap, is_eligible=mask)
        assert len(order) == len(best_order)
        assert expected_revenue(p, r, c, order) == pytest.approx(best, rel=1e-9, abs=1e-5)
        if mask is not None:
            assert mask[order].all()


def test_minimal_cap_case_shows_the_likely_item_not_the_high_key_one():
    """Issue example: keys are 50 and 0.9, but with one slot the 0.90 question earns more."""
    p, r, c = np.array([0.5, 0.9]), np.array([1.0, 1.0]), np.array([0.99, 0.0])
    assert cascade_order(p, r, c)[:1].tolist() == [0]  # the truncated index order: 0.50
    assert cascade_order(p, r, c, cap=1).tolist() == [1]  # the exact capped order: 0.90
    assert expected_revenue(p, r, c, cascade_order(p, r, c, cap=1)) == pytest.approx(0.9)


def test_truncating_the_index_order_often_loses_and_the_dp_never_does():
    rng = np.random.default_rng(7)
    worse = 0
    for _ in range(300):
        n = int(rng.integers(3, 8))
        p, r, c = rng.random(n), rng.exponential(1.0, n), rng.random(n)
        cap = int(rng.integers(1, n))
        truncated = expected_revenue(p, r, c, cascade_order(p, r, c)[:cap])
        exact = expected_revenue(p, r, c, capped_order(p, r, c, cap))
        assert exact >= truncated - 1e-12
        worse += exact > truncated + 1e-9
    assert worse / 300 > 0.1  # truncation is strictly worse on a sizeable share of instances


def test_cap_at_least_the_items_is_the_index_order():
    rng = np.random.default_rng(3)
    p, r, c = _instance(rng, 6)
    assert capped_order(p, r, c, 6).tolist() == cascade_order(p, r, c).tolist()
    assert capped_order(p, r, c, 60).tolist() == cascade_order(p, r, c).tolist()


def test_certain_continuation_gives_a_finite_key_and_goes_first():
    """c = 1 (an isotonic calibrator's exact 0 abandonment) is clipped to 1 - 1e-6: finite."""
    p = np.array([0.9, 0.5, 0.5, 0.1])
    r = np.array([10.0, 1.0, 3.0, 1.0])
    c = np.array([0.0, 1.0, 1.0, 0.5])
    keys = cascade_keys(p, r, c)
    assert np.isfinite(keys).all()
    assert keys[1] == pytest.approx(0.5 / 1e-6)
    assert cascade_order(p, r, c).tolist() == [2, 1, 0, 3]


def test_ties_keep_input_order():
    p, r, c = np.full(4, 0.5), np.ones(4), np.full(4, 0.5)
    assert cascade_order(p, r, c).tolist() == [0, 1, 2, 3]
    eligible = np.array([[False, True, True, True]])
    assert best_next(p[None], r[None], c[None], eligible).tolist() == [1]


def test_best_next_batched_agrees_with_order():
    rng = np.random.default_rng(0)
    p, r, c = rng.random((50, 6)), rng.exponential(1.0, (50, 6)), rng.random((50, 6))
    c[:10, 2] = 1.0
    eligible = rng.random((50, 6)) < 0.8
    eligible[:, 0] = True
    expected = [cascade_order(p[i], r[i], c[i], is_eligible=eligible[i])[0] for i in range(50)]
    assert best_next(p, r, c, eligible).tolist() == expected


def test_greedy_equals_index_order_when_position_does_not_matter():
    rng = np.random.default_rng(1)
    p, r, c = rng.random(6), rng.exponential(1.0, 6), rng.random(6)
    mask = np.array([True, True, False, True, True, True])
    order = greedy_order(lambda position, shown: StepProbabilities(p, r, c), 6, is_eligible=mask)
    assert order.tolist() == cascade_order(p, r, c, is_eligible=mask).tolist()
    assert len(greedy_order(lambda t, s: StepProbabilities(p, r, c), 6, 3, mask)) == 3


def test_greedy_rescoring_uses_position_and_can_earn_half_the_optimum():
    """Issue example: p = [[.9, .1], [.5, .5]], c = [[.5, .5], [.99, .99]] (item x position)."""
    p, c = np.array([[0.9, 0.1], [0.5, 0.5]]), np.array([[0.5, 0.5], [0.99, 0.99]])
    r = np.ones(2)

    def predict(position, shown):
        return StepProbabilities(p[:, position - 1], r, c[:, position - 1])

    order = greedy_order(predict, 2)
    assert order.tolist() == [1, 0]  # key 0.5 / 0.01 = 50 beats 0.9 / 0.5 = 1.8
    earned = p[order[0], 0] * r[order[0]] + c[order[0], 0] * p[order[1], 1] * r[order[1]]
    assert earned == pytest.approx(0.599) and 0.9 + 0.5 * 0.5 == pytest.approx(1.15)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"p": [0.5, 1.2]}, "p must lie in"),
        ({"c": [0.5, -0.1]}, "c must lie in"),
        ({"r": [-1.0, 1.0]}, "r must be >= 0"),
        ({"p": [np.nan, 0.5]}, "p must be finite"),
        ({"r": [1.0]}, "one shape"),
        ({"cap": 0}, "cap must be an integer >= 1"),
        ({"cap": 1.5}, "cap must be an integer >= 1"),
        ({"is_eligible": np.array([True])}, r"is_eligible must have shape \(2,\)"),
        ({"is_eligible": np.array([1, 0])}, "is_eligible must be a boolean array"),
    ],
)
def test_bad_inputs_raise_naming_the_argument(kwargs, match):
    args = {"p": [0.5, 0.5], "r": [1.0, 1.0], "c": [0.5, 0.5]} | kwargs
    with pytest.raises(ValueError, match=match):
        cascade_order(np.array(args["p"]), np.array(args["r"]), np.array(args["c"]),
                      cap=args.get("cap"), is_eligible=args.get("is_eligible"))


@pytest.mark.parametrize("function", ["capped_order", "brute_force_order", "greedy_order"])
def test_every_ordering_function_checks_the_mask_length(function):
    p, r, c = np.full(3, 0.5), np.ones(3), np.full(3, 0.5)
    bad = np.array([True, False])
    with pytest.raises(ValueError, match="is_eligible must have shape"):
        if function == "capped_order":
            capped_order(p, r, c, 2, bad)
        elif function == "brute_force_order":
            brute_force_order(p, r, c, None, bad)
        else:
            greedy_order(lambda t, s: StepProbabilities(p, r, c), 3, is_eligible=bad)


def test_empty_eligible_row_raises():
    with pytest.raises(ValueError, match="no eligible item"):
        best_next(
            np.ones((1, 2)) / 2, np.ones((1, 2)), np.ones((1, 2)) / 2, np.zeros((1, 2), dtype=bool)
        )


def test_brute_force_refuses_large_inputs():
    with pytest.raises(ValueError, match="at most 8"):
        brute_force_order(np.full(9, 0.5), np.ones(9), np.full(9, 0.5))
