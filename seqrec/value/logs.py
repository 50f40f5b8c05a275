"""Impression logs: the columns every log has, their checks, and the split by user.

An impression log has one row per item shown, in chronological order, with :data:`LOG_COLUMNS`
(``answered`` 0/1, ``price`` in dollars). Calibrators and the abandonment model are fitted on some
users and evaluated on *other* users (:func:`split_by_user`): rows of one user are correlated, so a
row-level split would overstate quality.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from seqrec.value._checks import check_binary, check_nonnegative

LOG_COLUMNS = ("user_id", "session_id", "position", "item_id", "answered", "price")
"""Columns every impression log must have; rows are in chronological order."""


def check_log(log: pd.DataFrame, columns: Sequence[str] = LOG_COLUMNS) -> None:
    """Check that ``log`` has ``columns`` without NaN, 0/1 ``answered`` and prices >= 0.

    Args:
        log: impression rows.
        columns: the columns required (default :data:`LOG_COLUMNS`); ``answered`` and ``price``
            are checked only when listed.

    Raises:
        ValueError: naming missing columns, a column with NaN, non-binary answers or a negative
            price.
    """
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
class UserSplit:
    """Rows of a log split by user: no user appears in both parts (row order kept in each)."""

    train: pd.DataFrame
    test: pd.DataFrame


def split_by_user(log: pd.DataFrame, test_fraction: float, seed: int) -> UserSplit:
    """Hold out ``round(test_fraction * n_users)`` random users with all their sessions.

    Users are drawn without replacement with ``np.random.default_rng(seed)``.

    Args:
        log: rows with a ``user_id`` column.
        test_fraction: share of users in :attr:`UserSplit.test`, in (0, 1).
        seed: seed of the draw.

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


TIME_COLUMN = "timestamp"
"""Column of event times (any numeric or datetime type); its presence makes ``holdout="time"``
the default of :func:`seqrec.value.calibration.calibrate`."""


def split_by_time(
    log: pd.DataFrame, test_fraction: float, fit_fraction: float | None = None
) -> UserSplit:
    """Hold out the *latest* rows: fit on the past, report on the future, as deployment does.

    The log is ordered by :data:`TIME_COLUMN` (stable); the last ``round(test_fraction * n)`` rows
    form the test part, and rows at the boundary time go to the test part too (no time is in both
    parts). With ``fit_fraction`` only the latest ``round(fit_fraction * n)`` rows before the test
    part are kept for fitting (a recent window, for drift); default all earlier rows. A user may
    appear in both parts (the question is how well the past predicts the future).

    Args:
        log: rows with a :data:`TIME_COLUMN` column.
        test_fraction: share of rows held out, in (0, 1).
        fit_fraction: share of rows to fit on, in (0, 1 - test_fraction], or None.

    Raises:
        ValueError: naming the argument for fractions out of range, a missing time column, NaN
            times, or an empty part.
    """
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction must be in (0, 1); got {test_fraction!r}")
    if fit_fraction is not None and not 0.0 < fit_fraction <= 1.0 - test_fraction:
        raise ValueError(
            f"fit_fraction must be in (0, 1 - test_fraction = {1 - test_fraction:g}]; got "
            f"{fit_fraction!r}"
        )
    if TIME_COLUMN not in log.columns:
        raise ValueError(f"log must have a {TIME_COLUMN} column; got columns {list(log.columns)}")
    times = log[TIME_COLUMN]
    if times.isna().any():
        raise ValueError(f"log column {TIME_COLUMN!r} contains NaN")
    order = np.argsort(times.to_numpy(), kind="stable")
    ordered = log.iloc[order]
    n_test = int(round(test_fraction * len(log)))
    boundary = ordered[TIME_COLUMN].iloc[len(log) - n_test] if 0 < n_test <= len(log) else None
    is_test = (ordered[TIME_COLUMN] >= boundary).to_numpy() if boundary is not None else None
    if is_test is None or is_test.all() or not is_test.any():
        raise ValueError(f"test_fraction={test_fraction!r} leaves an empty part with {len(log)} rows")
    train = ordered[~is_test]
    if fit_fraction is not None:
        train = train.iloc[max(len(train) - int(round(fit_fraction * len(log))), 0) :]
    return UserSplit(train, ordered[is_test])
