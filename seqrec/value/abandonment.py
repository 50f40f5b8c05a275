"""Session-abandonment model: P(session ends after this item | features), calibrated.

Features (columns of :data:`ABANDONMENT_FEATURES`, one row per impression, known *before* the
item is shown):

* ``position``: 1-based position in the session;
* ``seconds_so_far``: seconds the user spent on earlier items of this session;
* ``median_answer_seconds``: the item's median answer time (a difficulty proxy);
* ``is_free_text``: 1 for free-text questions, 0 for checkbox ones;
* ``past_completion_rate``: the user's answered / shown ratio over *earlier sessions*, smoothed
  as ``(answered + 1) / (shown + 2)`` (0.5 for a new user); never uses the current session.

The classifier is scikit-learn's ``HistGradientBoostingClassifier`` (histogram gradient boosting,
after LightGBM: Ke et al. 2017); its raw log-odds are then calibrated on a separate set of training
users (:mod:`seqrec.value.calibrators`), and ROC AUC and calibration are reported on held-out users.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.metrics import roc_auc_score
from threadpoolctl import threadpool_limits

from seqrec.value.calibrators import CalibrationMethod, Calibrator, fit_calibrator, sigmoid
from seqrec.value.logs import TIME_COLUMN, check_log, split_by_time, split_by_user
from seqrec.value.reliability import CalibrationMetrics, calibration_metrics

logger = logging.getLogger(__name__)

ABANDONMENT_FEATURES = (
    "position",
    "seconds_so_far",
    "median_answer_seconds",
    "is_free_text",
    "past_completion_rate",
)
ITEM_COLUMNS = ("item_id", "median_answer_seconds", "is_free_text")
"""Columns of the item table."""
ABANDONMENT_LOG_COLUMNS = (
    "user_id",
    "session_id",
    "position",
    "item_id",
    "answered",
    "seconds",
    "ended",
)
"""Impression-log columns the model needs; ``seconds`` spent on the item, ``ended`` 1 if the session
ended right after it by abandonment (0 if it went on or was cut by the site's length limit)."""


def impression_features(log: pd.DataFrame, items: pd.DataFrame) -> pd.DataFrame:
    """Compute :data:`ABANDONMENT_FEATURES` for every impression of a chronological log.

    Args:
        log: rows in chronological order with :data:`ABANDONMENT_LOG_COLUMNS` (``ended`` optional).
        items: one row per item with :data:`ITEM_COLUMNS`.

    Returns:
        DataFrame aligned with ``log`` (same index) holding the feature columns.

    Raises:
        ValueError: on missing columns, NaN, or items of the log missing from ``items``.
    """
    check_log(log, ("user_id", "session_id", "position", "item_id", "answered", "seconds"))
    missing = [c for c in ITEM_COLUMNS if c not in items.columns]
    if missing:
        raise ValueError(f"items is missing columns {missing}")
    unknown = set(log["item_id"].unique()) - set(items["item_id"])
    if unknown:
        raise ValueError(f"log.item_id has items missing from items: {sorted(unknown)[:5]}")
    item_table = items.set_index("item_id")
    seconds = log["seconds"].to_numpy(dtype=np.float64)
    seconds_so_far = (
        log.assign(_s=seconds).groupby("session_id", sort=False)["_s"].cumsum() - seconds
    )
    # Per-session totals in order of first appearance, then each user's totals over earlier sessions.
    per_session = log.groupby("session_id", sort=False).agg(
        user_id=("user_id", "first"), answered=("answered", "sum"), shown=("answered", "size")
    )
    earlier = (
        per_session.groupby("user_id", sort=False)[["answered", "shown"]].cumsum()
        - per_session[["answered", "shown"]]
    )
    rate = (earlier["answered"] + 1.0) / (earlier["shown"] + 2.0)
    return pd.DataFrame(
        {
            "position": log["position"].to_numpy(dtype=np.float64),
            "seconds_so_far": seconds_so_far.to_numpy(),
            "median_answer_seconds": item_table.loc[
                log["item_id"], "median_answer_seconds"
            ].to_numpy(dtype=np.float64),
            "is_free_text": item_table.loc[log["item_id"], "is_free_text"].to_numpy(
                dtype=np.float64
            ),
            "past_completion_rate": rate.loc[log["session_id"]].to_numpy(),
        },
        index=log.index,
    )


@dataclass(frozen=True)
class ClassifierModel:
    """A fitted gradient-boosted classifier plus the calibrator of its raw log-odds."""

    classifier: HistGradientBoostingClassifier
    calibrator: Calibrator

    def raw_scores(self, features: np.ndarray) -> np.ndarray:
        """Raw log-odds ``(n,) float64`` for features ``(n, n_features)``."""
        with threadpool_limits(limits=1, user_api="openmp"):
            return self.classifier.decision_function(np.asarray(features, dtype=np.float64))

    def predict(self, features: np.ndarray) -> np.ndarray:
        """Calibrated probabilities ``(n,) float64`` for features ``(n, n_features)``."""
        return self.calibrator.predict(self.raw_scores(features))


@dataclass(frozen=True)
class ClassifierFit:
    """A fitted model and its quality on held-out users (ROC AUC; calibration before/after)."""

    model: ClassifierModel
    auc: float
    before: CalibrationMetrics
    after: CalibrationMetrics
    n_test_users: int


def fit_classifier(
    features: pd.DataFrame,
    target: np.ndarray,
    users: np.ndarray,
    method: CalibrationMethod = "isotonic",
    test_fraction: float = 0.25,
    calibration_fraction: float = 0.3,
    seed: int = 0,
    max_iter: int = 60,
    times: np.ndarray | None = None,
) -> ClassifierFit:
    """Fit HistGradientBoosting, then its calibrator on other rows, and evaluate on the rest.

    Without ``times`` users are split three ways (train / calibration / test) so that no user's
    rows are in two parts. With ``times`` the split follows time (it can see drift): the
    classifier is fitted on the earliest rows, the calibrator on the next window, quality reported
    on the latest ``test_fraction`` of rows; the returned model's calibrator is then **refitted on
    the latest window** (calibration + test rows), the one to serve under drift (``after``
    describes the calibrator fitted before the test window).

    Args:
        features: ``(n, n_features)`` table.
        target: ``(n,)`` 0/1.
        users: ``(n,)`` user id of each row.
        method: calibrator for the raw log-odds.
        test_fraction: share of users held out for AUC and calibration metrics.
        calibration_fraction: share of the remaining users used to fit the calibrator.
        seed: seeds the splits and the classifier.
        max_iter: boosting iterations.
        times: ``(n,)`` event time of each row: split by time (see above).

    Raises:
        ValueError: on bad fractions, or a part with one class only (AUC undefined).
    """
    frame = features.assign(_y=np.asarray(target), user_id=np.asarray(users))
    if times is not None:
        frame = frame.assign(**{TIME_COLUMN: np.asarray(times)})
        outer = split_by_time(frame, test_fraction)
        inner = split_by_time(outer.train, calibration_fraction)
    else:
        outer = split_by_user(frame, test_fraction, seed)
        inner = split_by_user(outer.train, calibration_fraction, seed + 1)
    columns = list(features.columns)
    classifier = HistGradientBoostingClassifier(
        max_iter=max_iter, random_state=seed, early_stopping=False
    )
    # One OpenMP thread: on a small shared machine HGB's threads spin-wait on each other and a
    # 2-second fit took over a minute (measured on 2 busy cores); the data here are small.
    with threadpool_limits(limits=1, user_api="openmp"):
        classifier.fit(
            inner.train[columns].to_numpy(dtype=np.float64), inner.train["_y"].to_numpy()
        )
    raw_cal = classifier.decision_function(inner.test[columns].to_numpy(dtype=np.float64))
    calibrator = fit_calibrator(raw_cal, inner.test["_y"].to_numpy(), method)
    model = ClassifierModel(classifier, calibrator)
    y_test = outer.test["_y"].to_numpy()
    if len(np.unique(y_test)) < 2:
        raise ValueError("held-out users have one class only: ROC AUC is undefined; use more users")
    raw_test = model.raw_scores(outer.test[columns].to_numpy(dtype=np.float64))
    served = model
    if times is not None:  # serve the calibrator of the latest window: calibration + test rows
        latest = np.concatenate([inner.test["_y"].to_numpy(), y_test])
        served = ClassifierModel(classifier, fit_calibrator(np.concatenate([raw_cal, raw_test]),
                                                            latest, method))
    fit = ClassifierFit(
        model=served,
        auc=float(roc_auc_score(y_test, raw_test)),
        before=calibration_metrics(sigmoid(raw_test), y_test),
        after=calibration_metrics(calibrator.predict(raw_test), y_test),
        n_test_users=int(outer.test["user_id"].nunique()),
    )
    logger.info("classifier AUC %.3f, ECE %.4f -> %.4f", fit.auc, fit.before.ece, fit.after.ece)
    return fit


def fit_abandonment(
    log: pd.DataFrame,
    items: pd.DataFrame,
    method: CalibrationMethod = "isotonic",
    test_fraction: float = 0.25,
    seed: int = 0,
) -> ClassifierFit:
    """Fit the calibrated session-abandonment model P(ended | :data:`ABANDONMENT_FEATURES`).

    Args:
        log: chronological impressions with :data:`ABANDONMENT_LOG_COLUMNS`.
        items: item table with :data:`ITEM_COLUMNS`.
        method: calibration method of the raw log-odds.
        test_fraction: share of users held out for ROC AUC and calibration metrics.
        seed: seeds splits and the classifier.

    Raises:
        ValueError: on a malformed log (missing ``ended`` included), see :func:`impression_features`.
    """
    check_log(log, ABANDONMENT_LOG_COLUMNS)
    features = impression_features(log, items)
    return fit_classifier(
        features,
        log["ended"].to_numpy(),
        log["user_id"].to_numpy(),
        method,
        test_fraction,
        seed=seed,
    )
