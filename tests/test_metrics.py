"""Metrics: hand-computed values, the tie rule, a naive reference, list/score parity, errors."""

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import seqrec.metrics as metrics_module
from seqrec.data import Sequences
from seqrec.evaluation import evaluate_lists, evaluate_scores
from seqrec.metrics import (
    NOT_RETRIEVED,
    ItemPopularity,
    item_popularity,
    lists_from_top_k,
    target_ranks,
)
from seqrec.rank import tie_keys, top_k

INF = float("inf")


def _seqs(rows: list[list[int]]) -> Sequences:
    lengths = np.array([len(r) for r in rows], dtype=np.int64)
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    items = np.array([x for r in rows for x in r], dtype=np.int64)
    return Sequences(items, offsets, np.arange(len(rows)), np.zeros(len(items), np.int64))


def _scores(rows: list[list[float]]) -> np.ndarray:
    """Prepend the PAD column (-inf) to per-item scores."""
    return np.array([[-INF] + r for r in rows], dtype=np.float32)


def test_hit_at_rank_two():
    report = evaluate_scores(_scores([[0.9, 0.5, 0.1, 0.7]]), _seqs([[4]]), n_items=4, k=3)
    assert report.means["ndcg@3"] == pytest.approx(1 / math.log2(3), abs=1e-5)  # 0.63093
    assert report.means["mrr@3"] == pytest.approx(0.5)
    assert report.means["hit_rate@3"] == 1.0
    assert report.means["recall@3"] == 1.0
    assert report.means["precision@3"] == pytest.approx(1 / 3)
    assert report.means["map@3"] == pytest.approx(0.5)
    assert report.means["coverage@3"] == pytest.approx(3 / 4)


def test_two_targets_written_out():
    # scores decrease with item index: targets 2 and 5 sit at ranks 2 and 5
    scores = _scores([[0.9, 0.8, 0.7, 0.6, 0.5, 0.4]])
    report = evaluate_scores(scores, _seqs([[2, 5]]), n_items=6, k=[3, 5])
    m = report.means
    assert m["ndcg@3"] == pytest.approx(0.63093 / 1.63093, abs=1e-4)  # 0.38685
    assert m["recall@3"] == 0.5 and m["hit_rate@3"] == 1.0
    assert m["precision@3"] == pytest.approx(1 / 3)
    assert m["mrr@3"] == 0.5
    assert m["map@3"] == pytest.approx(0.25)  # (1/2) * (1/2)
    assert m["ndcg@5"] == pytest.approx((0.63093 + 1 / math.log2(6)) / 1.63093, abs=1e-4)  # 0.62405
    assert m["map@5"] == pytest.approx(0.45)  # (1/2) * (1/2 + 2/5)
    assert m["recall@5"] == 1.0 and m["precision@5"] == pytest.approx(0.4)
    assert report.per_user["n_targets"].tolist() == [2]


def _key(item: int) -> int:
    return int(tie_keys(torch.tensor(item)))


def test_tie_keys_written_out():
    # (i * 2654435761) mod 2**32
    assert [_key(i) for i in (1, 2, 3, 5)] == [2654435761, 1013904226, 3668339987, 387276917]


def test_constant_scores_rank_items_in_the_fixed_tie_order():
    scores = np.zeros((3, 6), dtype=np.float32)
    scores[:, 0] = -INF
    # keys of items 1..5: 2654435761, 1013904226, 3668339987, 2027808452, 387276917
    order = sorted(range(1, 6), key=_key)
    assert order == [5, 2, 4, 1, 3]
    assert target_ranks(scores, _seqs([[1], [3], [5]])).tolist() == [4, 5, 1]
    report = evaluate_scores(scores, _seqs([[2], [3], [5]]), n_items=5, k=1)
    assert report.means["hit_rate@1"] == pytest.approx(1 / 3)  # item 5 is first, for everyone
    # a single eligible item is a hit
    single = np.array([[-INF, 0.0, -INF, -INF]], dtype=np.float32)
    assert evaluate_scores(single, _seqs([[1]]), n_items=3, k=1).means["hit_rate@1"] == 1.0


def test_a_constant_scorer_cannot_exploit_items_whose_ids_carry_popularity():
    # every target is one of the 10 lowest indices (ids in order of popularity, say): ranking
    # ties by index would hit them all; the fixed hashed order does not
    n_items, n_users = 1000, 500
    rng = np.random.default_rng(0)
    scores = np.zeros((n_users, n_items + 1), dtype=np.float32)
    scores[:, 0] = -INF
    targets = _seqs([[int(rng.integers(1, 11))] for _ in range(n_users)])
    report = evaluate_scores(scores, targets, n_items=n_items, k=10)
    assert report.means["hit_rate@10"] < 0.05


def test_tied_targets_take_their_place_in_the_tie_order():
    scores = np.zeros((1, 5))
    scores[0, 0] = -INF
    # everything ties: items in tie order 2, 4, 1, 3 (5 is not in this catalogue)
    assert target_ranks(scores, _seqs([[3, 2, 3]])).tolist() == [4, 1, 4]


def test_ranks_of_rows_with_several_targets_beside_an_empty_row():
    # row 1 has no targets; row 0 has two: chunks must not read row 1's scores for row 0
    scores = _scores([[0.9, 0.8, 0.1], [0.0, 0.0, 0.0], [0.5, 0.4, 0.3]])
    targets = _seqs([[1, 3], [], [2]])
    assert target_ranks(scores, targets).tolist() == [1, 3, 2]


def test_duplicate_targets_count_once():
    scores = _scores([[0.9, 0.8, 0.7, 0.6]])
    once = evaluate_scores(scores, _seqs([[2, 4]]), n_items=4, k=2)
    twice = evaluate_scores(scores, _seqs([[2, 4, 2, 2]]), n_items=4, k=2)
    assert once.means == twice.means
    assert twice.per_user["n_targets"].tolist() == [2]


def test_masked_target_is_never_retrieved():
    scores = _scores([[-INF, 0.5, 0.1]])
    assert target_ranks(scores, _seqs([[1]])).tolist() == [NOT_RETRIEVED]
    report = evaluate_scores(scores, _seqs([[1]]), n_items=3, k=10)
    assert report.means["hit_rate@10"] == 0.0 and report.means["mrr@10"] == 0.0


def test_top_k_skips_masked_items_and_pad():
    scores = _scores([[0.1, -INF, 0.3], [-INF, -INF, -INF]])
    lists = lists_from_top_k(top_k(torch.from_numpy(scores), 3))
    assert [lists.row(i).tolist() for i in range(2)] == [[3, 1], []]


def test_pad_or_out_of_range_items_raise():
    scores = _scores([[0.1, 0.2]])
    with pytest.raises(ValueError, match="outside 1..2"):
        evaluate_scores(scores, _seqs([[0]]), n_items=2)
    with pytest.raises(ValueError, match="outside 1..2"):
        evaluate_scores(scores, _seqs([[3]]), n_items=2)
    with pytest.raises(ValueError, match="outside 1..2"):
        evaluate_lists(np.array([[0, 1]]), _seqs([[1]]), n_items=2)
    with pytest.raises(ValueError, match="same item twice"):
        evaluate_lists(np.array([[1, 1]]), _seqs([[1]]), n_items=2)
    with pytest.raises(ValueError, match=r"shape \(n_rows, 4\), got \(1, 3\)"):
        evaluate_scores(scores, _seqs([[1]]), n_items=3)
    with pytest.raises(ValueError, match="empty"):
        evaluate_scores(scores, _seqs([[]]), n_items=2)
    with pytest.raises(ValueError, match="unknown metrics"):
        evaluate_scores(scores, _seqs([[1]]), n_items=2, metrics=["auc"])
    with pytest.raises(ValueError, match="need item_popularity"):
        evaluate_scores(scores, _seqs([[1]]), n_items=2, metrics=["arp"])


def test_beyond_accuracy_written_out():
    train = _seqs([[1, 2, 1], [1, 3], [1]])  # item 1 in 3 of 3 users, 2 in 1, 3 in 1, 4 in none
    popularity = item_popularity(train, n_items=4)
    assert popularity.share.tolist() == pytest.approx([0, 1, 1 / 3, 1 / 3, 0])
    lists = np.array([[1, 2], [1, 4]])
    report = evaluate_lists(lists, _seqs([[2], [3]]), n_items=4, k=2, item_popularity=popularity)
    assert report.means["coverage@2"] == pytest.approx(3 / 4)
    assert report.means["arp@2"] == pytest.approx(((1 + 1 / 3) / 2 + (1 + 0) / 2) / 2)
    # item 4 (never seen) counts as seen by one of 3 users
    novelty_user0 = (0 + math.log2(3)) / 2
    novelty_user1 = (0 + math.log2(3)) / 2
    assert report.means["novelty@2"] == pytest.approx((novelty_user0 + novelty_user1) / 2)


def test_torch_and_numpy_scores_agree_and_chunking_does_not_matter(monkeypatch):
    rng = np.random.default_rng(1)
    scores = rng.integers(0, 4, size=(7, 9)).astype(np.float32)  # many ties
    scores[:, 0] = -INF
    targets = _seqs([list(rng.integers(1, 9, size=rng.integers(1, 4))) for _ in range(7)])
    expected = target_ranks(scores, targets)
    assert (target_ranks(torch.from_numpy(scores), targets) == expected).all()
    monkeypatch.setattr(metrics_module, "_CHUNK_ELEMENTS", 10)
    assert (target_ranks(scores, targets) == expected).all()
    assert (target_ranks(torch.from_numpy(scores).to(torch.bfloat16), targets) == expected).all()


# ----------------------------------------------------------------------------------------------
# a naive per-user pure-Python reference


def _naive_rank(s: list[float], target_set: set[int], t: int) -> int:
    """Position of ``t`` when items are sorted by (-score, tie key); ``target_set`` unused."""
    if s[t] == -INF:
        return NOT_RETRIEVED
    order = sorted(range(1, len(s)), key=lambda j: (-s[j], _key(j)))
    return order.index(t) + 1


def _naive_metrics(s: list[float], targets: list[int], k: int) -> dict[str, float]:
    distinct = list(dict.fromkeys(targets))
    ranks = sorted(_naive_rank(s, set(distinct), t) for t in distinct)
    hits = [r for r in ranks if r <= k]
    n = len(distinct)
    ideal = sum(1 / math.log2(i + 1) for i in range(1, min(n, k) + 1))
    return {
        "ndcg": sum(1 / math.log2(r + 1) for r in hits) / ideal,
        "recall": len(hits) / n,
        "hit_rate": float(bool(hits)),
        "precision": len(hits) / k,
        "mrr": 1 / ranks[0] if ranks[0] <= k else 0.0,
        "map": sum((i + 1) / r for i, r in enumerate(hits)) / min(n, k),
    }


@st.composite
def _problem(draw):
    n_items = draw(st.integers(1, 8))
    n_rows = draw(st.integers(1, 5))
    value = st.sampled_from([-INF, 0.0, 0.5, 1.0, 2.0])
    scores = [[-INF] + [draw(value) for _ in range(n_items)] for _ in range(n_rows)]
    item = st.integers(1, n_items)
    targets = [draw(st.lists(item, min_size=1, max_size=4)) for _ in range(n_rows)]
    k = draw(st.integers(1, n_items + 1))
    return scores, targets, k, n_items


@settings(max_examples=200, deadline=None)
@given(_problem())
def test_matches_naive_reference(problem):
    scores, targets, k, n_items = problem
    report = evaluate_scores(np.array(scores), _seqs(targets), n_items=n_items, k=k)
    for row, (s, t) in enumerate(zip(scores, targets, strict=True)):
        expected = _naive_metrics(s, t, k)
        for name, value in expected.items():
            assert report.per_user[f"{name}@{k}"].iloc[row] == pytest.approx(value, abs=1e-9)
    flat = [_naive_rank(s, set(t), x) for s, t in zip(scores, targets, strict=True) for x in t]
    assert target_ranks(np.array(scores), _seqs(targets)).tolist() == flat


@settings(max_examples=100, deadline=None)
@given(st.integers(2, 30), st.integers(1, 6), st.integers(1, 12), st.integers(0, 10_000))
def test_lists_and_scores_agree_ties_included(n_items, n_rows, k, seed):
    rng = np.random.default_rng(seed)
    scores = rng.integers(0, 4, (n_rows, n_items + 1)).astype(np.float64)  # many ties
    scores[:, 0] = -INF
    scores[rng.random(scores.shape) < 0.2] = -INF  # some masked items
    targets = _seqs(
        [list(rng.integers(1, n_items + 1, size=rng.integers(1, 4))) for _ in range(n_rows)]
    )
    popularity = ItemPopularity(np.concatenate([[0.0], rng.integers(0, 5, n_items) / 4]), n_users=4)
    by_scores = evaluate_scores(scores, targets, n_items=n_items, k=k, item_popularity=popularity)
    lists = lists_from_top_k(top_k(torch.from_numpy(scores), k))
    by_lists = evaluate_lists(lists, targets, n_items=n_items, k=k, item_popularity=popularity)
    assert by_scores.means.keys() == by_lists.means.keys()
    for name, value in by_scores.means.items():
        assert by_lists.means[name] == pytest.approx(value, abs=1e-12, nan_ok=True), name


def test_debiased_metrics_count_a_capped_popular_item_once():
    from seqrec.evaluation import evaluate_score_blocks

    # 10 users hold item 1 (ranked first for everyone), 6 users hold one of items 2..7 (ranked 5th)
    scores = np.full((16, 8), 0.0, dtype=np.float32)
    scores[:, 0] = -INF
    scores[:, 1] = 9.0
    scores[:, 2:8] = 1.0
    scores[:, 0 + 1] = 9.0
    for row in range(10, 16):  # their item ranks 5th: 1, then three others above it
        scores[row, 2:8] = 0.5
        scores[row, [2, 3, 4][:3]] = 2.0
        scores[row, row - 8] = 1.5
    targets = _seqs([[1]] * 10 + [[i] for i in range(2, 8)])
    report = evaluate_score_blocks([torch.from_numpy(scores)], targets, n_items=7, k=1,
                                   metrics=("hit_rate",), debiased=(1.5, 0))
    # counts [10, 1 x 6]: Q1 = Q3 = 1, fence 1: item 1 keeps one of its 10 users
    assert report.means["hit_rate@1"] == pytest.approx(10 / 16)
    assert report.means["dhit_rate@1"] == pytest.approx(1 / 7)
    assert report.means["dndcg@1"] == pytest.approx(1 / 7)


def test_evaluate_asks_each_row_at_its_first_held_out_event_time():
    # two users: history times (10, 20) then held-out events at 500 and 900; history (5) then 7
    from seqrec.data import HeldOut
    from seqrec.evaluation import evaluate, request_times

    histories = Sequences(np.array([1, 2, 3]), np.array([0, 2, 3]), np.array([0, 1]),
                          np.array([10, 20, 5]))
    targets = Sequences(np.array([3, 4, 1]), np.array([0, 2, 3]), np.array([0, 1]),
                        np.array([500, 900, 7]))
    asked: list[list[int]] = []

    class Recorder:  # ranks 3, 4, 2, 1: user 0 hits both its targets in the top 2, user 1 none
        n_items = 4

        def encode_histories(self, items, offsets, rows, timestamps=None, query_times=None):
            asked.append(np.asarray(query_times).tolist())
            return torch.zeros(len(rows), 1)

        def score_items(self, hidden, start=0, stop=None):
            scores = torch.tensor([[-math.inf, 0.1, 0.2, 0.9, 0.3]]).repeat(len(hidden), 1)
            return scores[:, start:stop]

    Recorder.histories = histories
    report = evaluate(Recorder(), HeldOut(histories, targets), k=2, metrics=("recall",),
                      filter_viewed=False)
    assert request_times(histories, targets).tolist() == [500, 7]
    # rows are scored shortest history first: user 1 (asked at 7), then user 0 (at 500)
    assert sorted(x for call in asked for x in call) == [7, 500]
    assert report.means["recall@2"] == pytest.approx((2 / 2 + 0 / 1) / 2)
    no_targets = Sequences(np.array([4]), np.array([0, 1, 1]), np.array([0, 1]), np.array([30]))
    assert request_times(histories, no_targets).tolist() == [30, 6]  # none: last event + 1
