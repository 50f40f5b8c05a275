"""Calibrators: raw scores (logits, larger = more likely answered) → honest P(answer).

Uncalibrated, a raw score ``s`` is read as ``sigmoid(s)``. A calibrator is fitted on held-out
users (see :func:`seqrec.value.calibration.calibrate`) and maps scores to probabilities:

* Platt scaling ``sigmoid(a s + b)`` — Platt (1999) "Probabilistic outputs for support vector
  machines", eq. 1; :func:`fit_platt`;
* temperature scaling ``sigmoid(s / T)`` — Guo et al. (2017) "On calibration of modern neural
  networks", sec. 4.2; one parameter, keeps the order of scores; :func:`fit_temperature`;
* isotonic regression, a monotone step-linear map — Zadrozny & Elkan (2002) "Transforming
  classifier scores into accurate multiclass probability estimates"; :func:`fit_isotonic`;
* for a drifting stream, :class:`~seqrec.value.online.OnlinePlatt` (standardised SGD) and
  :class:`~seqrec.value.online.WindowedCalibrator` (refits any of these on the latest window).

Platt and temperature scaling are maximum-likelihood logistic regressions of the outcome on the
score, fitted with scikit-learn's ``LogisticRegression`` (see :func:`_fit_logistic_1d`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, Protocol

import numpy as np
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import LogisticRegression

from seqrec.value._checks import (
    as_float_array,
    check_binary,
    check_same_length,
    clip_probabilities,
)

RIDGE_PER_ROW = 1e-6
"""L2 penalty per row on the logistic slope: ``0.5 * RIDGE_PER_ROW * n * slope**2`` (see
:func:`_fit_logistic_1d`)."""


class Calibrator(Protocol):
    """Maps raw scores ``(n,) float64`` to probabilities ``(n,) float64`` in [0, 1]."""

    def predict(self, scores: np.ndarray) -> np.ndarray:
        """Probabilities ``(n,) float64`` in [0, 1]; ValueError on NaN or infinite scores."""
        ...


def sigmoid(x: np.ndarray) -> np.ndarray:
    """Numerically stable logistic function ``1 / (1 + exp(-x))``, elementwise, any shape, float64."""
    x = np.asarray(x, dtype=np.float64)
    return np.exp(-np.logaddexp(0.0, -x))


@dataclass(frozen=True)
class PlattCalibrator:
    """``P(answer | s) = sigmoid(slope * s + intercept)`` (Platt 1999, eq. 1)."""

    slope: float
    intercept: float

    def predict(self, scores: np.ndarray) -> np.ndarray:
        """Probabilities ``(n,) float64`` for raw scores ``(n,)``.

        Raises:
            ValueError: on NaN or infinite scores.
        """
        return sigmoid(self.slope * as_float_array("scores", scores) + self.intercept)


@dataclass(frozen=True)
class TemperatureCalibrator:
    """``P(answer | s) = sigmoid(s / temperature)`` (Guo et al. 2017, sec. 4.2); ``temperature > 0``."""

    temperature: float

    def predict(self, scores: np.ndarray) -> np.ndarray:
        """Probabilities ``(n,) float64`` for raw scores ``(n,)``.

        Raises:
            ValueError: on NaN or infinite scores.
        """
        return sigmoid(as_float_array("scores", scores) / self.temperature)


@dataclass(frozen=True)
class IsotonicCalibrator:
    """Monotone step-linear map fitted by isotonic regression; flat outside the fitted range.

    Attributes:
        thresholds: ``(k,)`` float64 increasing raw-score knots.
        probabilities: ``(k,)`` float64 non-decreasing probabilities at the knots.
    """

    thresholds: np.ndarray
    probabilities: np.ndarray

    def predict(self, scores: np.ndarray) -> np.ndarray:
        """Probabilities ``(n,) float64``: linear interpolation between knots, as scikit-learn
        does, clipped to ``[eps, 1 - eps]`` (:data:`~seqrec.value._checks.PROBABILITY_EPS`): a
        step at exactly 0 or 1 would claim certainty from a finite sample (and make a cascade key
        infinite).

        Raises:
            ValueError: on NaN or infinite scores.
        """
        return clip_probabilities(
            np.interp(as_float_array("scores", scores), self.thresholds, self.probabilities)
        )


def _check_fit_inputs(scores: object, outcomes: object) -> tuple[np.ndarray, np.ndarray]:
    s = as_float_array("scores", scores)
    y = check_binary("outcomes", outcomes)
    check_same_length(scores=s, outcomes=y)
    if len(s) == 0:
        raise ValueError("scores must be non-empty; got 0 rows")
    return s, y


def _fit_logistic_1d(
    scores: np.ndarray, outcomes: np.ndarray, fit_intercept: bool
) -> tuple[float, float]:
    """Maximum-likelihood ``(slope, intercept)`` of ``P(y = 1 | s) = sigmoid(slope * s + intercept)``.

    scikit-learn's ``LogisticRegression`` minimises ``C * sum(log-loss) + 0.5 * slope**2`` (the
    intercept is not penalised). ``C = 1 / (RIDGE_PER_ROW * n)`` makes the ridge a millionth per
    row: it keeps the slope finite on separable data, where no maximum-likelihood estimate exists
    (``C = inf`` returns whatever slope the solver reached when the gradient vanished), and moves
    the fit by a few parts per million elsewhere (2e-6 to 6e-6 relative to ``C = inf``, measured on
    the tests' data sets). The ``newton-cholesky`` solver is Newton's method on the one or two
    parameters, run to ``tol = 1e-10``. ``C`` (not ``penalty=None``) also avoids ``penalty``,
    deprecated in scikit-learn 1.8.

    Args:
        scores: ``(n,) float64`` finite raw scores.
        outcomes: ``(n,) float64`` 0/1.
        fit_intercept: False for temperature scaling (intercept fixed at 0).

    Returns:
        ``(slope, intercept)``; intercept 0.0 when ``fit_intercept`` is False.

    Raises:
        ValueError: if ``outcomes`` hold a single class (the likelihood has no maximum;
            scikit-learn cannot fit one class either).
    """
    if len(np.unique(outcomes)) < 2:
        raise ValueError(
            f"outcomes must contain both 0 and 1 to fit a logistic calibrator; got only "
            f"{float(outcomes[0]):g} in {len(outcomes)} rows"
        )
    model = LogisticRegression(
        C=1.0 / (RIDGE_PER_ROW * len(scores)),
        fit_intercept=fit_intercept,
        solver="newton-cholesky",
        tol=1e-10,
        max_iter=100,
    )
    model.fit(scores[:, None], outcomes)  # (n, 1) design
    intercept = float(model.intercept_[0]) if fit_intercept else 0.0
    return float(model.coef_[0, 0]), intercept


def fit_platt(scores: np.ndarray, outcomes: np.ndarray) -> PlattCalibrator:
    """Fit Platt scaling (slope and intercept) by maximum likelihood.

    Uses Platt's model (1999, eq. 1) but 0/1 targets, not his smoothed ones ``(N+ + 1) / (N+ + 2)``.

    Args:
        scores: ``(n,)`` raw scores.
        outcomes: ``(n,)`` 0/1 answers, both classes present.

    Raises:
        ValueError: on NaN scores, non-binary or single-class outcomes, mismatched lengths or no
            rows.
    """
    s, y = _check_fit_inputs(scores, outcomes)
    slope, intercept = _fit_logistic_1d(s, y, fit_intercept=True)
    return PlattCalibrator(slope, intercept)


def fit_temperature(scores: np.ndarray, outcomes: np.ndarray) -> TemperatureCalibrator:
    """Fit temperature scaling: ``1 / temperature`` is the maximum-likelihood slope, no intercept.

    Args:
        scores: ``(n,)`` raw scores.
        outcomes: ``(n,)`` 0/1 answers, both classes present.

    Raises:
        ValueError: as :func:`fit_platt`, or if the fitted slope is not positive (scores
            anti-correlated with outcomes: temperature scaling cannot fix that).
    """
    s, y = _check_fit_inputs(scores, outcomes)
    slope, _ = _fit_logistic_1d(s, y, fit_intercept=False)
    if slope <= 0:
        raise ValueError(f"scores: temperature scaling needs a positive slope; fitted {slope!r}")
    return TemperatureCalibrator(1.0 / slope)


def fit_isotonic(scores: np.ndarray, outcomes: np.ndarray) -> IsotonicCalibrator:
    """Fit isotonic regression (scikit-learn ``IsotonicRegression``, clipped to [0, 1]).

    Args:
        scores: ``(n,)`` raw scores.
        outcomes: ``(n,)`` 0/1 answers.

    Raises:
        ValueError: on NaN scores, non-binary outcomes, mismatched lengths or no rows.
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

    Args:
        scores: ``(n,)`` raw scores.
        outcomes: ``(n,)`` 0/1 answers.
        method: which fitter (:func:`fit_platt`, :func:`fit_temperature`, :func:`fit_isotonic`).

    Raises:
        ValueError: for an unknown method, and as the chosen fitter.
    """
    if method not in _FITTERS:
        raise ValueError(f"method must be one of {sorted(_FITTERS)}; got {method!r}")
    return _FITTERS[method](scores, outcomes)
