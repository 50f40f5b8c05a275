"""Calibrated engagement probability: raw scores → P(answer), offline and online.

A *scorer* is anything that turns impression rows into raw scores (logits: larger means more
likely to be answered). Uncalibrated, a raw score ``s`` is read as the probability ``sigmoid(s)``;
a *calibrator* is fitted on held-out **users** to map scores to honest probabilities.

Metrics (all on probabilities ``p`` and 0/1 outcomes ``y``):

* log-loss ``-mean(y log p + (1 - y) log(1 - p))`` in nats, with ``p`` clipped to
  ``[1e-15, 1 - 1e-15]``;
* Brier score ``mean((p - y)^2)``;
* expected calibration error (ECE) with ``n_bins`` **equal-width** bins on [0, 1]
  (bin ``b`` holds ``b / n_bins <= p < (b + 1) / n_bins``, the last bin includes 1):
  ``ECE = sum_b (n_b / n) * |mean(y in b) - mean(p in b)|``; empty bins contribute 0.

Sources: Platt (1999) "Probabilistic outputs for SVMs"; Guo et al. (2017) "On calibration of
modern neural networks" (temperature scaling, ECE); Zadrozny & Elkan (2002) (isotonic).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

import numpy as np
import pandas as pd
from sklearn.isotonic import IsotonicRegression

from seqrec.value._checks import (
    as_float_array,
    check_binary,
    check_nonnegative,
    check_probabilities,
    check_same_length,
)

logger = logging.getLogger(__name__)

LOG_COLUMNS = ("user_id", "session_id", "position", "item_id", "answered", "price")
"""Columns every impression log must have; rows are in chronological order."""

_EPS = 1e-15


class Scorer(Protocol):
    """Maps impression rows (a DataFrame with :data:`LOG_COLUMNS`) to raw scores ``(n_rows,)``."""

    def __call__(self, rows: pd.DataFrame) -> np.ndarray: ...


class Calibrator(Protocol):
    """Maps raw scores ``(n,) float64`` to probabilities ``(n,) float64`` in [0, 1]."""

    def predict(self, scores: np.ndarray) -> np.ndarray: ...


def sigmoid(x: np.ndarray) -> np.ndarray:
    """Numerically stable logistic function, elementwise, any shape."""
    x = np.asarray(x, dtype=np.float64)
    return np.exp(-np.logaddexp(0.0, -x))


def pairwise_scorer(score_pair: Callable[[tuple, object], float]) -> Scorer:
    """Adapt a ``(history, candidate) -> raw score`` function to a row :class:`Scorer`.

    ``history`` is the tuple of item ids shown earlier in the same session (rows are taken in
    log order), ``candidate`` the row's item id. One Python call per row: for tests and small
    logs; batch scorers should implement :class:`Scorer` directly.
    """

    def score_rows(rows: pd.DataFrame) -> np.ndarray:
        histories: dict[object, list] = {}
        scores = np.empty(len(rows), dtype=np.float64)
        for i, (session, item) in enumerate(zip(rows["session_id"], rows["item_id"], strict=True)):
            shown = histories.setdefault(session, [])
            scores[i] = score_pair(tuple(shown), item)
            shown.append(item)
        return scores

    return score_rows


# --- offline calibrators -------------------------------------------------------------------------


@dataclass(frozen=True)
class PlattCalibrator:
    """``P(answer | s) = sigmoid(slope * s + intercept)`` (Platt scaling)."""

    slope: float
    intercept: float

    def predict(self, scores: np.ndarray) -> np.ndarray:
        """Probabilities ``(n,) float64`` for raw scores ``(n,)``."""
        return sigmoid(self.slope * as_float_array("scores", scores) + self.intercept)


@dataclass(frozen=True)
class TemperatureCalibrator:
    """``P(answer | s) = sigmoid(s / temperature)`` (temperature scaling: one parameter, keeps order)."""

    temperature: float

    def predict(self, scores: np.ndarray) -> np.ndarray:
        """Probabilities ``(n,) float64`` for raw scores ``(n,)``."""
        return sigmoid(as_float_array("scores", scores) / self.temperature)


@dataclass(frozen=True)
class IsotonicCalibrator:
    """Monotone step-linear map fitted by isotonic regression; flat outside the fitted range.

    Attributes:
        thresholds: ``(k,)`` increasing raw-score knots.
        probabilities: ``(k,)`` non-decreasing probabilities at the knots.
    """

    thresholds: np.ndarray
    probabilities: np.ndarray

    def predict(self, scores: np.ndarray) -> np.ndarray:
        """Probabilities ``(n,) float64``: linear interpolation between knots, as scikit-learn does."""
        return np.interp(as_float_array("scores", scores), self.thresholds, self.probabilities)


def _fit_logistic_1d(scores: np.ndarray, outcomes: np.ndarray, fit_intercept: bool) -> np.ndarray:
    """Damped Newton for ``min log-loss(sigmoid(w0 * s + w1))``; tiny ridge for separable data.

    Plain Newton can overshoot from the start ``(1, 0)`` when scores are large; halving the step
    until the (ridge-penalised) loss decreases keeps every iteration a descent step.
    """
    design = np.stack([scores, np.ones_like(scores)], axis=1)  # (n, 2)
    if not fit_intercept:
        design = design[:, :1]
    ridge = 1e-6 * len(scores)

    def loss(w: np.ndarray) -> float:
        z = design @ w
        return float(np.sum(np.logaddexp(0.0, z) - outcomes * z) + 0.5 * ridge * w @ w)

    weights = np.zeros(design.shape[1])
    weights[0] = 1.0
    current = loss(weights)
    for _ in range(100):
        p = sigmoid(design @ weights)
        gradient = design.T @ (p - outcomes) + ridge * weights
        hessian = (design * (p * (1 - p))[:, None]).T @ design + ridge * np.eye(design.shape[1])
        step = np.linalg.solve(hessian, gradient)
        scale = 1.0
        while scale > 1e-8 and loss(weights - scale * step) > current:
            scale /= 2
        weights = weights - scale * step
        current = loss(weights)
        if np.abs(scale * step).max() < 1e-10:
            break
    return weights


def _check_fit_inputs(scores: object, outcomes: object) -> tuple[np.ndarray, np.ndarray]:
    s = as_float_array("scores", scores)
    y = check_binary("outcomes", outcomes)
    check_same_length(scores=s, outcomes=y)
    if len(s) == 0:
        raise ValueError("scores must be non-empty; got 0 rows")
    return s, y


def fit_platt(scores: np.ndarray, outcomes: np.ndarray) -> PlattCalibrator:
    """Fit Platt scaling by maximum likelihood (Newton's method).

    Args:
        scores: ``(n,)`` raw scores.
        outcomes: ``(n,)`` 0/1 answers.

    Raises:
        ValueError: on NaN scores, non-binary outcomes, mismatched lengths or no rows.
    """
    s, y = _check_fit_inputs(scores, outcomes)
    slope, intercept = _fit_logistic_1d(s, y, fit_intercept=True)
    return PlattCalibrator(float(slope), float(intercept))


def fit_temperature(scores: np.ndarray, outcomes: np.ndarray) -> TemperatureCalibrator:
    """Fit temperature scaling (``1 / temperature`` is the maximum-likelihood slope, no intercept).

    Raises:
        ValueError: as :func:`fit_platt`, or if the fitted slope is not positive (scores anti-correlated
            with outcomes: temperature scaling cannot fix that).
    """
    s, y = _check_fit_inputs(scores, outcomes)
    (slope,) = _fit_logistic_1d(s, y, fit_intercept=False)
    if slope <= 0:
        raise ValueError(f"scores: temperature scaling needs a positive slope; fitted {slope!r}")
    return TemperatureCalibrator(float(1.0 / slope))


def fit_isotonic(scores: np.ndarray, outcomes: np.ndarray) -> IsotonicCalibrator:
    """Fit isotonic regression (scikit-learn ``IsotonicRegression``, clipped to [0, 1]).

    Raises:
        ValueError: as :func:`fit_platt`.
    """
    s, y = _check_fit_inputs(scores, outcomes)
    iso = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip").fit(s, y)
    return IsotonicCalibrator(np.asarray(iso.X_thresholds_), np.asarray(iso.y_thresholds_))


CalibrationMethod = Literal["platt", "temperature", "isotonic"]
_FITTERS: dict[str, Callable[[np.ndarray, np.ndarray], Calibrator]] = {
    "platt": fit_platt,
    "temperature": fit_temperature,
    "isotonic": fit_isotonic,
}


def fit_calibrator(
    scores: np.ndarray, outcomes: np.ndarray, method: CalibrationMethod
) -> Calibrator:
    """Fit the calibrator named by ``method`` ("platt", "temperature" or "isotonic").

    Raises:
        ValueError: for an unknown method, and as :func:`fit_platt`.
    """
    if method not in _FITTERS:
        raise ValueError(f"method must be one of {sorted(_FITTERS)}; got {method!r}")
    return _FITTERS[method](scores, outcomes)


# --- metrics -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CalibrationMetrics:
    """Log-loss (nats), Brier score and ECE (equal-width bins) of probabilities vs outcomes."""

    log_loss: float
    brier: float
    ece: float
    n: int


@dataclass(frozen=True)
class ReliabilityCurve:
    """Per-bin statistics for a reliability diagram (equal-width bins on [0, 1]).

    Attributes:
        bin_edges: ``(n_bins + 1,)`` edges.
        mean_predicted: ``(n_bins,)`` mean probability in each bin (NaN where empty).
        observed_rate: ``(n_bins,)`` answer rate in each bin (NaN where empty).
        counts: ``(n_bins,)`` int64 rows per bin.
    """

    bin_edges: np.ndarray
    mean_predicted: np.ndarray
    observed_rate: np.ndarray
    counts: np.ndarray


def reliability_curve(
    probabilities: np.ndarray, outcomes: np.ndarray, n_bins: int = 10
) -> ReliabilityCurve:
    """Bin probabilities into ``n_bins`` equal-width bins and compare with observed rates.

    Raises:
        ValueError: if probabilities are outside [0, 1] or NaN, outcomes not 0/1, ``n_bins < 1``.
    """
    if n_bins < 1:
        raise ValueError(f"n_bins must be >= 1; got {n_bins!r}")
    p = check_probabilities("probabilities", probabilities)
    y = check_binary("outcomes", outcomes)
    check_same_length(probabilities=p, outcomes=y)
    bins = np.minimum((p * n_bins).astype(np.int64), n_bins - 1)  # p = 1 falls in the last bin
    counts = np.bincount(bins, minlength=n_bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_p = np.bincount(bins, weights=p, minlength=n_bins) / counts
        rate = np.bincount(bins, weights=y, minlength=n_bins) / counts
    return ReliabilityCurve(np.linspace(0.0, 1.0, n_bins + 1), mean_p, rate, counts)


def calibration_metrics(
    probabilities: np.ndarray, outcomes: np.ndarray, n_bins: int = 10
) -> CalibrationMetrics:
    """Log-loss, Brier score and ECE (see the module docstring for exact definitions).

    Raises:
        ValueError: as :func:`reliability_curve`, or for no rows.
    """
    curve = reliability_curve(probabilities, outcomes, n_bins)
    p = np.asarray(probabilities, dtype=np.float64)
    y = np.asarray(outcomes, dtype=np.float64)
    if len(p) == 0:
        raise ValueError("probabilities must be non-empty; got 0 rows")
    clipped = np.clip(p, _EPS, 1 - _EPS)
    log_loss = -np.mean(y * np.log(clipped) + (1 - y) * np.log1p(-clipped))
    filled = curve.counts > 0
    gaps = np.abs(curve.observed_rate[filled] - curve.mean_predicted[filled])
    ece = float(np.sum(curve.counts[filled] / len(p) * gaps))
    return CalibrationMetrics(float(log_loss), float(np.mean((p - y) ** 2)), ece, len(p))


# --- held-out users ------------------------------------------------------------------------------


@dataclass(frozen=True)
class UserSplit:
    """Rows of a log split by user: no user appears in both parts."""

    train: pd.DataFrame
    test: pd.DataFrame


def split_by_user(log: pd.DataFrame, test_fraction: float, seed: int) -> UserSplit:
    """Hold out a random ``test_fraction`` of users (all their sessions) with ``np.random.default_rng(seed)``.

    Raises:
        ValueError: if ``test_fraction`` is not in (0, 1), ``user_id`` is missing, or a part is empty.
    """
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction must be in (0, 1); got {test_fraction!r}")
    if "user_id" not in log.columns:
        raise ValueError(f"log must have a user_id column; got columns {list(log.columns)}")
    users = log["user_id"].unique()
    rng = np.random.default_rng(seed)
    n_test = int(round(test_fraction * len(users)))
    if n_test == 0 or n_test == len(users):
        raise ValueError(
            f"test_fraction={test_fraction!r} leaves an empty part with {len(users)} users"
        )
    test_users = rng.choice(users, size=n_test, replace=False)
    is_test = log["user_id"].isin(test_users).to_numpy()
    return UserSplit(log[~is_test], log[is_test])


def check_log(log: pd.DataFrame, columns: Sequence[str] = LOG_COLUMNS) -> None:
    """Raise ValueError naming missing columns, NaN, non-binary answers or negative prices."""
    missing = [c for c in columns if c not in log.columns]
    if missing:
        raise ValueError(f"log is missing columns {missing}; has {list(log.columns)}")
    for column in columns:
        if log[column].isna().any():
            raise ValueError(f"log column {column!r} contains NaN")
    if "answered" in columns:
        check_binary("log.answered", log["answered"].to_numpy())
    if "price" in columns:
        check_nonnegative("log.price", log["price"].to_numpy())


@dataclass(frozen=True)
class CalibrationReport:
    """Before/after calibration quality on held-out users.

    ``before`` reads raw scores as ``sigmoid(score)``; ``after`` applies ``calibrator``.
    """

    calibrator: Calibrator
    before: CalibrationMetrics
    after: CalibrationMetrics
    curve_before: ReliabilityCurve
    curve_after: ReliabilityCurve
    n_train_users: int
    n_test_users: int


def calibrate(
    log: pd.DataFrame,
    scorer: Scorer,
    method: CalibrationMethod = "isotonic",
    test_fraction: float = 0.3,
    seed: int = 0,
    n_bins: int = 10,
) -> CalibrationReport:
    """Fit a calibrator on some users' impressions and report its quality on the other users.

    Args:
        log: impressions with :data:`LOG_COLUMNS`.
        scorer: raw scores for rows; called once per part.
        method: "platt", "temperature" or "isotonic".
        test_fraction: share of users held out for the report.
        seed: seed of the user split.
        n_bins: ECE / reliability bins.

    Raises:
        ValueError: on a malformed log, NaN scores, or a bad method / fraction.
    """
    check_log(log)
    split = split_by_user(log, test_fraction, seed)
    train_scores = as_float_array("scorer(train)", scorer(split.train))
    test_scores = as_float_array("scorer(test)", scorer(split.test))
    calibrator = fit_calibrator(train_scores, split.train["answered"].to_numpy(), method)
    y = split.test["answered"].to_numpy()
    raw_p, cal_p = sigmoid(test_scores), calibrator.predict(test_scores)
    report = CalibrationReport(
        calibrator=calibrator,
        before=calibration_metrics(raw_p, y, n_bins),
        after=calibration_metrics(cal_p, y, n_bins),
        curve_before=reliability_curve(raw_p, y, n_bins),
        curve_after=reliability_curve(cal_p, y, n_bins),
        n_train_users=int(split.train["user_id"].nunique()),
        n_test_users=int(split.test["user_id"].nunique()),
    )
    logger.info(
        "calibration %s: ECE %.4f -> %.4f on held-out users",
        method,
        report.before.ece,
        report.after.ece,
    )
    return report


# --- online --------------------------------------------------------------------------------------


class OnlinePlatt:
    """Platt scaling updated by SGD on each (score, outcome): O(1) memory, tracks drift.

    A constant step ``learning_rate`` makes the estimate an exponentially weighted fit over roughly
    the last ``1 / learning_rate`` updates, so it follows a calibration that drifts. This is the one
    mutable object of the module: it *is* a running state.

    Args:
        learning_rate: SGD step (> 0) on the log-loss gradient.
        slope: initial slope (1 = trust the raw logits).
        intercept: initial intercept.

    Raises:
        ValueError: if ``learning_rate`` is not positive and finite.
    """

    def __init__(
        self, learning_rate: float = 0.01, slope: float = 1.0, intercept: float = 0.0
    ) -> None:
        if not (np.isfinite(learning_rate) and learning_rate > 0):
            raise ValueError(f"learning_rate must be positive and finite; got {learning_rate!r}")
        self.learning_rate = float(learning_rate)
        self.slope = float(slope)
        self.intercept = float(intercept)
        self.n_updates = 0

    def update(self, scores: np.ndarray | float, outcomes: np.ndarray | float) -> None:
        """Take one SGD step per pair, in order.

        Raises:
            ValueError: on NaN scores or non-binary outcomes.
        """
        s = np.atleast_1d(as_float_array("scores", scores))
        y = np.atleast_1d(check_binary("outcomes", outcomes))
        check_same_length(scores=s, outcomes=y)
        slope, intercept, lr = self.slope, self.intercept, self.learning_rate
        for score, outcome in zip(s.tolist(), y.tolist(), strict=True):
            z = slope * score + intercept
            p = 1.0 / (1.0 + np.exp(-z)) if z > -30 else 0.0
            error = p - outcome
            slope -= lr * error * score
            intercept -= lr * error
        self.slope, self.intercept = slope, intercept
        self.n_updates += len(s)

    def predict(self, scores: np.ndarray) -> np.ndarray:
        """Probabilities ``(n,) float64`` under the current parameters."""
        return sigmoid(self.slope * as_float_array("scores", scores) + self.intercept)

    def snapshot(self) -> PlattCalibrator:
        """The current parameters as a frozen :class:`PlattCalibrator`."""
        return PlattCalibrator(self.slope, self.intercept)
