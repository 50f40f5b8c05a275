"""The recommender wired into value-aware ranking: what its scores become, histories before a
time, calibration on a held-out time window, rank_by_value and the `simulate rank` command."""

import numpy as np
import pandas as pd
import pytest
from conftest import pattern_interactions, small_config
from typer.testing import CliRunner

from seqrec import SequentialRecommender, build_dataset
from seqrec.value.calibrators import PlattCalibrator
from seqrec.value.model_scores import (
    fit_model_calibrator,
    histories_before,
    history_csr,
    next_item_log_probs,
)
from seqrec.value.ranking import cascade_order
from seqrec.value.value_rank import rank_by_value

N_ITEMS = 30


@pytest.fixture(scope="module")
def trained():
    """A small eSASRec on the walk-the-catalogue pattern (30 items), plus its interactions."""
    interactions = pattern_interactions(n_users=150, n_items=N_ITEMS, seed=0)
    model = SequentialRecommender(small_config("esasrec", epochs=8))
    model.fit(build_dataset(interactions))
    return model, interactions


def _log_probs(model, history, normalise="catalogue", eligible=None):
    items, offsets = history_csr(model, [history])
    return next_item_log_probs(model, items, offsets, np.array([0]), normalise, eligible)[0]


def test_catalogue_probabilities_ignore_eligibility_and_eligible_ones_renormalise(trained):
    """'catalogue': log P(next = i | history), a softmax over all items (sums to 1, PAD -inf);
    'eligible': the same renormalised over the eligible items: log p_cat - log sum_elig p_cat."""
    model, _ = trained
    full = _log_probs(model, [3, 4, 5])
    assert full[0] == -np.inf and np.exp(full[1:]).sum() == pytest.approx(1.0, abs=1e-9)
    eligible = np.zeros(N_ITEMS + 1, dtype=bool)
    eligible[[2, 6, 7, 20]] = True
    again = _log_probs(model, [3, 4, 5], "catalogue", eligible)
    np.testing.assert_allclose(again, full)  # filtering never changes a catalogue probability
    within = _log_probs(model, [3, 4, 5], "eligible", eligible)
    assert np.isneginf(within[~eligible]).all()
    assert np.exp(within[eligible]).sum() == pytest.approx(1.0, abs=1e-9)
    shift = np.log(np.exp(full[eligible]).sum())
    np.testing.assert_allclose(within[eligible], full[eligible] - shift, atol=1e-9)
    assert np.argmax(full) == model.catalogue.index_of(6)  # the pattern: after 5 comes 6


def test_eligible_normalisation_needs_a_mask(trained):
    model, _ = trained
    with pytest.raises(ValueError, match="eligible must be"):
        _log_probs(model, [1], "eligible", None)
    with pytest.raises(ValueError, match="normalise must be"):
        _log_probs(model, [1], "softmax")


def test_histories_before_a_time_hold_only_earlier_interactions(trained):
    model, _ = trained
    log = pd.DataFrame({"user_id": ["a", "a", "b", "a", "b"], "item_id": [1, 2, 5, 3, 6],
                        "timestamp": [1, 2, 1, 5, 9]})
    items, offsets = histories_before(model, log, np.array(["a", "a", "b", "c"]),
                                      np.array([2, 6, 9, 4]))
    rows = [items[offsets[i]:offsets[i + 1]].tolist() for i in range(4)]
    to_index = model.catalogue.index_of
    assert rows == [[to_index(1)], [to_index(1), to_index(2), to_index(3)], [to_index(5)], []]


def _impressions(interactions, n_per_user=4, seed=0):
    """After the training log, each user is shown items; the continuation of their walk is
    answered with probability 0.8, any other item with 0.1 (time increases through the log)."""
    rng = np.random.default_rng(seed)
    last = interactions.groupby("user_id")["item_id"].last()
    rows = []
    for t, (user, item) in enumerate(last.items()):
        for k in range(n_per_user):
            good = rng.random() < 0.5
            shown = item % N_ITEMS + 1 if good else int(rng.integers(1, N_ITEMS + 1))
            is_next = shown == item % N_ITEMS + 1
            rows.append((user, shown, 100 + t + k / 10, int(rng.random() < (0.8 if is_next else 0.1))))
    return pd.DataFrame(rows, columns=["user_id", "item_id", "timestamp", "answered"])


def test_calibration_on_a_later_time_window_makes_probabilities_honest(trained):
    model, interactions = trained
    impressions = _impressions(interactions)
    report = fit_model_calibrator(model, impressions, interactions, method="platt")
    assert report.holdout == "time" and report.n_test_rows == round(0.3 * len(impressions))
    assert report.after.log_loss < report.before.log_loss - 0.1
    assert report.after.ece_mass < 0.12 and report.after.ece_mass < report.before.ece_mass / 2
    assert report.calibrator.slope > 0  # a likelier next item is answered more often


def test_rank_by_value_filters_calibrates_and_orders(trained):
    model, _ = trained
    calibrator = PlattCalibrator(slope=1.0, intercept=1.0)
    ids = [6, 7, 8, 20, 21]
    prices = np.array([1.0, 1.0, 5.0, 1.0, 9.0])
    continuation = np.array([0.9, 0.9, 0.5, 0.9, 0.95])
    mask = np.array([True, True, True, True, False])
    ranking = rank_by_value(model, [3, 4, 5], ids, prices, continuation, calibrator,
                            is_eligible=mask)
    assert 21 not in ranking.item_ids.tolist() and len(ranking.item_ids) == 4
    assert np.all(np.diff(ranking.keys) <= 0)
    full = _log_probs(model, [3, 4, 5])
    expected_p = calibrator.predict(full[model.catalogue.to_index(ranking.item_ids.tolist())])
    np.testing.assert_allclose(ranking.probabilities, expected_p, atol=1e-9)
    capped = rank_by_value(model, [3, 4, 5], ids, prices, continuation, calibrator, cap=2,
                           is_eligible=mask)
    p_all = np.zeros(5)
    p_all[:4] = calibrator.predict(full[model.catalogue.to_index(ids[:4])])
    reference = cascade_order(p_all, prices, continuation, cap=2, is_eligible=mask)
    assert capped.item_ids.tolist() == [ids[i] for i in reference]
    assert capped.expected_revenue <= ranking.expected_revenue + 1e-12


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"prices": [1.0, -1.0]}, "prices must be >= 0"),
        ({"continuation": [0.5, 1.5]}, "continuation must lie in"),
        ({"is_eligible": np.array([True])}, "is_eligible must have shape"),
        ({"cap": 0}, "cap must be an integer >= 1"),
        ({"prices": [1.0]}, "one per item_ids"),
    ],
)
def test_rank_by_value_bad_input_names_the_argument(trained, kwargs, match):
    model, _ = trained
    args = {"prices": [1.0, 2.0], "continuation": [0.5, 0.5]} | kwargs
    extra = {k: v for k, v in kwargs.items() if k in ("is_eligible", "cap")}
    with pytest.raises(ValueError, match=match):
        rank_by_value(model, [1, 2], [3, 4], args["prices"], args["continuation"],
                      PlattCalibrator(1.0, 0.0), **extra)


def test_cli_rank_prints_calibration_and_the_ordered_list(trained, tmp_path):
    from seqrec import save_model
    from seqrec.value.cli import app

    model, interactions = trained
    save_model(model, tmp_path / "model")
    interactions.to_csv(tmp_path / "interactions.csv", index=False)
    _impressions(interactions).to_csv(tmp_path / "impressions.csv", index=False)
    pd.DataFrame({"item_id": [6, 7, 8, 20], "price": [1.0, 1.0, 5.0, 1.0],
                  "continuation": [0.9, 0.9, 0.5, 0.9]}).to_csv(tmp_path / "items.csv", index=False)
    result = CliRunner().invoke(app, [
        "rank", "--model", str(tmp_path / "model"), "--items", str(tmp_path / "items.csv"),
        "--impressions", str(tmp_path / "impressions.csv"),
        "--interactions", str(tmp_path / "interactions.csv"), "--history", "3,4,5", "--cap", "2",
        "--exclude", "8",
    ])
    assert result.exit_code == 0, result.output
    assert "time holdout" in result.output and "expected revenue" in result.output
    listed = [line.split("│")[2].strip() for line in result.output.splitlines()
              if line.startswith("│")]
    assert len(listed) == 2 and "8" not in listed  # the cap and the exclusion hold
    bad = CliRunner().invoke(app, ["rank", "--model", str(tmp_path / "model"), "--items",
                                   str(tmp_path / "items.csv"), "--impressions",
                                   str(tmp_path / "impressions.csv"), "--interactions",
                                   str(tmp_path / "interactions.csv"), "--cap", "0"])
    assert bad.exit_code != 0 and "cap must be an integer >= 1" in bad.output
