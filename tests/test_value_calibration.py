"""Calibration: hand-computed metrics, calibrators fixing a miscalibrated scorer, online drift."""

import numpy as np
import pandas as pd
import pytest

from seqrec.value.calibration import calibrate, pairwise_scorer
from seqrec.value.calibrators import (
    OnlinePlatt,
    fit_isotonic,
    fit_platt,
    fit_temperature,
    sigmoid,
)
from seqrec.value.logs import split_by_user
from seqrec.value.reliability import calibration_metrics, reliability_curve


def test_metrics_hand_computed():
    p = np.array([0.2, 0.8, 0.8, 0.95])
    y = np.array([0, 1, 0, 1])
    m = calibration_metrics(p, y, n_bins=10)
    expected_ll = -(np.log(0.8) + np.log(0.8) + np.log(0.2) + np.log(0.95)) / 4
    assert m.log_loss == pytest.approx(expected_ll)
    assert m.brier == pytest.approx((0.04 + 0.04 + 0.64 + 0.0025) / 4)
    # bins: 0.2 -> bin 2 (gap 0.2), 0.8,0.8 -> bin 8 (mean y 0.5, gap 0.3), 0.95 -> bin 9 (gap 0.05)
    assert m.ece == pytest.approx(0.25 * 0.2 + 0.5 * 0.3 + 0.25 * 0.05)


def test_probability_one_falls_in_last_bin():
    curve = reliability_curve(np.array([1.0, 0.0]), np.array([1, 0]), n_bins=4)
    assert curve.counts.tolist() == [1, 0, 0, 1]


@pytest.mark.parametrize("bad", [np.nan, -0.1, 1.5])
def test_bad_probabilities_raise_naming_parameter(bad):
    with pytest.raises(ValueError, match="probabilities"):
        calibration_metrics(np.array([0.5, bad]), np.array([0, 1]))


def test_non_binary_outcomes_raise():
    with pytest.raises(ValueError, match="outcomes"):
        fit_platt(np.array([0.1, 0.2]), np.array([0, 2]))


def _miscalibrated_log(n_users: int, seed: int) -> pd.DataFrame:
    """True P(answer) = sigmoid(z); the scorer reports 3 z + 1 (overconfident and biased)."""
    rng = np.random.default_rng(seed)
    users = np.repeat(np.arange(n_users), 20)
    z = rng.normal(size=len(users))
    return pd.DataFrame(
        {
            "user_id": users,
            "session_id": users,
            "position": np.tile(np.arange(1, 21), n_users),
            "item_id": rng.integers(0, 50, len(users)),
            "answered": (rng.random(len(users)) < sigmoid(z)).astype(int),
            "price": 1.0,
            "raw": 3.0 * z + 1.0,
        }
    )


@pytest.mark.parametrize("method", ["platt", "temperature", "isotonic"])
def test_calibration_improves_miscalibrated_scorer_on_held_out_users(method):
    log = _miscalibrated_log(1000, seed=0)
    report = calibrate(log, lambda rows: rows["raw"].to_numpy(), method=method, seed=1)
    assert report.after.log_loss < report.before.log_loss - 0.05
    assert report.after.ece < report.before.ece / 2
    assert report.after.brier < report.before.brier
    if method == "platt":
        assert report.after.ece < 0.02


def test_platt_recovers_known_parameters():
    rng = np.random.default_rng(3)
    s = rng.normal(size=50_000)
    y = (rng.random(s.size) < sigmoid(0.5 * s - 1.0)).astype(float)
    cal = fit_platt(s, y)
    assert cal.slope == pytest.approx(0.5, abs=0.05)
    assert cal.intercept == pytest.approx(-1.0, abs=0.05)
    assert fit_temperature(s, y + 0).temperature > 1.0  # slope < 1 means temperature > 1


def test_platt_hand_computed_two_score_groups():
    """Scores 0 and 1, answer rates 1/4 and 3/4: the MLE is exact, sigmoid(b) = 1/4 and
    sigmoid(a + b) = 3/4, so b = -ln 3 and a = 2 ln 3 (the 1e-6-per-row ridge moves them < 1e-4)."""
    s = np.array([0, 0, 0, 0, 1, 1, 1, 1], dtype=float)
    y = np.array([1, 0, 0, 0, 1, 1, 1, 0])
    cal = fit_platt(s, y)
    assert cal.intercept == pytest.approx(-np.log(3.0), abs=1e-4)
    assert cal.slope == pytest.approx(2 * np.log(3.0), abs=1e-4)


def test_temperature_hand_computed_symmetric_scores():
    """Scores -1 and +1 with answer rates 1/4 and 3/4; no intercept: the score equation
    sum((p - y) s) = 0 gives sigmoid(w) = 3/4, so w = ln 3 and temperature = 1 / ln 3."""
    s = np.array([-1, -1, -1, -1, 1, 1, 1, 1], dtype=float)
    y = np.array([1, 0, 0, 0, 1, 1, 1, 0])
    assert fit_temperature(s, y).temperature == pytest.approx(1 / np.log(3.0), abs=1e-4)


def test_platt_satisfies_the_likelihood_equations():
    """At the maximum-likelihood fit, mean(p) = mean(y) and mean((p - y) s) = 0."""
    rng = np.random.default_rng(1)
    s = rng.normal(0.0, 2.0, 5000)
    y = (rng.random(s.size) < sigmoid(0.7 * s + 0.3)).astype(float)
    p = fit_platt(s, y).predict(s)
    assert np.mean(p - y) == pytest.approx(0.0, abs=1e-6)
    assert np.mean((p - y) * s) == pytest.approx(0.0, abs=1e-5)


def test_separable_scores_give_a_finite_steep_fit():
    cal = fit_platt(np.array([-2.0, -1.0, 1.0, 2.0]), np.array([0, 0, 1, 1]))
    assert np.isfinite(cal.slope) and cal.slope > 5
    assert cal.predict(np.array([-1.0, 1.0])) == pytest.approx([0.0, 1.0], abs=1e-4)


def test_temperature_rejects_anti_correlated_scores():
    with pytest.raises(ValueError, match="positive slope"):
        fit_temperature(np.array([-2.0, -1.0, 1.0, 2.0]), np.array([1, 1, 0, 0]))


@pytest.mark.parametrize("fit", [fit_platt, fit_temperature])
def test_single_class_outcomes_raise(fit):
    with pytest.raises(ValueError, match="both 0 and 1"):
        fit(np.array([0.1, 0.5, 2.0]), np.array([1, 1, 1]))


def test_isotonic_is_monotone_and_in_unit_interval():
    rng = np.random.default_rng(0)
    s = rng.normal(size=2000)
    cal = fit_isotonic(s, (rng.random(2000) < sigmoid(s)).astype(int))
    p = cal.predict(np.linspace(-5, 5, 101))
    assert np.all(np.diff(p) >= 0) and p.min() >= 0 and p.max() <= 1


def test_split_by_user_has_no_shared_users():
    log = _miscalibrated_log(100, seed=0)
    split = split_by_user(log, 0.3, seed=0)
    assert not set(split.train["user_id"]) & set(split.test["user_id"])
    assert split.test["user_id"].nunique() == 30


def test_pairwise_scorer_sees_session_history():
    log = pd.DataFrame({"session_id": [1, 1, 2, 1], "item_id": [10, 11, 12, 13]})
    seen = []
    scorer = pairwise_scorer(lambda history, item: seen.append((history, item)) or len(history))
    assert scorer(log).tolist() == [0, 1, 0, 2]
    assert seen[-1] == ((10, 11), 13)


def test_online_platt_tracks_drift_within_tolerance():
    """Calibration drifts from sigmoid(s) to sigmoid(0.5 s - 1) halfway through a 40k stream.

    Tolerance: on the last 10k pairs the online calibrator's log-loss is within 0.01 nats of the
    best fixed Platt calibrator fitted on those same post-drift pairs (an oracle lower bound).
    """
    rng = np.random.default_rng(0)
    n = 40_000
    s = rng.normal(0.0, 1.5, n)
    drifted = np.arange(n) >= n // 2
    logits = np.where(drifted, 0.5 * s - 1.0, s)
    y = (rng.random(n) < sigmoid(logits)).astype(float)
    online = OnlinePlatt(learning_rate=0.01)
    losses = np.empty(n)
    for start in range(0, n, 1000):  # predict a chunk, then learn from it (prequential)
        chunk = slice(start, start + 1000)
        p = np.clip(online.predict(s[chunk]), 1e-15, 1 - 1e-15)
        losses[chunk] = -(y[chunk] * np.log(p) + (1 - y[chunk]) * np.log1p(-p))
        online.update(s[chunk], y[chunk])
    tail = slice(n - 10_000, n)
    best = fit_platt(s[tail], y[tail])
    best_loss = calibration_metrics(best.predict(s[tail]), y[tail]).log_loss
    assert losses[tail].mean() <= best_loss + 0.01
    assert online.slope == pytest.approx(0.5, abs=0.2)
    assert online.intercept == pytest.approx(-1.0, abs=0.25)
    assert online.n_updates == n


def test_online_platt_rejects_bad_learning_rate():
    with pytest.raises(ValueError, match="learning_rate"):
        OnlinePlatt(learning_rate=0.0)


def test_reliability_diagram_writes_small_png(tmp_path):
    from seqrec.value.plots import reliability_diagram

    log = _miscalibrated_log(200, seed=0)
    report = calibrate(log, lambda rows: rows["raw"].to_numpy(), method="isotonic", seed=0)
    path = reliability_diagram(
        {"raw": report.curve_before, "isotonic": report.curve_after}, tmp_path / "r.png"
    )
    assert 1000 < path.stat().st_size < 200_000
