"""Pareto front and its plot (seqrec.report), on hand-made points."""

import numpy as np
import pytest

from seqrec.report import pareto_front, plot_front


def test_pareto_front_by_hand() -> None:
    # (ndcg, coverage): b trades accuracy for coverage, c is beaten by a on both
    points = [[0.10, 0.20], [0.08, 0.50], [0.07, 0.10], [0.10, 0.05]]
    assert pareto_front(points).tolist() == [True, True, False, False]


def test_equal_points_are_both_on_the_front_and_nan_never() -> None:
    points = np.array([[0.1, 0.3], [0.1, 0.3], [np.nan, 0.9], [0.05, 0.1]])
    assert pareto_front(points).tolist() == [True, True, False, False]


def test_pareto_front_matches_a_naive_loop() -> None:
    rng = np.random.default_rng(0)
    points = rng.integers(0, 5, size=(40, 3)).astype(float)
    naive = [not any((q >= p).all() and (q > p).any() for q in points) for p in points]
    assert pareto_front(points).tolist() == naive


def test_pareto_front_rejects_a_flat_array() -> None:
    with pytest.raises(ValueError, match="shape"):
        pareto_front([0.1, 0.2])


def test_plot_front_writes_the_image(tmp_path) -> None:
    path = plot_front(["a", "b", "c"], [0.2, 0.5, 0.1], [0.10, 0.08, 0.07],
                      [True, True, False], tmp_path / "front.svg")
    assert path.read_text().lstrip().startswith("<?xml")
    assert [p.name for p in tmp_path.iterdir()] == ["front.svg"]
