"""Filters before top-K (recommend.py) and the recommender contract (recommender.py): exactly
min(k, eligible) items, filters respected, one score_block call per block, unknown users/items."""

import math

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import csr, small_config

from seqrec import PopularRecommender, SequentialRecommender
from seqrec.recommend import apply_filters, item_mask, mask_seen, top_k

INF = float("inf")


# ---- recommend.py on hand-written scores --------------------------------------------------------
def test_mask_seen_written_out():
    items, offsets = csr([[1, 3], [], [2, 2, 4]])
    scores = torch.zeros(2, 5)
    mask_seen(scores, items, offsets, np.array([2, 0]))
    assert scores.tolist() == [[0, 0, -INF, 0, -INF], [0, -INF, 0, -INF, 0]]


def test_apply_filters_include_exclude_and_pad():
    scores = torch.arange(12, dtype=torch.float32).reshape(2, 6)
    apply_filters(scores, include=item_mask(5, np.array([1, 2, 3])), exclude=item_mask(5, np.array([2])))
    assert scores.tolist() == [[-INF, 1, -INF, 3, -INF, -INF], [-INF, 7, -INF, 9, -INF, -INF]]


def test_top_k_equals_a_sorted_reference_and_pads_rows_with_few_eligible_items():
    generator = torch.Generator().manual_seed(0)
    scores = torch.randn(20, 31, generator=generator)
    scores[:, 0] = -INF
    scores[3, 5:] = -INF  # row 3: only items 1..4 eligible
    best = top_k(scores, 10)
    for row in range(20):
        order = sorted(range(1, 31), key=lambda i: -scores[row, i].item())[:10]
        eligible = [i for i in order if math.isfinite(scores[row, i].item())]
        assert best.items[row, : len(eligible)].tolist() == eligible
        assert (best.items[row, len(eligible) :] == 0).all()
    assert best.items.shape == (20, 10) and not (best.items[:, :4] == 0).any()


def test_top_k_width_is_capped_by_the_catalogue_and_k_below_one_raises():
    assert top_k(torch.zeros(1, 4), 10).items.shape == (1, 3)
    with pytest.raises(ValueError, match="k=0"):
        top_k(torch.zeros(1, 4), 0)


# ---- the recommender contract, for every kind of recommender --------------------------------------
@pytest.fixture(scope="module", params=["esasrec", "bert4rec", "popular"])
def fitted(request, pattern):
    dataset, split = pattern
    if request.param == "popular":
        model = PopularRecommender()
    else:
        model = SequentialRecommender(small_config(request.param, epochs=10))
    model.fit(dataset, split.train)
    return model


def _history(model, user) -> set:
    row = int(np.flatnonzero(model.histories.users == model.user_index.to_index([user])[0])[0])
    return set(model.catalogue.to_external(model.histories.row(row)).tolist())


def test_exactly_min_k_eligible_items_per_user_never_pad_mask_or_filtered(fitted):
    users = fitted.user_index.ids[:40]
    include = list(range(1, 13))  # 12 items; 2 of them excluded
    out = fitted.recommend(users, k=8, include_items=include, exclude_items=[3, 4])
    catalogue = set(fitted.catalogue.ids.tolist())
    for user in users:
        mine = out[out.user_id == user]
        eligible = set(include) - {3, 4} - _history(fitted, user)
        assert len(mine) == min(8, len(eligible))
        assert set(mine.item_id) <= eligible <= catalogue  # never PAD (0) nor MASK (51)
        assert mine["rank"].tolist() == list(range(1, len(mine) + 1))
        assert mine.score.is_monotonic_decreasing and np.isfinite(mine.score).all()


def test_k_larger_than_the_catalogue_returns_every_eligible_item(fitted):
    user = fitted.user_index.ids[0]
    out = fitted.recommend([user], k=500)
    assert len(out) == fitted.n_items - len(_history(fitted, user))
    unfiltered = fitted.recommend([user], k=500, filter_viewed=False)
    assert sorted(unfiltered.item_id) == sorted(fitted.catalogue.ids.tolist())


def test_score_block_is_called_once_per_block_never_to_refill(fitted):
    calls = []
    original = fitted.score_block

    def counting(items, offsets, rows):
        calls.append(len(rows))
        return original(items, offsets, rows)

    fitted.score_block = counting
    try:
        users = fitted.user_index.ids[:150]
        out = fitted.recommend(users, k=10, include_items=[1, 2, 3, 4, 5], batch_size=64)
        fitted.recommend_for_histories([[1, 2], [5]], k=3)
    finally:
        del fitted.score_block
    assert calls == [64, 64, 22, 2]
    assert out.groupby("user_id").size().max() <= 5


def test_unknown_users_error_names_them(fitted):
    with pytest.raises(KeyError, match="ghost"):
        fitted.recommend([fitted.user_index.ids[0], "ghost"], k=3)


def test_unknown_users_popular_get_the_popular_eligible_items_in_caller_order(fitted, pattern):
    dataset, split = pattern
    popular = PopularRecommender()
    popular.fit(dataset, split.train)
    known = fitted.user_index.ids[:2].tolist()
    out = fitted.recommend([known[0], "ghost", known[1]], k=4, exclude_items=[7],
                           on_unknown_user="popular")
    assert out.user_id.drop_duplicates().tolist() == [known[0], "ghost", known[1]]
    ghost = out[out.user_id == "ghost"]
    expected = popular.recommend([known[0]], k=4, exclude_items=[7], filter_viewed=False)
    assert ghost.item_id.tolist() == expected.item_id.tolist()
    assert ghost.score.tolist() == pytest.approx(expected.score.tolist())
    alone = fitted.recommend(known, k=4, exclude_items=[7])
    pd.testing.assert_frame_equal(out[out.user_id != "ghost"].reset_index(drop=True), alone)


def test_unknown_users_skip_leaves_them_out(fitted):
    known = fitted.user_index.ids[:3].tolist()
    out = fitted.recommend(["ghost", *known], k=2, on_unknown_user="skip")
    assert out.user_id.drop_duplicates().tolist() == known and len(out) == 6


def test_bad_on_unknown_user_value_raises(fitted):
    with pytest.raises(ValueError, match="on_unknown_user"):
        fitted.recommend([0], on_unknown_user="ignore")


def test_unknown_filter_items_are_dropped_with_a_warning_counting_them(fitted):
    user = fitted.user_index.ids[0]
    with pytest.warns(UserWarning, match="include_items: 2 unknown"):
        out = fitted.recommend([user], k=5, include_items=[1, 2, "nope", 999], filter_viewed=False)
    assert set(out.item_id) == {1, 2}
    with pytest.warns(UserWarning, match="exclude_items: 1 unknown"):
        fitted.recommend([user], k=5, exclude_items=[1, -5])


def test_recommend_for_histories_matches_the_known_users_lists(fitted):
    users = fitted.user_index.ids[:3].tolist()
    histories = [fitted.catalogue.to_external(fitted.histories.row(i)).tolist() for i in range(3)]
    by_history = fitted.recommend_for_histories(histories, k=5)
    by_user = fitted.recommend(users, k=5)
    assert by_history.history.tolist() == np.repeat([0, 1, 2], 5).tolist()
    assert by_history.item_id.tolist() == by_user.item_id.tolist()
    assert by_history.score.to_numpy() == pytest.approx(by_user.score.to_numpy(), abs=1e-5)


def test_recommend_for_an_anonymous_history_filters_it_and_warns_on_unknown_items(fitted):
    with pytest.warns(UserWarning, match="histories: 1 unknown"):
        out = fitted.recommend_for_histories([[10, 11, "unknown-item", 12], []], k=4)
    assert out.groupby("history").size().tolist() == [4, 4]
    assert not set(out[out.history == 0].item_id) & {10, 11, 12}


def test_a_trained_model_continues_the_pattern_for_an_anonymous_history(pattern):
    dataset, split = pattern
    model = SequentialRecommender(small_config(epochs=10))
    model.fit(dataset, split.train)
    out = model.recommend_for_histories([[20, 21, 22, 23], [48, 49, 50, 1]], k=1)
    assert out.item_id.tolist() == [24, 2]


def test_similar_items_never_returns_the_query_item(fitted):
    if not isinstance(fitted, SequentialRecommender):
        assert not hasattr(fitted, "similar_items")  # popularity has no item embeddings
        return
    query = fitted.catalogue.ids[:10].tolist()
    out = fitted.similar_items(query, k=60)
    assert out.groupby("item_id").size().tolist() == [fitted.n_items - 1] * 10
    assert not (out.item_id == out.similar_item_id).any()
    with pytest.raises(KeyError, match="nope"):
        fitted.similar_items(["nope"])


def test_recommend_before_fit_raises():
    with pytest.raises(RuntimeError, match="not fitted"):
        SequentialRecommender().recommend([0])
    with pytest.raises(RuntimeError, match="not fitted"):
        PopularRecommender().recommend([0])
