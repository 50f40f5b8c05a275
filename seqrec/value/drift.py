"""Calibrators under drift: fit on the past log, judge on the future one.

The survey world drifts (``SurveyConfig.drift_answer`` / ``drift_abandon``: answer and abandonment
log-odds move with time). :func:`calibration_under_drift` fits one gradient-boosted classifier per
target (answer, abandonment) on a random 40% of the past log's users, then calibrates its raw
log-odds on the *other* users' rows in several ways and reports each on a log from the future:

* ``none`` — ``sigmoid(raw log-odds)``;
* ``Platt, user holdout`` / ``isotonic, user holdout`` — fitted on all those rows (random users,
  every time): what ``calibrate(holdout="user")`` does; blind to drift;
* ``Platt, latest 30%`` / ``isotonic, latest 30%`` — fitted on the latest 30% of the rows by time
  (``holdout="time"`` with a recent fitting window);
* ``online Platt`` — :class:`~seqrec.value.online.OnlinePlatt` streamed over the rows in time
  order (learning rate 0.002);
* ``windowed isotonic`` — :class:`~seqrec.value.online.WindowedCalibrator` streamed in time order
  (window: 30% of the rows, refit every 5%).

Each row reports log-loss, Brier and ECE with equal-width and equal-mass bins on the future log.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.ensemble import HistGradientBoostingClassifier
from threadpoolctl import threadpool_limits

from seqrec.value.abandonment import ABANDONMENT_FEATURES, impression_features
from seqrec.value.calibrators import fit_calibrator, sigmoid
from seqrec.value.logs import split_by_time, split_by_user
from seqrec.value.online import OnlinePlatt, WindowedCalibrator
from seqrec.value.reliability import CalibrationMetrics, calibration_metrics
from seqrec.value.survey import Questions


@dataclass(frozen=True)
class DriftRow:
    """Quality on the future log of one calibrator of one target ("answer" or "abandonment")."""

    target: str
    calibrator: str
    metrics: CalibrationMetrics


def _streamed(calibrator: OnlinePlatt | WindowedCalibrator, scores: np.ndarray,
              outcomes: np.ndarray) -> OnlinePlatt | WindowedCalibrator:
    calibrator.update(scores, outcomes)
    return calibrator


def calibration_under_drift(
    past: pd.DataFrame, future: pd.DataFrame, questions: Questions, seed: int = 0
) -> tuple[DriftRow, ...]:
    """Compare calibrators fitted on ``past`` by their quality on ``future`` (module docstring).

    Args:
        past, future: simulated impression logs (:func:`seqrec.value.sessions.simulate`, with
            ``timestamp``), ``future`` later than ``past``.
        questions: their catalogue.
        seed: seeds the user split and the classifiers.

    Raises:
        ValueError: when a part holds one class only (too few users).
    """
    items = questions.table()
    past = past.assign(**{c: impression_features(past, items)[c] for c in ABANDONMENT_FEATURES})
    future_x = impression_features(future, items)[list(ABANDONMENT_FEATURES)].to_numpy(np.float64)
    split = split_by_user(past, 0.6, seed)  # test part: the rows the calibrators see
    rows: list[DriftRow] = []
    for target, column in (("answer", "answered"), ("abandonment", "ended")):
        classifier = HistGradientBoostingClassifier(max_iter=60, random_state=seed,
                                                    early_stopping=False)
        with threadpool_limits(limits=1, user_api="openmp"):
            classifier.fit(split.train[list(ABANDONMENT_FEATURES)].to_numpy(np.float64),
                           split.train[column].to_numpy())
            calib = split.test.sort_values("timestamp", kind="stable")
            raw = classifier.decision_function(calib[list(ABANDONMENT_FEATURES)].to_numpy(np.float64))
            raw_future = classifier.decision_function(future_x)
        y, y_future = calib[column].to_numpy(), future[column].to_numpy()
        latest = split_by_time(calib.assign(_raw=raw), 0.3)
        n = len(raw)
        candidates = {
            "none": None,
            "Platt, user holdout": fit_calibrator(raw, y, "platt"),
            "isotonic, user holdout": fit_calibrator(raw, y, "isotonic"),
            "Platt, latest 30%": fit_calibrator(latest.test["_raw"], latest.test[column], "platt"),
            "isotonic, latest 30%": fit_calibrator(latest.test["_raw"], latest.test[column],
                                                   "isotonic"),
            "online Platt": _streamed(OnlinePlatt(learning_rate=0.002), raw, y),
            "windowed isotonic": _streamed(
                WindowedCalibrator("isotonic", max(2, int(0.3 * n)), max(1, int(0.05 * n))), raw, y
            ),
        }
        for name, calibrator in candidates.items():
            p = sigmoid(raw_future) if calibrator is None else calibrator.predict(raw_future)
            rows.append(DriftRow(target, name, calibration_metrics(np.clip(p, 0, 1), y_future)))
    return tuple(rows)
