"""Survey simulator (filter -> score -> calibrate -> order -> serve, with drift, a cap and
position effects) and the `survey` CLI command."""

import numpy as np
import pytest
from typer.testing import CliRunner

from seqrec.value.cli import app
from seqrec.value.policies import constant_policy, policy_names
from seqrec.value.sessions import simulate
from seqrec.value.simulator import SimulationConfig, run_survey_simulation
from seqrec.value.summary import session_table
from seqrec.value.survey import SurveyConfig, make_questions, make_users


def test_session_table_ndcg_hand_computed():
    import pandas as pd

    log = pd.DataFrame(
        {
            "user_id": [1, 1, 1, 2],
            "session_id": [10, 10, 10, 20],
            "position": [1, 2, 3, 1],
            "item_id": [0, 1, 2, 0],
            "answered": [0, 1, 1, 0],
            "price": [1.0, 2.0, 3.0, 1.0],
            "policy": "x",
        }
    )
    sessions = session_table(log).set_index("session_id")
    ideal = 1 + 1 / np.log2(3)
    assert sessions.loc[10, "ndcg"] == pytest.approx((1 / np.log2(3) + 1 / np.log2(4)) / ideal)
    assert sessions.loc[20, "ndcg"] == 0.0  # no answer: defined as 0
    assert sessions.loc[10, "revenue"] == 5.0 and sessions.loc[10, "length"] == 3


def test_simulated_log_respects_rules():
    config = SurveyConfig(n_items=8, max_session_length=5)
    rng = np.random.default_rng(0)
    log = simulate(
        config,
        make_questions(config, rng),
        make_users(300, rng),
        constant_policy("random"),
        None,
        seed=0,
    )
    assert log.groupby("session_id")["position"].max().max() <= 5
    assert not log.duplicated(["session_id", "item_id"]).any()  # never twice in a session
    answered = log[log["answered"] == 1]
    assert not answered.duplicated(["user_id", "item_id"]).any()  # never after it was answered
    ends = log.groupby("session_id")["ended"].apply(lambda e: e.iloc[:-1].sum())
    assert (ends == 0).all()  # only the last row of a session can be an abandonment
    assert log.groupby("user_id")["timestamp"].apply(lambda t: t.is_monotonic_increasing).all()
    assert log["timestamp"].between(0, 1.01).all()


@pytest.mark.parametrize("policy", ["price", "capped", "positional"])
def test_new_policies_respect_the_rules(policy):
    from seqrec.value.estimators import OracleEstimator

    config = SurveyConfig(n_items=12, max_session_length=5)
    rng = np.random.default_rng(1)
    questions = make_questions(config, rng)
    log = simulate(config, questions, make_users(200, rng), constant_policy(policy),
                   OracleEstimator(config, questions), seed=0)
    assert log.groupby("session_id")["position"].max().max() <= 5
    assert not log.duplicated(["session_id", "item_id"]).any()
    answered = log[log["answered"] == 1]
    assert not answered.duplicated(["user_id", "item_id"]).any()
    if policy == "price":  # the most expensive question first
        first = log[log["position"] == 1].groupby("user_id")["item_id"].first()
        assert (first.groupby(level=0).first() == int(np.argmax(questions.price))).all()


def test_cascade_beats_likely_on_arpu_and_session_split_is_flagged_by_coverage():
    result = run_survey_simulation(
        SimulationConfig(
            n_users=3000, seed=1, n_experiments=30, users_per_experiment=300, n_boot=200
        )
    )
    rows = {r.policy: r for r in result.rows}
    assert rows["likely"].ndcg.mean > rows["cascade"].ndcg.mean  # best NDCG ...
    assert rows["cascade"].arpu.mean > rows["likely"].arpu.mean  # ... is not best revenue
    assert rows["random"].arpu.mean < rows["cascade"].arpu.mean
    assert rows["price"].arpu.mean < rows["cascade"].arpu.mean
    assert rows["capped"].arpu.mean > rows["likely"].arpu.mean
    assert rows["positional"].arpu.mean > rows["likely"].arpu.mean
    user, session = result.designs
    assert user.coverage > session.coverage
    drift = {(d.target, d.calibrator): d.metrics for d in result.drift}
    for target in ("answer", "abandonment"):  # under drift, the latest window calibrates better
        assert drift[(target, "Platt, latest 30%")].ece_mass < drift[(target, "Platt, user holdout")].ece_mass
        assert drift[(target, "online Platt")].ece_mass < drift[(target, "Platt, user holdout")].ece_mass


def test_policy_names_parse_and_reject_unknown():
    assert policy_names("random, cascade") == ("random", "cascade")
    with pytest.raises(ValueError, match="greedy"):
        policy_names("random,greedy")


def test_cli_survey_small(tmp_path):
    runner = CliRunner()
    result = runner.invoke(
        app,
        [
            "survey",
            "--users",
            "300",
            "--policies",
            "random,likely,price,value,cascade,capped,positional",
            "--seed",
            "3",
            "--out",
            str(tmp_path),
            "--experiments",
            "3",
            "--experiment-users",
            "100",
            "--no-oracle",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "ARPU" in result.output and "session split" in result.output
    assert "positional" in result.output and "judged on the future" in result.output
    assert (tmp_path / "value_simulation.png").stat().st_size > 1000
    assert (tmp_path / "value_simulation.txt").exists()


def test_cli_rejects_unknown_policy(tmp_path):
    result = CliRunner().invoke(
        app, ["survey", "--users", "100", "--policies", "best", "--out", str(tmp_path)]
    )
    assert result.exit_code != 0
