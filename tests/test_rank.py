"""The one ranking path (rank.py): masks written out, top-K against a sorted reference under the
tie rule (ties included), NaN refused, block ranking with a fallback in the caller's order."""

import math

import numpy as np
import pytest
import torch
from conftest import csr
from hypothesis import given, settings
from hypothesis import strategies as st

from seqrec import rank
from seqrec.errors import ScoringError
from seqrec.filters import Filters, ItemSets, apply_filters, item_mask
from seqrec.rank import GROUP, merge_top_k, rank_rows, tie_keys, top_k

INF = float("inf")


def _sets(rows: list[list[int]]) -> ItemSets:
    return ItemSets(*csr(rows))


def test_seen_items_are_masked_per_row_through_a_view():
    seen = _sets([[1, 3], [], [2, 2, 4]]).select(np.array([2, 0]))
    scores = torch.zeros(2, 5)
    apply_filters(scores, Filters(seen=seen))
    assert scores.tolist() == [[-INF, 0, -INF, 0, -INF], [-INF, -INF, 0, -INF, 0]]


def test_shared_include_and_exclude_masks_and_pad():
    scores = torch.arange(12, dtype=torch.float32).reshape(2, 6)
    apply_filters(scores, Filters(include=item_mask(5, [1, 2, 3]), exclude=item_mask(5, [2])))
    assert scores.tolist() == [[-INF, 1, -INF, 3, -INF, -INF], [-INF, 7, -INF, 9, -INF, -INF]]


def test_per_row_include_lists_apply_only_to_their_rows_and_an_empty_one_allows_nothing():
    scores = torch.ones(3, 4)
    include = _sets([[2], [], [1]])
    apply_filters(scores, Filters(include=include, include_rows=np.array([True, True, False])))
    assert scores.tolist() == [[-INF, -INF, 1, -INF], [-INF] * 4, [-INF, 1, 1, 1]]


def test_per_row_filters_must_match_the_rows():
    with pytest.raises(ValueError, match="2 rows for 3"):
        apply_filters(torch.zeros(3, 4), Filters(seen=_sets([[1], [2]])))


def _reference(row: list[float], k: int) -> list[int]:
    eligible = [i for i in range(1, len(row)) if row[i] > -INF]
    order = sorted(eligible, key=lambda i: (-row[i], int(tie_keys(torch.tensor(i)))))
    return order[:k]


@settings(max_examples=200, deadline=None)
@given(st.integers(1, 30), st.integers(1, 6), st.integers(1, 35), st.integers(0, 10_000))
def test_top_k_equals_a_sorted_reference_ties_and_masks_included(n_items, n_rows, k, seed):
    rng = np.random.default_rng(seed)
    scores = torch.from_numpy(rng.integers(0, 3, (n_rows, n_items + 1)).astype(np.float32))
    scores[torch.from_numpy(rng.random((n_rows, n_items + 1)) < 0.2)] = -INF
    scores[:, 0] = -INF
    best = top_k(scores, k)
    assert best.items.shape == (n_rows, min(k, n_items))
    for row in range(n_rows):
        expected = _reference(scores[row].tolist(), k)
        got = best.items[row].tolist()
        assert got[: len(expected)] == expected
        assert all(i == 0 for i in got[len(expected):])
        assert all(math.isinf(s) for s in best.scores[row, len(expected):].tolist())


def test_top_k_width_is_capped_by_the_catalogue_and_k_below_one_raises():
    assert top_k(torch.zeros(1, 4), 10).items.shape == (1, 3)
    with pytest.raises(ValueError, match="k=0"):
        top_k(torch.zeros(1, 4), 0)


@pytest.mark.parametrize("bad", [float("nan"), INF])
def test_nan_or_positive_infinite_scores_are_refused(bad):
    scores = torch.zeros(3, 6)
    scores[1, 4] = bad
    with pytest.raises(ScoringError, match=r"rows \[1\]"):
        top_k(scores, 2)


def _sorted_reference(scores: torch.Tensor, k: int, start: int = 0) -> list[list[int]]:
    """Each row's eligible items by score, then tie key (numpy lexsort), cut at ``k``."""
    items = np.arange(start, start + scores.shape[1])
    keys = tie_keys(torch.from_numpy(items)).numpy()
    out = []
    for row in scores.numpy():
        order = np.lexsort((keys, -row))
        out.append([int(items[j]) for j in order if row[j] > -INF and items[j] != 0][:k])
    return out


@settings(max_examples=40, deadline=None)
@given(st.sampled_from(["three levels", "one decimal", "mostly masked"]), st.integers(1, 20),
       st.integers(0, GROUP - 1), st.sampled_from([0, 1, 777]), st.integers(0, 10_000))
def test_top_k_on_wide_rows_takes_two_stages_and_equals_a_sorted_reference(kind, k, tail, start,
                                                                          seed):
    rng = np.random.default_rng(seed)
    width = 4 * (k + 1) * GROUP + tail  # wide enough for the grouped first stage
    if kind == "three levels":  # a tie straddles the cut in nearly every row
        values = rng.integers(0, 3, (5, width)).astype(np.float32)
    else:
        values = np.round(rng.normal(size=(5, width)), 1).astype(np.float32)
    if kind == "mostly masked":  # some rows hold fewer than k eligible items
        values[rng.random((5, width)) < 0.998] = -INF
    if start == 0:
        values[:, 0] = -INF  # PAD, as the masks leave it
    scores = torch.from_numpy(values)
    best = top_k(scores.clone(), k, start)
    for row, expected in enumerate(_sorted_reference(scores, k, start)):
        got = best.items[row].tolist()
        assert got[: len(expected)] == expected
        assert all(i == 0 for i in got[len(expected):])


@pytest.mark.parametrize("bad", [float("nan"), INF])
@pytest.mark.parametrize("column", [5, 4 * 11 * GROUP + 3])  # in a group / in the ragged tail
def test_nan_or_positive_infinite_scores_are_refused_on_wide_rows(bad, column):
    scores = torch.zeros(3, 4 * 11 * GROUP + 7)
    scores[2, column] = bad
    with pytest.raises(ScoringError, match=r"rows \[2\]"):
        top_k(scores, 10)


class _Scorer:
    """Rows score items by ``item × (1 + row)``: every row prefers high indices."""

    def __init__(self):
        self.encoded = []

    def encode(self, rows):
        self.encoded.append(rows.tolist())
        return torch.tensor(rows, dtype=torch.float32)[:, None]

    def score(self, query, start, stop):
        scores = torch.arange(start, stop, dtype=torch.float32) * (1 + query)
        if start == 0:
            scores[:, 0] = -INF
        return scores


def test_rank_rows_scores_in_length_blocks_ranks_fallback_rows_by_popularity_in_caller_order():
    scorer = _Scorer()
    fallback_scores = torch.tensor([-INF, 5.0, 4.0, 3.0, 2.0, 1.0])  # prefers low indices
    best = rank_rows(scorer, 4, 5, 2, Filters(exclude=item_mask(5, [5])),
                     lengths=np.array([3, 1, 9, 2]), fallback=np.array([False, True, False, False]),
                     fallback_scores=fallback_scores, batch_size=2)
    assert scorer.encoded == [[3, 0], [2]]  # shortest histories first; the fallback row never
    assert best.items.tolist() == [[4, 3], [1, 2], [4, 3], [4, 3]]


class TableScorer:
    """A :class:`~seqrec.rank.RowScorer` over a fixed ``(n_rows, n_items + 1)`` score table."""

    def __init__(self, table):
        self.table = table

    def encode(self, rows):
        return torch.from_numpy(rows)

    def score(self, query, start, stop):
        scores = self.table[query, start:stop].clone()
        if start == 0:
            scores[:, 0] = -INF
        return scores


@settings(max_examples=100, deadline=None)
@given(st.integers(1, 40), st.integers(1, 5), st.integers(1, 45), st.integers(1, 17),
       st.integers(0, 10_000))
def test_chunked_ranking_equals_one_pass_ties_and_filters_included(n_items, n_rows, k, chunk,
                                                                   seed):
    rng = np.random.default_rng(seed)
    table = torch.from_numpy(rng.integers(0, 3, (n_rows, n_items + 1)).astype(np.float32))

    seen = ItemSets.from_lists([list(rng.integers(1, n_items + 1, 3)) for _ in range(n_rows)])
    filters = Filters(seen=seen, exclude=item_mask(n_items, [n_items]))
    whole = rank_rows(TableScorer(table), n_rows, n_items, k, filters, chunk=n_items + 1)
    chunked = rank_rows(TableScorer(table), n_rows, n_items, k, filters, chunk=chunk)
    assert chunked.items.tolist() == whole.items.tolist()
    assert torch.equal(chunked.scores, whole.scores)


def test_merging_two_lists_equals_one_top_k_over_both():
    scores = torch.tensor([[-INF, 1.0, 3.0, 3.0, 0.5, 3.0, 2.0]])
    both = top_k(scores, 3)
    merged = merge_top_k(top_k(scores[:, :4], 3), top_k(scores[:, 4:], 3, start=4), 3)
    assert merged.items.tolist() == both.items.tolist()


def test_ranking_in_small_tiles_equals_one_pass_ties_and_filters_included(monkeypatch):
    rng = np.random.default_rng(0)
    n_rows, n_items = 100, 3000
    table = torch.from_numpy(rng.integers(0, 4, (n_rows, n_items + 1)).astype(np.float32))

    seen = ItemSets.from_lists([list(rng.integers(1, n_items + 1, 30)) for _ in range(n_rows)])
    filters = Filters(seen=seen, exclude=item_mask(n_items, [7, n_items]))
    lengths = rng.integers(1, 50, n_rows)
    whole = rank_rows(TableScorer(table), n_rows, n_items, 10, filters, lengths=lengths, batch_size=n_rows,
                      chunk=n_items + 1)
    monkeypatch.setattr(rank, "TILE_BYTES", 1)  # tiles of 32 rows by 1,024 items
    assert rank.tile_shape(n_items, 64) == (32, 1024)
    tiled = rank_rows(TableScorer(table), n_rows, n_items, 10, filters, lengths=lengths, batch_size=64)
    assert tiled.items.tolist() == whole.items.tolist()
    assert torch.equal(tiled.scores, whole.scores)
