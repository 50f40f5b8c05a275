"""Eligibility before the model: masks, explicit empty result, no request loop."""

import numpy as np
import pytest
import torch

from seqrec.errors import ScoringError
from seqrec.rank import tie_keys
from seqrec.value.eligibility import (
    EligibilityState,
    NothingEligible,
    Ranked,
    Served,
    eligibility_mask,
    ineligibility_reasons,
    rank_eligible,
    serve_first_accepted,
)

ITEMS = np.array(["a", "b", "c", "d", "e", "f"])
SCORES = {"a": 5.0, "b": 4.0, "c": 3.0, "d": 2.0, "e": 1.0, "f": 0.0}


class CountingScorer:
    def __init__(self):
        self.calls = 0
        self.seen: list[list[str]] = []

    def __call__(self, item_ids):
        self.calls += 1
        self.seen.append(list(item_ids))
        return np.array([SCORES[i] for i in item_ids])


def _state(**kwargs):
    return EligibilityState(
        item_ids=ITEMS,
        user_segments=frozenset({"eu"}),
        item_segments={"a": {"us"}, "b": {"eu", "us"}},
        shown=frozenset({"c"}),
        answered=frozenset({"d"}),
        quotas={"e": 0, "f": 3},
        **kwargs,
    )


def test_each_rule_masks_its_item():
    state = _state(excluded=frozenset({"f"}))
    assert ineligibility_reasons(state).tolist() == [
        "segment",
        "",
        "shown",
        "answered",
        "quota",
        "excluded",
    ]
    assert eligibility_mask(state).tolist() == [False, True, False, False, False, False]


def test_scorer_only_sees_eligible_items_and_is_called_once():
    scorer = CountingScorer()
    ranked = rank_eligible(_state(), scorer)
    assert isinstance(ranked, Ranked)
    assert ranked.item_ids.tolist() == ["b", "f"] and ranked.best == "b"
    assert scorer.calls == 1 and scorer.seen == [["b", "f"]]


def test_nothing_eligible_is_an_explicit_record_and_scorer_is_not_called():
    scorer = CountingScorer()
    result = rank_eligible(_state(excluded=frozenset({"b", "f"})), scorer)
    assert isinstance(result, NothingEligible)
    assert dict(result.reasons) == {
        "segment": 1,
        "shown": 1,
        "answered": 1,
        "quota": 1,
        "excluded": 2,
    }
    assert scorer.calls == 0


def test_backend_rejections_cannot_loop():
    """The old flow re-asked the model with the same input after each rejection, forever.

    Here one request = one model call; rejections are folded into the state, so each later request
    has strictly fewer eligible items and the sequence of requests ends in at most n_items + 1 calls.
    """
    scorer = CountingScorer()
    rejected_by_backend = {"b"}
    result = serve_first_accepted(
        _state(), scorer, backend_accepts=lambda item: item not in rejected_by_backend
    )
    assert isinstance(result, Served)
    assert result.item_id == "f" and result.n_rejected == 1 and "b" in result.state.excluded
    assert scorer.calls == 1

    # A backend that rejects everything: repeated requests with the returned state terminate.
    state, calls, returned = EligibilityState(item_ids=ITEMS), 0, []
    scorer = CountingScorer()
    for _ in range(100):
        ranked = rank_eligible(state, scorer)
        calls += 1
        if isinstance(ranked, NothingEligible):
            break
        returned.append(ranked.best)
        state = state.with_rejected([ranked.best])  # the deterministic state update
    assert isinstance(ranked, NothingEligible)
    assert calls == len(ITEMS) + 1 and len(set(returned)) == len(ITEMS)
    assert scorer.calls == len(ITEMS)  # the last request never reached the model

    everything_rejected = serve_first_accepted(
        EligibilityState(item_ids=ITEMS), CountingScorer(), backend_accepts=lambda i: False
    )
    assert isinstance(everything_rejected, NothingEligible)
    assert dict(everything_rejected.reasons) == {"excluded": len(ITEMS)}


def test_same_input_gives_same_answer():
    a, b = rank_eligible(_state(), CountingScorer()), rank_eligible(_state(), CountingScorer())
    assert a.item_ids.tolist() == b.item_ids.tolist()


def test_showing_consumes_quota():
    state = _state().with_shown("f")
    assert state.quotas["f"] == 2 and "f" in state.shown


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"shown": frozenset({"zz"})}, "shown names unknown items"),
        ({"quotas": {"a": -1}}, r"quotas\['a'\] must be an integer >= 0"),
        ({"excluded": frozenset({"zz"})}, "excluded names unknown items"),
    ],
)
def test_bad_state_raises(kwargs, match):
    with pytest.raises(ValueError, match=match):
        EligibilityState(item_ids=ITEMS, **kwargs)


def test_unknown_item_update_and_nan_scores_raise():
    with pytest.raises(ValueError, match="unknown items"):
        _state().with_rejected(["zz"])
    with pytest.raises(ValueError, match="score"):
        rank_eligible(_state(), lambda ids: np.full(len(ids), np.nan))


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_scores_raise_scoring_error_naming_the_scorer(bad):
    def broken_scorer(ids):
        return np.where(ids == "f", bad, 1.0)

    with pytest.raises(ScoringError, match="broken_scorer"):
        rank_eligible(_state(), broken_scorer)


def test_wrong_shape_raises():
    with pytest.raises(ValueError, match="shape"):
        rank_eligible(_state(), lambda ids: np.zeros(len(ids) + 1))


def test_ties_follow_rank_tie_rule_not_catalogue_order():
    """Equal scores are ordered by seqrec.rank's hashed tie key of column i + 1 (catalogue
    position i), the rule every seqrec list follows; higher scores still come first."""
    state = EligibilityState(item_ids=ITEMS)
    ranked = rank_eligible(state, lambda ids: np.where(ids == "c", 2.0, 1.0))
    columns = np.arange(1, len(ITEMS) + 1)
    by_key = columns[np.argsort(tie_keys(torch.from_numpy(columns)).numpy(), kind="stable")]
    tied = [ITEMS[c - 1] for c in by_key if ITEMS[c - 1] != "c"]
    assert ranked.item_ids.tolist() == ["c", *tied]
    assert tied != [i for i in ITEMS.tolist() if i != "c"]  # the rule is not catalogue order
    assert ranked.scores.dtype == np.float64 and ranked.scores.tolist() == [2.0] + [1.0] * 5


def test_top_k_cut_and_float64_scores_kept_apart():
    """k keeps the best k eligible items; scores 1e-12 apart (equal in float32) stay ordered."""
    state = EligibilityState(item_ids=ITEMS)
    scores = {"a": 1.0, "b": 1.0 + 1e-12, "c": 1.0 + 2e-12, "d": 0.0, "e": -1.0, "f": 3.0}
    ranked = rank_eligible(state, lambda ids: np.array([scores[i] for i in ids]), k=4)
    assert ranked.item_ids.tolist() == ["f", "c", "b", "a"]
    assert ranked.scores.tolist() == [3.0, 1.0 + 2e-12, 1.0 + 1e-12, 1.0]
    few = rank_eligible(_state(), CountingScorer(), k=10)  # only b and f are eligible
    assert few.item_ids.tolist() == ["b", "f"]


def test_k_below_one_raises():
    with pytest.raises(ValueError, match="k must be >= 1"):
        rank_eligible(_state(), CountingScorer(), k=0)
