"""Calibrators for a stream whose calibration drifts: standardised online Platt and windowed refits.

* :class:`OnlinePlatt` — Platt scaling ``sigmoid(a z + b)`` on the *standardised* score
  ``z = (s - mean) / sd``, updated by constant-step SGD on the log-loss (Robbins & Monro 1951),
  with the mean and variance themselves exponentially weighted. Standardising makes the step size
  mean the same thing at any score scale: on raw scores ``s`` the gradient ``(p - y) s`` grows with
  the scale, and an unstandardised SGD overshoots (its slope flips sign at x20, its log-loss blows
  up at x50: ``benchmarks/value.py``); here predictions are identical for ``s``, ``20 s`` and
  ``50 s`` (tested). scikit-learn's ``SGDClassifier.partial_fit`` behind ``StandardScaler.partial_fit``
  would standardise with *cumulative* statistics that never forget, so we keep the 20 lines.
* :class:`WindowedCalibrator` — refits a batch calibrator (:mod:`seqrec.value.calibrators`:
  scikit-learn's ``IsotonicRegression`` / ``LogisticRegression``) on the latest ``window`` pairs
  every ``refit_every`` updates: online isotonic in effect.

Both are mutable running states (the only mutable calibrators); ``snapshot()`` returns a frozen
calibrator to serve with.
"""

from __future__ import annotations

import logging
import math

import numpy as np

from seqrec.value._checks import as_float_array, check_binary, check_same_length
from seqrec.value.calibrators import (
    CalibrationMethod,
    Calibrator,
    PlattCalibrator,
    fit_calibrator,
    sigmoid,
)

logger = logging.getLogger(__name__)


def _pairs(scores: object, outcomes: object) -> tuple[np.ndarray, np.ndarray]:
    s = np.atleast_1d(as_float_array("scores", scores))
    y = np.atleast_1d(check_binary("outcomes", outcomes))
    check_same_length(scores=s, outcomes=y)
    return s, y


class OnlinePlatt:
    """Standardised Platt scaling updated by SGD on each (score, outcome) pair (module docstring).

    The running mean and variance use weight ``max(1 / n, scale_rate)`` for the ``n``-th pair:
    exact cumulative statistics at first, an exponentially weighted window of about
    ``1 / scale_rate`` pairs later. The weights ``a, b`` start at 0 (probability 1/2); a constant
    step ``learning_rate`` makes them an exponentially weighted fit over about the last
    ``1 / learning_rate`` pairs, so they follow a drifting calibration.

    Args:
        learning_rate: SGD step (> 0) on the log-loss gradient in standardised units.
        scale_rate: forgetting rate of the mean / variance in (0, 1]; default ``learning_rate``.

    Raises:
        ValueError: if a rate is not positive and finite (or ``scale_rate > 1``).
    """

    def __init__(self, learning_rate: float = 0.01, scale_rate: float | None = None) -> None:
        scale_rate = learning_rate if scale_rate is None else scale_rate
        if not (np.isfinite(learning_rate) and learning_rate > 0):
            raise ValueError(f"learning_rate must be positive and finite; got {learning_rate!r}")
        if not (np.isfinite(scale_rate) and 0 < scale_rate <= 1):
            raise ValueError(f"scale_rate must be in (0, 1]; got {scale_rate!r}")
        self.learning_rate, self.scale_rate = float(learning_rate), float(scale_rate)
        self.a = self.b = 0.0  # weights on the standardised score
        self.mean = self.var = 0.0
        self.n_updates = 0

    def update(self, scores: np.ndarray | float, outcomes: np.ndarray | float) -> None:
        """Take one step per pair, in order (statistics first, then SGD on the standardised score).

        Args:
            scores: ``(n,)`` raw scores, or one score.
            outcomes: ``(n,)`` 0/1 answers, or one answer.

        Raises:
            ValueError: on NaN scores, non-binary outcomes or mismatched lengths.
        """
        s, y = _pairs(scores, outcomes)
        a, b, mean, var, lr = self.a, self.b, self.mean, self.var, self.learning_rate
        n = self.n_updates
        for score, outcome in zip(s.tolist(), y.tolist(), strict=True):
            n += 1
            w = max(1.0 / n, self.scale_rate)
            delta = score - mean
            mean += w * delta
            var = (1.0 - w) * (var + w * delta * delta)
            z = (score - mean) / math.sqrt(var) if var > 0 else 0.0
            logit = a * z + b
            p = 1.0 / (1.0 + math.exp(-logit)) if logit > -700 else 0.0
            a -= lr * (p - outcome) * z
            b -= lr * (p - outcome)
        self.a, self.b, self.mean, self.var, self.n_updates = a, b, mean, var, n

    @property
    def slope(self) -> float:
        """The current map in raw-score units: ``P = sigmoid(slope * s + intercept)``."""
        return self.a / math.sqrt(self.var) if self.var > 0 else 0.0

    @property
    def intercept(self) -> float:
        """See :attr:`slope`."""
        return self.b - self.slope * self.mean

    def predict(self, scores: np.ndarray) -> np.ndarray:
        """Probabilities ``(n,) float64`` under the current parameters.

        Raises:
            ValueError: on NaN or infinite scores.
        """
        return sigmoid(self.slope * as_float_array("scores", scores) + self.intercept)

    def snapshot(self) -> PlattCalibrator:
        """The current parameters as a frozen :class:`~seqrec.value.calibrators.PlattCalibrator`."""
        return PlattCalibrator(self.slope, self.intercept)


class WindowedCalibrator:
    """A batch calibrator refitted on the latest ``window`` pairs every ``refit_every`` updates.

    Before the first successful fit it reads raw scores as ``sigmoid(score)``. A refit that fails
    (a window holding one class for Platt / temperature) keeps the previous calibrator and logs.

    Args:
        method: "isotonic" (default: an online isotonic calibrator), "platt" or "temperature".
        window: pairs kept (>= 2).
        refit_every: pairs between refits (>= 1).

    Raises:
        ValueError: for an unknown method or sizes below their minimum.
    """

    def __init__(
        self, method: CalibrationMethod = "isotonic", window: int = 20_000, refit_every: int = 2_000
    ) -> None:
        if method not in ("isotonic", "platt", "temperature"):
            raise ValueError(f"method must be isotonic, platt or temperature; got {method!r}")
        if window < 2 or refit_every < 1:
            raise ValueError(f"window must be >= 2 and refit_every >= 1; got {window}, {refit_every}")
        self.method, self.window, self.refit_every = method, int(window), int(refit_every)
        self._scores, self._outcomes = np.zeros(self.window), np.zeros(self.window)
        self.n_updates, self._since_refit = 0, 0
        self.calibrator: Calibrator | None = None

    def update(self, scores: np.ndarray | float, outcomes: np.ndarray | float) -> None:
        """Add pairs to the window (oldest dropped) and refit when ``refit_every`` have arrived.

        Raises:
            ValueError: on NaN scores, non-binary outcomes or mismatched lengths.
        """
        s, y = _pairs(scores, outcomes)
        for lo in range(0, len(s), self.refit_every):
            part = slice(lo, lo + self.refit_every)
            self._append(s[part], y[part])
            if self._since_refit >= self.refit_every:
                self._refit()

    def _append(self, s: np.ndarray, y: np.ndarray) -> None:
        s, y = s[-self.window :], y[-self.window :]
        where = (self.n_updates + np.arange(len(s))) % self.window  # ring buffer slots
        self._scores[where], self._outcomes[where] = s, y
        self.n_updates += len(s)
        self._since_refit += len(s)

    def _refit(self) -> None:
        filled = min(self.n_updates, self.window)
        try:
            self.calibrator = fit_calibrator(
                self._scores[:filled], self._outcomes[:filled], self.method
            )
        except ValueError as error:  # one class in the window: keep the last calibrator
            logger.info("windowed %s refit skipped: %s", self.method, error)
        self._since_refit = 0

    def predict(self, scores: np.ndarray) -> np.ndarray:
        """Probabilities ``(n,) float64`` from the latest fit (``sigmoid`` before the first).

        Raises:
            ValueError: on NaN or infinite scores.
        """
        if self.calibrator is None:
            return sigmoid(as_float_array("scores", scores))
        return self.calibrator.predict(scores)

    def snapshot(self) -> Calibrator | None:
        """The latest fitted calibrator (frozen), or None before the first fit."""
        return self.calibrator
