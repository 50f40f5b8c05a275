"""Calibration: hand-computed metrics (equal-width and equal-mass ECE), calibrators fixing a
miscalibrated scorer, time vs user holdout, online calibrators under drift and any score scale."""

import numpy as np
import pandas as pd
import pytest

from seqrec.value.calibration import calibrate, pairwise_scorer
from seqrec.value.calibrators import fit_isotonic, fit_platt, fit_temperature, sigmoid
from seqrec.value.logs import split_by_time, split_by_user
from seqrec.value.online import OnlinePlatt, WindowedCalibrator
from seqrec.value.ranking import cascade_keys
from seqrec.value.reliability import calibration_metrics, equal_mass_ece, reliability_curve


def test_metrics_hand_computed():
    p = np.array([0.2, 0.8, 0.8, 0.95])
    y = np.array([0, 1, 0, 1])
    m = calibration_metrics(p, y, n_bins=10)
    expected_ll = -(np.log(0.8) + np.log(0.8) + np.log(0.2) + np.log(0.95)) / 4
    assert m.log_loss == pytest.approx(expected_ll)
    assert m.brier == pytest.approx((0.04 + 0.04 + 0.64 + 0.0025) / 4)
    # bins: 0.2 -> bin 2 (gap 0.2), 0.8,0.8 -> bin 8 (mean y 0.5, gap 0.3), 0.95 -> bin 9 (gap 0.05)
    assert m.ece == pytest.approx(0.25 * 0.2 + 0.5 * 0.3 + 0.25 * 0.05)


def test_equal_mass_ece_hand_computed():
    """Sorted p = .1 .2 | .3 .9 with y = 0 1 | 1 1: gaps |.5 - .15| and |1 - .6|, weights 1/2."""
    p, y = np.array([0.9, 0.1, 0.3, 0.2]), np.array([1, 0, 1, 1])
    assert equal_mass_ece(p, y, n_bins=2) == pytest.approx(0.5 * 0.35 + 0.5 * 0.4)
    assert calibration_metrics(p, y, n_bins=2).ece_mass == pytest.approx(0.375)


def test_equal_mass_bins_see_miscalibration_at_small_rates():
    """Abandonment-like rates: predictions 0.01 and 0.09 (true 0.05 for both). Every prediction
    falls in the first of 10 equal-width bins, whose ECE compares only the two means (both 0.05);
    equal-mass bins separate them."""
    rng = np.random.default_rng(0)
    p = np.where(np.arange(20_000) % 2 == 0, 0.01, 0.09)
    y = (rng.random(p.size) < 0.05).astype(int)
    m = calibration_metrics(p, y)
    assert m.ece < 0.005 and m.ece_mass > 0.03


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
    assert report.after.ece_mass < report.before.ece_mass / 2
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


def test_isotonic_never_outputs_certainty_so_cascade_keys_stay_finite():
    """Scores that separate the classes: isotonic steps to exactly 0 and 1, which would make
    continuation 1 (abandonment 0) and the key r p / (1 - c) infinite; both are clipped."""
    cal = fit_isotonic(np.array([-2.0, -1.0, 1.0, 2.0]), np.array([0, 0, 1, 1]))
    abandonment = cal.predict(np.array([-3.0, 3.0]))
    assert abandonment.tolist() == [1e-6, 1 - 1e-6]
    keys = cascade_keys(np.full(2, 0.5), np.ones(2), 1.0 - abandonment)
    assert np.isfinite(keys).all()


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


def _drifting_stream(n=40_000, seed=0):
    """Calibration drifts from sigmoid(s) to sigmoid(0.5 s - 1) halfway through the stream."""
    rng = np.random.default_rng(seed)
    s = rng.normal(0.0, 1.5, n)
    logits = np.where(np.arange(n) >= n // 2, 0.5 * s - 1.0, s)
    return s, (rng.random(n) < sigmoid(logits)).astype(float)


def _prequential(calibrator, s, y, chunk=1000):
    """Predict each chunk, then learn from it; returns the predictions."""
    predictions = np.empty(len(s))
    for start in range(0, len(s), chunk):
        part = slice(start, start + chunk)
        predictions[part] = calibrator.predict(s[part])
        calibrator.update(s[part], y[part])
    return predictions


@pytest.mark.parametrize("make", [lambda: OnlinePlatt(learning_rate=0.01),
                                  lambda: WindowedCalibrator("isotonic", 8000, 1000)])
def test_online_calibrators_track_drift_within_tolerance(make):
    """On the last 10k pairs the log-loss is within 0.01 nats of the best fixed Platt calibrator
    fitted on those same post-drift pairs (an oracle lower bound), and ECE below 0.03."""
    s, y = _drifting_stream()
    calibrator = make()
    p = _prequential(calibrator, s, y)
    tail = slice(len(s) - 10_000, len(s))
    best = fit_platt(s[tail], y[tail])
    best_loss = calibration_metrics(best.predict(s[tail]), y[tail]).log_loss
    got = calibration_metrics(np.clip(p[tail], 0, 1), y[tail])
    assert got.log_loss <= best_loss + 0.01 and got.ece < 0.03
    assert calibrator.n_updates == len(s)
    if isinstance(calibrator, OnlinePlatt):  # reported in raw-score units
        assert calibrator.slope == pytest.approx(0.5, abs=0.2)
        assert calibrator.intercept == pytest.approx(-1.0, abs=0.25)


def test_online_platt_is_the_same_at_any_score_scale():
    """Raw scores x1, x20, x50: standardised SGD gives the same predictions (the unstandardised
    version overshot at x20 and diverged at x50), ECE < 0.02 on the tail, slope / scale."""
    s, y = _drifting_stream()
    results = {}
    for scale in (1.0, 20.0, 50.0):
        online = OnlinePlatt(learning_rate=0.01)
        p = _prequential(online, scale * s, y)
        results[scale] = (p, online)
        tail = slice(len(s) - 10_000, len(s))
        metrics = calibration_metrics(p[tail], y[tail])
        assert metrics.ece < 0.02 and metrics.log_loss < 0.57
    for scale in (20.0, 50.0):
        np.testing.assert_allclose(results[scale][0], results[1.0][0], rtol=1e-9, atol=1e-12)
        assert results[scale][1].slope * scale == pytest.approx(results[1.0][1].slope, rel=1e-9)
    assert results[1.0][1].snapshot().predict(np.array([0.0]))[0] == pytest.approx(
        results[1.0][1].predict(np.array([0.0]))[0])


def test_online_calibrators_reject_bad_settings():
    with pytest.raises(ValueError, match="learning_rate"):
        OnlinePlatt(learning_rate=0.0)
    with pytest.raises(ValueError, match="scale_rate"):
        OnlinePlatt(scale_rate=2.0)
    with pytest.raises(ValueError, match="method"):
        WindowedCalibrator("softmax")
    with pytest.raises(ValueError, match="window"):
        WindowedCalibrator("isotonic", window=1)
    with pytest.raises(ValueError, match="outcomes"):
        OnlinePlatt().update(np.array([0.1, 0.2]), np.array([0, 2]))


def _drifting_log(n_users=600, seed=0):
    """Users arrive over time; the scorer's calibration drifts (true logit = raw - 2 t)."""
    rng = np.random.default_rng(seed)
    users = np.repeat(np.arange(n_users), 10)
    time = np.repeat(np.sort(rng.random(n_users)), 10) + np.tile(np.arange(10) * 1e-4, n_users)
    raw = rng.normal(0, 1.5, users.size)
    answered = (rng.random(users.size) < sigmoid(raw - 2.0 * time)).astype(int)
    return pd.DataFrame({"user_id": users, "timestamp": time, "answered": answered, "raw": raw})


def test_split_by_time_holds_out_the_latest_rows():
    log = _drifting_log(100)
    split = split_by_time(log, 0.3)
    assert len(split.test) == 300 and split.train["timestamp"].max() < split.test["timestamp"].min()
    recent = split_by_time(log, 0.3, fit_fraction=0.2)
    assert len(recent.train) == 200 and recent.train["timestamp"].max() == split.train["timestamp"].max()
    with pytest.raises(ValueError, match="fit_fraction"):
        split_by_time(log, 0.3, fit_fraction=0.8)
    with pytest.raises(ValueError, match="timestamp column"):
        split_by_time(log.drop(columns="timestamp"), 0.3)


def test_calibrate_holds_out_time_by_default_and_sees_drift():
    """With timestamps the default split is by time; a user split reports a calibration the
    future will not have (it averages over the drift), the time split reports the truth."""
    log = _drifting_log()
    score = lambda rows: rows["raw"].to_numpy()  # noqa: E731
    by_time = calibrate(log, score, method="platt")
    by_user = calibrate(log, score, method="platt", holdout="user")
    recent = calibrate(log, score, method="platt", fit_fraction=0.2)
    assert by_time.holdout == "time" and by_user.holdout == "user"
    assert by_user.after.ece < 0.04  # looks fine on random users ...
    assert by_time.after.ece > by_user.after.ece + 0.03  # ... but not on the latest rows
    assert recent.after.ece < by_time.after.ece  # a recent fitting window helps
    assert calibrate(log.drop(columns="timestamp"), score, method="platt").holdout == "user"
    with pytest.raises(ValueError, match="holdout must be"):
        calibrate(log, score, holdout="random")


def test_reliability_diagram_writes_small_png(tmp_path):
    from seqrec.value.plots import reliability_diagram

    log = _miscalibrated_log(200, seed=0)
    report = calibrate(log, lambda rows: rows["raw"].to_numpy(), method="isotonic", seed=0)
    path = reliability_diagram(
        {"raw": report.curve_before, "isotonic": report.curve_after}, tmp_path / "r.png"
    )
    assert 1000 < path.stat().st_size < 200_000
