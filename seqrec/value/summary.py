"""Per-session and per-policy summaries of simulated logs, with user-level bootstrap CIs.

Sessions of one user are correlated, so every interval here resamples **users** (a clustered
bootstrap: Cameron, Gelbach & Miller 2008, "Bootstrap-based improvements for inference with
clustered errors"), and per-session means are ratio estimators ``sum over users / sum of
sessions``. NDCG uses relevance = answered (Järvelin & Kekäläinen 2002).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd


def session_table(log: pd.DataFrame) -> pd.DataFrame:
    """One row per session of an impression log.

    Args:
        log: rows with ``user_id, session_id, position, answered, price, policy``.

    Returns:
        Columns ``session_id, user_id, policy, revenue`` (dollars), ``answers``, ``length`` (items
        shown) and ``ndcg`` of the shown order with relevance = answered (0 for a session with no
        answer).
    """
    discount = 1.0 / np.log2(log["position"].to_numpy() + 1.0)
    frame = log.assign(
        revenue=log["price"] * log["answered"],
        dcg=log["answered"] * discount,
    )
    sessions = frame.groupby("session_id", sort=False).agg(
        user_id=("user_id", "first"),
        policy=("policy", "first"),
        revenue=("revenue", "sum"),
        answers=("answered", "sum"),
        length=("answered", "size"),
        dcg=("dcg", "sum"),
    )
    ideal = np.concatenate(
        [[0.0], np.cumsum(1.0 / np.log2(np.arange(2, 2 + log["position"].max())))]
    )
    idcg = ideal[sessions["answers"].to_numpy()]
    sessions["ndcg"] = np.where(idcg > 0, sessions["dcg"] / np.where(idcg > 0, idcg, 1.0), 0.0)
    return sessions.drop(columns="dcg").reset_index()


@dataclass(frozen=True)
class Estimate:
    """A mean with a 95% CI (percentile bootstrap over users)."""

    mean: float
    ci_low: float
    ci_high: float


def user_ratio(
    numerator: np.ndarray, denominator: np.ndarray, n_boot: int, rng: np.random.Generator
) -> Estimate:
    """``sum(numerator) / sum(denominator)`` over users, CI by resampling users.

    Args:
        numerator: ``(n_users,)`` float64 per-user totals.
        denominator: ``(n_users,)`` float64 per-user totals (ones for a per-user mean).
        n_boot: bootstrap resamples.
        rng: draws the resamples.
    """
    index = rng.integers(0, len(numerator), size=(n_boot, len(numerator)))  # (n_boot, n_users)
    draws = numerator[index].sum(axis=1) / denominator[index].sum(axis=1)
    low, high = np.quantile(draws, [0.025, 0.975])
    return Estimate(float(numerator.sum() / denominator.sum()), float(low), float(high))


@dataclass(frozen=True)
class PolicyRow:
    """Outcome of one policy run on all users; per-session metrics averaged over sessions."""

    policy: str
    estimates: Literal["model", "oracle"]
    ndcg: Estimate
    answers_per_session: Estimate
    session_length: Estimate
    arpu: Estimate
    n_users: int
    n_sessions: int


def summarise(
    log: pd.DataFrame, policy: str, estimates: Literal["model", "oracle"], n_boot: int, seed: int
) -> PolicyRow:
    """User-level 95% CIs of NDCG, answers/session, session length (ratio estimators) and ARPU.

    Args:
        log: one policy's impression log (see :func:`session_table`).
        policy: its name, copied into the row.
        estimates: "model" or "oracle", copied into the row.
        n_boot: bootstrap resamples.
        seed: seeds the bootstrap.
    """
    sessions = session_table(log)
    per_user = sessions.groupby("user_id")[["revenue", "answers", "length", "ndcg"]].sum()
    n_sessions = sessions.groupby("user_id").size().to_numpy(dtype=np.float64)
    ones = np.ones(len(per_user))
    rng = np.random.default_rng(seed)
    return PolicyRow(
        policy=policy,
        estimates=estimates,
        ndcg=user_ratio(per_user["ndcg"].to_numpy(), n_sessions, n_boot, rng),
        answers_per_session=user_ratio(
            per_user["answers"].to_numpy(dtype=np.float64), n_sessions, n_boot, rng
        ),
        session_length=user_ratio(
            per_user["length"].to_numpy(dtype=np.float64), n_sessions, n_boot, rng
        ),
        arpu=user_ratio(per_user["revenue"].to_numpy(), ones, n_boot, rng),
        n_users=len(per_user),
        n_sessions=len(sessions),
    )
