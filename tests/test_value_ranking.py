"""Cascade ranking: hand-computed values, brute-force parity, edge cases, greedy policy."""

import numpy as np
import pytest

from seqrec.value.ranking import (
    StepProbabilities,
    best_next,
    brute_force_order,
    cascade_keys,
    cascade_order,
    expected_revenue,
    greedy_order,
)


def test_expected_revenue_hand_computed():
    p, r, c = np.array([0.5, 0.9]), np.array([2.0, 1.0]), np.array([0.5, 0.8])
    # order (0, 1): 2*0.5 + 0.5 * 1*0.9 = 1.45; order (1, 0): 0.9 + 0.8 * 1.0 = 1.7
    assert expected_revenue(p, r, c, np.array([0, 1])) == pytest.approx(1.45)
    assert expected_revenue(p, r, c, np.array([1, 0])) == pytest.approx(1.7)
    # keys: 1.0 / 0.5 = 2.0 and 0.9 / 0.2 = 4.5 -> item 1 first
    assert cascade_keys(p, r, c) == pytest.approx([2.0, 4.5])
    assert cascade_order(p, r, c).tolist() == [1, 0]


@pytest.mark.parametrize("n", range(1, 8))
def test_cascade_order_matches_brute_force(n):
    rng = np.random.default_rng(n)
    for _ in range(20 if n < 7 else 3):
        p, r, c = rng.random(n), rng.exponential(1.0, n), rng.random(n)
        if rng.random() < 0.3:
            c[rng.integers(n)] = 1.0  # never-ending items
        _, best = brute_force_order(p, r, c)
        assert expected_revenue(p, r, c, cascade_order(p, r, c)) == pytest.approx(best, rel=1e-12)


def test_items_that_never_end_the_session_go_first_ordered_by_value():
    p = np.array([0.9, 0.5, 0.5, 0.1])
    r = np.array([10.0, 1.0, 3.0, 1.0])
    c = np.array([0.0, 1.0, 1.0, 0.5])
    keys = cascade_keys(p, r, c)
    assert np.isinf(keys[1]) and np.isinf(keys[2])
    assert cascade_order(p, r, c).tolist() == [2, 1, 0, 3]


def test_ties_keep_input_order():
    p, r, c = np.full(4, 0.5), np.ones(4), np.full(4, 0.5)
    assert cascade_order(p, r, c).tolist() == [0, 1, 2, 3]
    assert best_next(p[None], r[None], c[None], np.array([[False, True, True, True]])).tolist() == [
        1
    ]


def test_best_next_batched_agrees_with_order():
    rng = np.random.default_rng(0)
    p, r, c = rng.random((50, 6)), rng.exponential(1.0, (50, 6)), rng.random((50, 6))
    c[:10, 2] = 1.0
    eligible = np.ones((50, 6), dtype=bool)
    expected = [cascade_order(p[i], r[i], c[i])[0] for i in range(50)]
    assert best_next(p, r, c, eligible).tolist() == expected


def test_greedy_equals_index_order_when_position_does_not_matter():
    rng = np.random.default_rng(1)
    p, r, c = rng.random(6), rng.exponential(1.0, 6), rng.random(6)
    order = greedy_order(lambda position, shown: StepProbabilities(p, r, c), 6)
    assert order.tolist() == cascade_order(p, r, c).tolist()


def test_greedy_rescoring_uses_position():
    # Item 0 is worth a lot only at position 1; item 1 is constant.
    def predict(position, shown):
        p0 = 0.9 if position == 1 else 0.01
        return StepProbabilities(np.array([p0, 0.5]), np.array([1.0, 1.0]), np.array([0.5, 0.5]))

    assert greedy_order(predict, 2).tolist() == [0, 1]


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"p": [0.5, 1.2]}, "p must lie in"),
        ({"c": [0.5, -0.1]}, "c must lie in"),
        ({"r": [-1.0, 1.0]}, "r must be >= 0"),
        ({"p": [np.nan, 0.5]}, "p must be finite"),
        ({"r": [1.0]}, "one shape"),
    ],
)
def test_bad_inputs_raise_naming_parameter(kwargs, match):
    args = {"p": [0.5, 0.5], "r": [1.0, 1.0], "c": [0.5, 0.5]} | kwargs
    with pytest.raises(ValueError, match=match):
        cascade_order(np.array(args["p"]), np.array(args["r"]), np.array(args["c"]))


def test_empty_eligible_row_raises():
    with pytest.raises(ValueError, match="no eligible item"):
        best_next(
            np.ones((1, 2)) / 2, np.ones((1, 2)), np.ones((1, 2)) / 2, np.zeros((1, 2), dtype=bool)
        )


def test_brute_force_refuses_large_inputs():
    with pytest.raises(ValueError, match="at most 8"):
        brute_force_order(np.full(9, 0.5), np.ones(9), np.full(9, 0.5))
