"""ARPU analysis of a user-level A/B test: users as the unit, sample-ratio check, no lost users.

Assignment lives in :mod:`seqrec.value.assignment` (canonical ids, canonical group order, salted
hash; re-exported here). Analysis: ARPU (revenue per user in dollars) per group, with users as the
unit, a percentile bootstrap CI over users (resampled within each group), and three checks that
warn instead of silently biasing the result:

* **unit mismatch** — a user seen in several groups means the randomisation unit was the session
  (:class:`UnitMismatchWarning`);
* **sample-ratio mismatch (SRM)** — a chi-square goodness-of-fit test of users per group against
  the assigned weights (Pearson 1900; Fabijan et al. 2019, "Diagnosing sample ratio mismatch in
  online controlled experiments"); p below ``srm_alpha`` (default 0.001) warns
  :class:`SampleRatioMismatchWarning` with the counts: the groups differ by more than chance, so
  the comparison is suspect whatever its CI;
* **users with zero revenue left out** — logs often only hold users who paid; dropping the others
  inflates ARPU. Pass ``assigned`` (every assigned user and group) and the missing users count as
  $0, with a :class:`MissingUsersWarning` giving their number; without it, a sample where *no* user
  has zero revenue warns with the count of users.

Sources: the percentile bootstrap, Efron & Tibshirani (1993) "An Introduction to the Bootstrap",
ch. 13; randomisation vs analysis unit, Kohavi, Tang & Xu (2020) "Trustworthy Online Controlled
Experiments", ch. 14 (and ch. 21 on SRM); the session-level CI of :func:`session_level_effect` is
Welch's (1947) unequal-variance standard error with a normal quantile.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd

from seqrec.value._checks import as_float_array
from seqrec.value.assignment import assign_group, assign_groups, check_weights

__all__ = ["assign_group", "assign_groups", "analyze_arpu", "session_level_effect"]

logger = logging.getLogger(__name__)


class UnitMismatchWarning(UserWarning):
    """The randomisation unit (session) differs from the analysis unit (user)."""


class SampleRatioMismatchWarning(UserWarning):
    """Users per group differ from the assigned weights by more than chance (SRM test)."""


class MissingUsersWarning(UserWarning):
    """Users without revenue seem absent from the analysed rows (ARPU would be inflated)."""


@dataclass(frozen=True)
class GroupArpu:
    """ARPU of one group in dollars per user, with a bootstrap CI."""

    group: str
    n_users: int
    arpu: float
    ci_low: float
    ci_high: float


@dataclass(frozen=True)
class ArpuResult:
    """ARPU per group and the treatment - control effect (dollars per user).

    Attributes:
        randomization_unit: "user" if every user is in one group, else "session" (detected).
        unit_mismatch: True when ``randomization_unit`` is not the analysis unit ("user"); then a
            user seen in several groups counts once per group and the CI is not trustworthy.
        srm_pvalue: p-value of the chi-square test of users per group against the weights.
        sample_ratio_mismatch: ``srm_pvalue < srm_alpha``.
        n_missing_users: assigned users absent from ``sessions``, counted with revenue 0.
    """

    control: GroupArpu
    treatment: GroupArpu
    effect: float
    effect_ci_low: float
    effect_ci_high: float
    randomization_unit: Literal["user", "session"]
    unit_mismatch: bool
    srm_pvalue: float = float("nan")
    sample_ratio_mismatch: bool = False
    n_missing_users: int = 0


def _bootstrap_means(values: np.ndarray, n_boot: int, rng: np.random.Generator) -> np.ndarray:
    index = rng.integers(0, len(values), size=(n_boot, len(values)))  # (n_boot, n_users)
    return values[index].mean(axis=1)


def _check_sessions(sessions: pd.DataFrame, control: str, treatment: str) -> None:
    missing = [c for c in ("user_id", "group", "revenue") if c not in sessions.columns]
    if missing:
        raise ValueError(f"sessions is missing columns {missing}")
    revenue = as_float_array("sessions.revenue", sessions["revenue"].to_numpy())
    if (revenue < 0).any():
        raise ValueError(f"sessions.revenue must be >= 0; got {revenue[revenue < 0][0]!r}")
    for name, group in (("control", control), ("treatment", treatment)):
        if not (sessions["group"] == group).any():
            raise ValueError(f"{name} group {group!r} not found in sessions.group")


def _add_missing_users(
    sessions: pd.DataFrame, assigned: pd.DataFrame | None, groups: tuple[str, str]
) -> tuple[pd.DataFrame, int]:
    """Rows of revenue 0 for assigned users absent from ``sessions``, and their count; warns."""
    in_arms = sessions[sessions["group"].isin(groups)]
    if assigned is None:
        totals = in_arms.groupby(["group", "user_id"])["revenue"].sum()
        if len(totals) and (totals > 0).all():
            warnings.warn(
                f"none of the {len(totals)} users has zero revenue: users without revenue may be "
                "missing from sessions, which inflates ARPU; pass assigned= (every assigned user)",
                MissingUsersWarning,
                stacklevel=3,
            )
        return sessions, 0
    lacking = [c for c in ("user_id", "group") if c not in assigned.columns]
    if lacking:
        raise ValueError(f"assigned is missing columns {lacking}")
    assigned = assigned[assigned["group"].isin(groups)].drop_duplicates(["user_id", "group"])
    seen = pd.MultiIndex.from_frame(in_arms[["user_id", "group"]])
    absent = assigned[~pd.MultiIndex.from_frame(assigned[["user_id", "group"]]).isin(seen)]
    if len(absent):
        warnings.warn(
            f"{len(absent)} assigned users have no row in sessions: counted with revenue 0",
            MissingUsersWarning,
            stacklevel=3,
        )
        zero = absent[["user_id", "group"]].assign(revenue=0.0)
        sessions = pd.concat([sessions[["user_id", "group", "revenue"]], zero], ignore_index=True)
    return sessions, len(absent)


def sample_ratio_test(
    counts: Mapping[str, int], weights: Mapping[str, float] | None = None
) -> float:
    """p-value of the chi-square goodness-of-fit test of users per group against ``weights``.

    Args:
        counts: group -> users analysed.
        weights: group -> assigned share (a full weight set summing to 1; only the groups in
            ``counts`` are compared, their shares renormalised); default equal shares.

    Raises:
        ValueError: naming ``weights`` when they do not sum to 1 or lack a group of ``counts``.
    """
    from scipy.stats import chisquare

    names = list(counts)
    if weights is None:
        shares = np.full(len(names), 1.0 / len(names))
    else:
        check_weights(weights)
        unknown = [n for n in names if n not in weights]
        if unknown:
            raise ValueError(f"weights must name every analysed group; missing {unknown}")
        shares = np.array([weights[n] for n in names], dtype=np.float64)
        shares = shares / shares.sum()
    observed = np.array([counts[n] for n in names], dtype=np.float64)
    if len(names) < 2 or observed.sum() == 0:
        return 1.0
    return float(chisquare(observed, observed.sum() * shares).pvalue)


def analyze_arpu(
    sessions: pd.DataFrame,
    control: str,
    treatment: str,
    n_boot: int = 2000,
    confidence: float = 0.95,
    seed: int = 0,
    *,
    weights: Mapping[str, float] | None = None,
    assigned: pd.DataFrame | None = None,
    srm_alpha: float = 0.001,
) -> ArpuResult:
    """ARPU per group with users as the unit; bootstrap CI over users; SRM and missing-user checks.

    Args:
        sessions: one row per session (or impression) with columns ``user_id``, ``group``,
            ``revenue`` (dollars, >= 0).
        control, treatment: group names.
        n_boot: bootstrap resamples.
        confidence: CI level in (0, 1).
        seed: bootstrap seed.
        weights: the assignment weights (as given to :func:`assign_groups`) for the SRM test;
            default equal shares of control and treatment.
        assigned: every assigned user, columns ``user_id`` and ``group``; users absent from
            ``sessions`` count as revenue 0 (see the module docstring).
        srm_alpha: SRM test level.

    Returns:
        :class:`ArpuResult`. Warns :class:`UnitMismatchWarning` when a user appears in several
        groups, :class:`SampleRatioMismatchWarning` on an SRM, :class:`MissingUsersWarning`
        (with the count) when users without revenue are, or seem to be, missing.

    Raises:
        ValueError: on missing columns, NaN or negative revenue, unknown groups, bad confidence,
            or weights that do not sum to 1.
    """
    _check_sessions(sessions, control, treatment)
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1); got {confidence!r}")
    sessions, n_missing = _add_missing_users(sessions, assigned, (control, treatment))
    groups_per_user = sessions.groupby("user_id")["group"].nunique()
    unit: Literal["user", "session"] = "session" if (groups_per_user > 1).any() else "user"
    if unit != "user":
        warnings.warn(
            f"{int((groups_per_user > 1).sum())} users appear in several groups: the test was "
            "randomised by session but ARPU is analysed per user; effects and CIs are biased",
            UnitMismatchWarning,
            stacklevel=2,
        )
    per_user = sessions.groupby(["group", "user_id"])["revenue"].sum()
    counts = {g: len(per_user.loc[g]) for g in (control, treatment)}
    srm_pvalue = sample_ratio_test(counts, weights)
    if srm_pvalue < srm_alpha:
        warnings.warn(
            f"sample-ratio mismatch: users per group {counts} against weights "
            f"{dict(weights) if weights else 'equal'} (chi-square p = {srm_pvalue:.2g}); the "
            "groups differ by more than chance: check assignment and logging before the effect",
            SampleRatioMismatchWarning,
            stacklevel=2,
        )
    rng = np.random.default_rng(seed)
    alpha = (1 - confidence) / 2
    results, draws = {}, {}
    for group in (control, treatment):
        values = per_user.loc[group].to_numpy(dtype=np.float64)
        draws[group] = _bootstrap_means(values, n_boot, rng)
        low, high = np.quantile(draws[group], [alpha, 1 - alpha])
        results[group] = GroupArpu(
            group, len(values), float(values.mean()), float(low), float(high)
        )
    diff = draws[treatment] - draws[control]
    low, high = np.quantile(diff, [alpha, 1 - alpha])
    return ArpuResult(
        control=results[control],
        treatment=results[treatment],
        effect=results[treatment].arpu - results[control].arpu,
        effect_ci_low=float(low),
        effect_ci_high=float(high),
        randomization_unit=unit,
        unit_mismatch=unit != "user",
        srm_pvalue=srm_pvalue,
        sample_ratio_mismatch=srm_pvalue < srm_alpha,
        n_missing_users=n_missing,
    )


@dataclass(frozen=True)
class SessionLevelEffect:
    """The usual reading of a session-split test: per-session revenue, sessions treated as i.i.d.

    ``effect`` is scaled to dollars per user by the mean number of sessions per user, so it is
    comparable with :attr:`ArpuResult.effect`. ``unit_mismatch`` is always True.
    """

    effect: float
    ci_low: float
    ci_high: float
    sessions_per_user: float
    unit_mismatch: bool = True


def session_level_effect(
    sessions: pd.DataFrame, control: str, treatment: str, confidence: float = 0.95
) -> SessionLevelEffect:
    """Difference of mean revenue per session (normal CI, sessions as independent units) × sessions/user.

    Kept to show what goes wrong: sessions of one user are correlated (its CI is too narrow) and a
    policy's effect on how often users come back is shared by both arms (the estimate is biased).

    Args:
        sessions: one row per session with ``user_id``, ``group``, ``revenue`` (dollars).

    Raises:
        ValueError: on missing groups or columns, NaN revenue.
    """
    from scipy.stats import norm

    for name, group in (("control", control), ("treatment", treatment)):
        if not (sessions["group"] == group).any():
            raise ValueError(f"{name} group {group!r} not found in sessions.group")
    revenue = as_float_array("sessions.revenue", sessions["revenue"].to_numpy())
    a = revenue[(sessions["group"] == control).to_numpy()]
    b = revenue[(sessions["group"] == treatment).to_numpy()]
    scale = len(sessions) / sessions["user_id"].nunique()
    se = np.sqrt(a.var(ddof=1) / len(a) + b.var(ddof=1) / len(b))
    z = norm.ppf(0.5 + confidence / 2)
    effect = b.mean() - a.mean()
    return SessionLevelEffect(
        effect=float(effect * scale),
        ci_low=float((effect - z * se) * scale),
        ci_high=float((effect + z * se) * scale),
        sessions_per_user=float(scale),
    )
