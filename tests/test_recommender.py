"""The recommender contract (recommender.py, lists.py): exactly min(k, eligible) items, filters
respected, one score_block call per block, unknown users/items by policy, and evaluate() equal to
the metrics of the served lists, ties included."""

import warnings

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import small_config

from seqrec import (
    NotFittedError,
    PopularRecommender,
    ScoringError,
    SequentialRecommender,
    UnknownItemError,
    UnknownUserError,
    evaluate,
    evaluate_lists,
)
from seqrec.metrics import item_popularity


# ---- the recommender contract, for every kind of recommender --------------------------------------
@pytest.fixture(scope="module", params=["esasrec", "bert4rec", "fuxi_alpha", "popular"])
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


def test_integer_ids_come_back_as_integers(fitted):
    users = [int(u) for u in fitted.user_index.ids[:3]]  # plain Python ints, as a caller passes
    out = fitted.recommend(users, k=2)
    assert out.dtypes["user_id"] == np.int64 and out.dtypes["item_id"] == np.int64
    assert out.user_id.drop_duplicates().tolist() == users


def test_k_larger_than_the_catalogue_returns_every_eligible_item(fitted):
    user = fitted.user_index.ids[0]
    out = fitted.recommend([user], k=500)
    assert len(out) == fitted.n_items - len(_history(fitted, user))
    unfiltered = fitted.recommend([user], k=500, filter_viewed=False)
    assert sorted(unfiltered.item_id) == sorted(fitted.catalogue.ids.tolist())


def test_each_block_is_encoded_once_and_scored_once_never_to_refill(fitted):
    encoded, scored = [], []
    encode, score = fitted.encode_histories, fitted.score_items

    def counting_encode(items, offsets, rows, *times):
        encoded.append(len(rows))
        return encode(items, offsets, rows, *times)

    def counting_score(hidden, start=0, stop=None):
        scored.append(len(hidden))
        return score(hidden, start, stop)

    fitted.encode_histories, fitted.score_items = counting_encode, counting_score
    try:
        users = fitted.user_index.ids[:150]
        out = fitted.recommend(users, k=10, include_items=[1, 2, 3, 4, 5], batch_size=64)
        fitted.recommend_for_histories([[1, 2], [5]], k=3)
    finally:
        del fitted.encode_histories, fitted.score_items
    assert encoded == scored == [64, 64, 22, 2]
    assert out.groupby("user_id").size().max() <= 5


def test_evaluation_and_lists_in_item_chunks_equal_the_one_pass_results(fitted, pattern):
    _, split = pattern
    whole = evaluate(fitted, split.test, k=[5, 10], train=split.train)
    chunked = evaluate(fitted, split.test, k=[5, 10], train=split.train, chunk=7)
    assert chunked.means == pytest.approx(whole.means, abs=1e-12)
    from seqrec.filters import ItemSets
    from seqrec.lists import HistoryScorer
    from seqrec.rank import rank_rows

    h = split.test.histories
    scorer = HistoryScorer(fitted, ItemSets(h.items, h.offsets))
    one = rank_rows(scorer, h.n_sequences, fitted.n_items, 10, chunk=fitted.n_items + 1)
    many = rank_rows(scorer, h.n_sequences, fitted.n_items, 10, chunk=6)
    assert many.items.tolist() == one.items.tolist()


def test_unknown_users_error_names_them(fitted):
    with pytest.raises(UnknownUserError, match="ghost") as error:
        fitted.recommend([fitted.user_index.ids[0], "ghost"], k=3)
    assert isinstance(error.value, KeyError) and error.value.ids == ["ghost"]


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
    # the mixed list (ints and "ghost") keeps object ids; the known users' lists are the same
    pd.testing.assert_frame_equal(out[out.user_id != "ghost"].reset_index(drop=True), alone,
                                  check_dtype=False)


def test_unknown_users_skip_leaves_them_out_with_a_warning_counting_them(fitted):
    known = fitted.user_index.ids[:3].tolist()
    with pytest.warns(UserWarning, match="1 unknown user skipped"):
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
    h = fitted.histories
    histories = [fitted.catalogue.to_external(h.row(i)).tolist() for i in range(3)]
    times = [h.timestamps[h.offsets[i]:h.offsets[i + 1]].tolist() for i in range(3)]
    by_history = fitted.recommend_for_histories(histories, k=5, timestamps=times)
    by_user = fitted.recommend(users, k=5)
    assert by_history.history.tolist() == np.repeat([0, 1, 2], 5).tolist()
    assert by_history.item_id.tolist() == by_user.item_id.tolist()
    assert by_history.score.to_numpy() == pytest.approx(by_user.score.to_numpy(), abs=1e-5)


def test_query_times_reach_the_model_one_per_history_and_need_timestamps(fitted, monkeypatch):
    asked = []
    original = fitted.encode_histories

    def spy(items, offsets, rows, timestamps=None, query_times=None):
        asked.extend([] if query_times is None else np.asarray(query_times).tolist())
        return original(items, offsets, rows, timestamps, query_times)

    monkeypatch.setattr(fitted, "encode_histories", spy)
    histories, times = [[1, 2, 3], [7], [4, 5]], [[10, 20, 30], [5], [1, 2]]
    fitted.recommend_for_histories(histories, k=2, timestamps=times, query_times=[50, 60, 70])
    if isinstance(fitted, SequentialRecommender):
        assert sorted(asked) == [50, 60, 70]
    with pytest.raises(ValueError, match="timestamps too"):
        fitted.recommend_for_histories(histories, k=2, query_times=[50, 60, 70])
    with pytest.raises(ValueError, match="one time per history expected"):
        fitted.recommend_for_histories(histories, k=2, timestamps=times, query_times=[50])


def test_recommend_for_an_anonymous_history_filters_it_and_warns_on_unknown_items(fitted):
    with pytest.warns(UserWarning, match="histories: 1 unknown"):
        out = fitted.recommend_for_histories([[10, 11, "unknown-item", 12]], k=4)
    assert out.groupby("history").size().tolist() == [4]
    assert not set(out[out.history == 0].item_id) & {10, 11, 12}


def test_a_history_with_no_known_item_is_treated_as_an_unknown_user(fitted, pattern):
    histories = [[10, 11], [], ["ghost-item"]]
    with pytest.raises(UnknownUserError, match=r"histories \[1, 2\]"):
        fitted.recommend_for_histories(histories, k=3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        popular = fitted.recommend_for_histories(histories, k=3, on_unknown_user="popular")
    dataset, split = pattern
    baseline = PopularRecommender()
    baseline.fit(dataset, split.train)
    expected = baseline.recommend_for_histories([[1]], k=3, filter_viewed=False).item_id.tolist()
    assert popular[popular.history == 1].item_id.tolist() == expected
    assert popular[popular.history == 2].item_id.tolist() == expected
    with pytest.warns(UserWarning, match="2 histories with no known item skipped"):
        skipped = fitted.recommend_for_histories(histories, k=3, on_unknown_user="skip")
    assert skipped.history.unique().tolist() == [0]


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
    with pytest.raises(UnknownItemError, match="nope"):
        fitted.similar_items(["nope"])


def test_recommend_before_fit_raises():
    with pytest.raises(NotFittedError, match="not fitted"):
        SequentialRecommender().recommend([0])
    with pytest.raises(RuntimeError, match="not fitted"):
        PopularRecommender().recommend([0])


def test_ids_follow_the_one_id_rule(fitted):
    user = int(fitted.user_index.ids[0])
    as_int = fitted.recommend([user], k=3)
    as_text = fitted.recommend([str(user)], k=3)
    assert as_text.item_id.tolist() == as_int.item_id.tolist()
    with pytest.raises(UnknownUserError):
        fitted.recommend([f"0{user}"], k=3)  # not a canonical decimal integer
    with pytest.warns(UserWarning, match="exclude_items: 1 unknown"):
        fitted.recommend([user], k=3, exclude_items=["1", "01"])


def test_an_empty_include_list_allows_nothing(fitted):
    out = fitted.recommend(fitted.user_index.ids[:2], k=3, include_items=[])
    assert len(out) == 0


def test_set_histories_refuses_indices_the_model_does_not_have(fitted, pattern):
    dataset, _ = pattern
    from seqrec import Sequences

    bad = Sequences(np.array([1, fitted.n_items + 1]), np.array([0, 2]), np.array([0]),
                    np.zeros(2, np.int64))
    with pytest.raises(ValueError, match="outside"):
        fitted.set_histories(bad)


# ---- evaluate() scores exactly the lists recommend() serves ------------------------------------
@pytest.mark.parametrize("ties", [False, True])
def test_evaluate_equals_the_metrics_of_the_served_lists(fitted, pattern, ties):
    """The popular baseline ties on every item of equal count; a rounded model ties too."""
    dataset, split = pattern
    model = fitted
    if ties and isinstance(fitted, SequentialRecommender):
        original = fitted.score_items

        def coarse_scores(hidden, start=0, stop=None):  # many ties
            return torch.round(original(hidden, start, stop))

        model = _Wrapped(fitted, coarse_scores)
    test = split.test
    report = evaluate(model, test, k=10, train=split.train)
    users = model.user_index.to_external(test.histories.users)
    h = test.histories
    histories = [model.catalogue.to_external(h.row(i)).tolist() for i in range(h.n_sequences)]
    times = [h.timestamps[h.offsets[i]:h.offsets[i + 1]].tolist() for i in range(h.n_sequences)]
    asked_at = [test.targets.timestamps[test.targets.offsets[i]] for i in range(h.n_sequences)]
    served = model.recommend_for_histories(histories, k=10, timestamps=times, query_times=asked_at)
    lists = [served[served.history == i].item_id.tolist() for i in range(len(users))]
    rows = np.array([model.catalogue.to_index(row) for row in lists])
    by_lists = evaluate_lists(rows, test.targets, n_items=model.n_items, k=10,
                              item_popularity=item_popularity(split.train, model.n_items))
    assert report.means.keys() == by_lists.means.keys()
    for name, value in report.means.items():
        assert by_lists.means[name] == pytest.approx(value, abs=1e-12), name


class _Wrapped:
    """A recommender whose scores pass through a function (same ids, histories, filters)."""

    def __init__(self, inner, score_items):
        self._inner, self.score_items = inner, score_items

    def __getattr__(self, name):
        return getattr(self._inner, name)

    def recommend_for_histories(self, histories, k=10, **options):  # the library's own path
        from seqrec.lists import recommend_histories

        return recommend_histories(self, histories, k, **options)


def test_nan_scores_are_an_error_never_output(fitted):
    model = _Wrapped(fitted, lambda hidden, start=0, stop=None: torch.full(
        (len(hidden), (stop or fitted.n_items + 1) - start), float("nan")))
    with pytest.raises(ScoringError, match="NaN"):
        model.recommend_for_histories([[1, 2]], k=3)


def test_scores_follow_the_weights_after_an_in_place_update_or_a_state_load(fitted):
    """score_items keeps a transposed copy of the item table for the tiles of a ranking call;
    any in-place change of the weights must show in the next scores."""
    if not isinstance(fitted, SequentialRecommender):
        pytest.skip("the popular baseline has no item table")
    h = fitted.histories
    hidden = fitted.encode_histories(h.items, h.offsets, np.arange(8))
    before = fitted.score_items(hidden)
    weight = fitted.parts.encoder.item_embedding.weight
    state = {name: t.clone() for name, t in fitted.parts.encoder.state_dict().items()}
    try:
        with torch.no_grad():
            weight.mul_(2.0)  # exact in float32: every score doubles
        assert torch.equal(fitted.score_items(hidden)[:, 1:], 2 * before[:, 1:])
        fitted.parts.encoder.load_state_dict(state)
        assert torch.equal(fitted.score_items(hidden), before)
    finally:
        fitted.parts.encoder.load_state_dict(state)
