"""Abandonment model: leakage-free features on a hand-written log, AUC on held-out users."""

import numpy as np
import pandas as pd
import pytest

from seqrec.value.abandonment import ABANDONMENT_FEATURES, fit_abandonment, impression_features
from seqrec.value.policies import constant_policy
from seqrec.value.sessions import simulate
from seqrec.value.survey import SurveyConfig, make_questions, make_users

ITEMS = pd.DataFrame(
    {"item_id": [10, 11], "median_answer_seconds": [5.0, 30.0], "is_free_text": [0, 1]}
)


def test_features_hand_computed():
    log = pd.DataFrame(
        {
            "user_id": [1, 1, 1, 1, 2],
            "session_id": [100, 100, 101, 101, 200],
            "position": [1, 2, 1, 2, 1],
            "item_id": [10, 11, 11, 10, 10],
            "answered": [1, 0, 1, 1, 0],
            "price": [1.0] * 5,
            "seconds": [4.0, 2.0, 20.0, 6.0, 3.0],
        }
    )
    f = impression_features(log, ITEMS)
    assert list(f.columns) == list(ABANDONMENT_FEATURES)
    assert f["seconds_so_far"].tolist() == [0.0, 4.0, 0.0, 20.0, 0.0]
    # user 1: no earlier session -> 1/2; second session sees 1 answer of 2 shown -> (1+1)/(2+2)
    assert f["past_completion_rate"].tolist() == [0.5, 0.5, 0.5, 0.5, 0.5]
    assert f["past_completion_rate"].tolist()[2:4] == [0.5, 0.5]
    assert f["median_answer_seconds"].tolist() == [5.0, 30.0, 30.0, 5.0, 5.0]
    assert f["is_free_text"].tolist() == [0, 1, 1, 0, 0]


def test_past_completion_rate_uses_earlier_sessions_only():
    log = pd.DataFrame(
        {
            "user_id": [1, 1, 1, 1],
            "session_id": [1, 1, 2, 3],
            "position": [1, 2, 1, 1],
            "item_id": [10, 11, 10, 11],
            "answered": [1, 1, 0, 1],
            "price": 1.0,
            "seconds": 1.0,
        }
    )
    rate = impression_features(log, ITEMS)["past_completion_rate"].tolist()
    assert rate == [0.5, 0.5, (2 + 1) / (2 + 2), (2 + 1) / (3 + 2)]


def test_unknown_item_raises():
    log = pd.DataFrame(
        {
            "user_id": [1],
            "session_id": [1],
            "position": [1],
            "item_id": [99],
            "answered": [1],
            "price": 1.0,
            "seconds": 1.0,
        }
    )
    with pytest.raises(ValueError, match="missing from items"):
        impression_features(log, ITEMS)


def test_abandonment_model_ranks_and_is_calibrated_on_held_out_users():
    config = SurveyConfig()
    rng = np.random.default_rng(0)
    questions = make_questions(config, rng)
    log = simulate(
        config, questions, make_users(3000, rng), constant_policy("random"), None, seed=1
    )
    fit = fit_abandonment(log, questions.table(), seed=0)
    assert fit.auc > 0.65
    assert fit.after.ece < 0.03
    p = fit.model.predict(impression_features(log.head(100), questions.table()).to_numpy())
    assert p.shape == (100,) and np.all((p >= 0) & (p <= 1))


def test_missing_ended_column_raises():
    log = pd.DataFrame(
        {
            "user_id": [1],
            "session_id": [1],
            "position": [1],
            "item_id": [10],
            "answered": [1],
            "price": 1.0,
            "seconds": 1.0,
        }
    )
    with pytest.raises(ValueError, match="ended"):
        fit_abandonment(log, ITEMS)
