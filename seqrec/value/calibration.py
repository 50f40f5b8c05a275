"""Calibrate a scorer on held-out data: fit on one part of an impression log, report on another.

A *scorer* is anything that turns impression rows into raw scores (logits: larger means more
likely to be answered). :func:`calibrate` splits the log — by **time** when it has a
``timestamp`` column (fit on the past, report on the latest rows: the only split that can see
drift; :func:`seqrec.value.logs.split_by_time`), otherwise by **user**
(:func:`seqrec.value.logs.split_by_user`) — fits a calibrator (:mod:`seqrec.value.calibrators`)
on one part and reports log-loss, Brier score and ECE with equal-width and equal-mass bins
(:mod:`seqrec.value.reliability`) before and after on the other part.

Sources: Platt (1999); Guo et al. (2017); Zadrozny & Elkan (2002) — see
:mod:`seqrec.value.calibrators`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, Protocol

import numpy as np
import pandas as pd

from seqrec.value._checks import as_float_array
from seqrec.value.calibrators import CalibrationMethod, Calibrator, fit_calibrator, sigmoid
from seqrec.value.logs import TIME_COLUMN, check_log, split_by_time, split_by_user
from seqrec.value.reliability import (
    CalibrationMetrics,
    ReliabilityCurve,
    calibration_metrics,
    reliability_curve,
)

logger = logging.getLogger(__name__)


class Scorer(Protocol):
    """Maps impression rows (a DataFrame with :data:`~seqrec.value.logs.LOG_COLUMNS`) to raw
    scores ``(n_rows,) float64``."""

    def __call__(self, rows: pd.DataFrame) -> np.ndarray: ...


def pairwise_scorer(score_pair: Callable[[tuple, object], float]) -> Scorer:
    """Adapt a ``(history, candidate) -> raw score`` function to a row :class:`Scorer`.

    ``history`` is the tuple of item ids shown earlier in the same session (rows are taken in
    log order), ``candidate`` the row's item id. One Python call per row: for tests and small
    logs; batch scorers should implement :class:`Scorer` directly.

    Returns:
        A scorer reading the ``session_id`` and ``item_id`` columns, returning ``(n_rows,) float64``.
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


@dataclass(frozen=True)
class CalibrationReport:
    """Before/after calibration quality on the held-out part.

    ``before`` reads raw scores as ``sigmoid(score)``; ``after`` applies ``calibrator``.
    ``holdout`` is the split used ("time" or "user"); ``n_train_rows`` / ``n_test_rows`` its sizes.
    """

    calibrator: Calibrator
    before: CalibrationMetrics
    after: CalibrationMetrics
    curve_before: ReliabilityCurve
    curve_after: ReliabilityCurve
    n_train_users: int
    n_test_users: int
    holdout: str = "user"
    n_train_rows: int = 0
    n_test_rows: int = 0


Holdout = Literal["auto", "time", "user"]
CALIBRATION_COLUMNS = ("user_id", "answered")
"""Columns :func:`calibrate` needs (besides what the scorer reads, and ``timestamp`` for time)."""


def calibrate(
    log: pd.DataFrame,
    scorer: Scorer,
    method: CalibrationMethod = "isotonic",
    test_fraction: float = 0.3,
    seed: int = 0,
    n_bins: int = 10,
    holdout: Holdout = "auto",
    fit_fraction: float | None = None,
) -> CalibrationReport:
    """Fit a calibrator on one part of the impressions and report its quality on the other.

    Args:
        log: impressions with ``user_id``, 0/1 ``answered`` and whatever ``scorer`` reads; a
            ``timestamp`` column enables the time split.
        scorer: raw scores for rows; called once per part.
        method: "platt", "temperature" or "isotonic".
        test_fraction: share held out for the report (of rows for "time", of users for "user").
        seed: seed of the user split.
        n_bins: ECE / reliability bins (equal-width and equal-mass).
        holdout: "time" fits on earlier rows and reports on the latest; "user" holds out random
            users (cannot see drift); "auto" (default) is "time" when the log has a
            ``timestamp`` column, else "user".
        fit_fraction: with "time", fit on only the latest ``fit_fraction`` of rows before the
            held-out part (a recent window under drift); default all earlier rows.

    Raises:
        ValueError: on a malformed log, NaN scores, a bad method / fraction / holdout, "time"
            without a ``timestamp`` column, or (Platt and temperature) a fitting part whose answers
            are all 0 or all 1.
    """
    check_log(log, CALIBRATION_COLUMNS)
    if holdout not in ("auto", "time", "user"):
        raise ValueError(f"holdout must be 'auto', 'time' or 'user'; got {holdout!r}")
    if holdout == "auto":
        holdout = "time" if TIME_COLUMN in log.columns else "user"
    if holdout == "time":
        split = split_by_time(log, test_fraction, fit_fraction)
    else:
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
        holdout=holdout,
        n_train_rows=len(split.train),
        n_test_rows=len(split.test),
    )
    logger.info(
        "calibration %s (%s holdout): ECE %.4f -> %.4f",
        method,
        holdout,
        report.before.ece,
        report.after.ece,
    )
    return report
