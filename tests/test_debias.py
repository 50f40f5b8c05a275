"""Debiased targets: Tukey's fence over per-item target counts, hand-computed."""

import numpy as np
import pytest

from seqrec.data import Sequences
from seqrec.data.debias import debias_targets


def _seqs(rows):
    lengths = [len(r) for r in rows]
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    items = np.array([x for r in rows for x in r], dtype=np.int64)
    return Sequences(items, offsets, np.arange(len(rows)), np.zeros(len(items), np.int64))


def test_a_popular_item_is_capped_at_the_fence_and_the_rest_is_kept():
    # counts per item: 1 -> 10 users, 2..5 -> 1 user each: counts [10, 1, 1, 1, 1]
    # Q1 = 1, Q3 = 1 (linear), IQR = 0, fence = int(1 + 1.5 * 0) = 1
    rows = [[1] for _ in range(10)] + [[2], [3], [4], [5]]
    result = debias_targets(_seqs(rows), seed=0)
    assert result.border == 1 and result.n_items_capped == 1 and result.n_targets_dropped == 9
    kept = np.array([x for r in rows for x in r])[result.keep]
    assert sorted(kept.tolist()) == [1, 2, 3, 4, 5]


def test_the_fence_uses_linearly_interpolated_quartiles():
    # counts [1, 2, 3, 4, 20]: Q1 = 2, Q3 = 4, IQR = 2, fence = int(4 + 3) = 7 -> item 5 keeps 7
    rows = []
    for item, count in zip([1, 2, 3, 4, 5], [1, 2, 3, 4, 20], strict=True):
        rows += [[item] for _ in range(count)]
    result = debias_targets(_seqs(rows), iqr_coef=1.5, seed=3)
    assert result.border == 7 and result.n_targets_dropped == 13
    assert int(result.keep[np.array([r[0] for r in rows]) == 5].sum()) == 7
    assert debias_targets(_seqs(rows), iqr_coef=0.0).border == 4  # iqr_coef 0 caps at Q3


def test_the_subset_depends_only_on_the_seed():
    rows = [[1, 2] for _ in range(60)] + [[i] for i in range(3, 15)]  # fence 1: items 1, 2 capped
    a, b = debias_targets(_seqs(rows), seed=7), debias_targets(_seqs(rows), seed=7)
    assert np.array_equal(a.keep, b.keep)
    assert not np.array_equal(a.keep, debias_targets(_seqs(rows), seed=8).keep)


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="iqr_coef"):
        debias_targets(_seqs([[1]]), iqr_coef=-1)
    with pytest.raises(ValueError, match="no targets"):
        debias_targets(_seqs([[]]))
