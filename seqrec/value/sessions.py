"""The session loop of the survey simulator: users answer (or not), abandon, and come back.

The rules are those of :mod:`seqrec.value.survey` (the generative model). Every step runs the
serving path: **filter** (the eligibility mask: not shown in this session, not answered before)
-> **score and calibrate** (an estimator's ``(p, c)``, :mod:`seqrec.value.estimators`) ->
**order** (a policy, :mod:`seqrec.value.policies`, within the session cap) -> **serve** (the user
answers or not, abandons or not). All sessions at one position are processed as one batch.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from seqrec.value.estimators import Estimator
from seqrec.value.planning import positional_plans
from seqrec.value.policies import PolicyOf, choose
from seqrec.value.ranking import best_next
from seqrec.value.survey import Questions, StepContext, SurveyConfig, Users, true_probabilities

PLAN_CANDIDATES = 8
"""Candidates per session of the ``positional`` policy's exact plan (2^8 subsets)."""

LOG_OUTPUT_COLUMNS = (
    "user_id",
    "session_id",
    "position",
    "item_id",
    "answered",
    "price",
    "seconds",
    "ended",
    "policy",
    "timestamp",
)
"""Columns of the log :func:`simulate` returns."""


def simulate(
    config: SurveyConfig,
    questions: Questions,
    users: Users,
    policy_of: PolicyOf,
    estimator: Estimator | None,
    seed: int,
) -> pd.DataFrame:
    """Simulate every user's sessions; all sessions at one step are processed as one batch.

    Args:
        config: the generative model.
        questions: the catalogue.
        users: who takes the survey.
        policy_of: the policy of each session (constant, or an A/B assignment).
        estimator: estimates for non-random policies (may be None if all sessions are random).
        seed: seeds outcomes and the random policy (``np.random.default_rng(seed)``).

    Returns:
        Impression log with :data:`LOG_OUTPUT_COLUMNS`, chronological per user (session ``k``, then
        position): ``answered`` and ``ended`` int64 0/1, ``price`` dollars, ``seconds`` seconds;
        ``session_id = user_id * n_sessions + k``; ``timestamp = arrival + 0.001 k + 1e-5
        position`` (units of the training log's span; users arrive in id order).

    Raises:
        ValueError: if a session needs a model (non-random policy) and ``estimator`` is None, or
            ``policy_of`` names an unknown policy.
    """
    rng = np.random.default_rng(seed)
    n_users, n_items = len(users.user_ids), config.n_items
    answered_ever = np.zeros((n_users, n_items), dtype=bool)
    past = np.zeros((n_users, 2))  # (n_users, [answered, shown]) over finished sessions
    active = np.arange(n_users)
    rows: list[dict[str, np.ndarray]] = []
    for k in range(config.n_sessions):
        if len(active) == 0:
            break
        user_ids = users.user_ids[active]
        session_ids = user_ids * config.n_sessions + k
        policies = np.asarray(policy_of(user_ids, session_ids), dtype=object)
        batch = len(active)
        shown = np.zeros((batch, n_items), dtype=bool)
        alive = np.ones(batch, dtype=bool)
        seconds_so_far = np.zeros(batch)
        counts = np.zeros((batch, 2))  # (batch, [answered, shown]) in this session
        past_rate = (past[active, 0] + 1.0) / (past[active, 1] + 2.0)
        for position in range(1, config.max_session_length + 1):
            is_eligible = ~shown & ~answered_ever[active]
            alive &= is_eligible.any(axis=1)  # nothing left to ask: the session stops
            idx = np.flatnonzero(alive)
            if len(idx) == 0:
                break
            u = active[idx]
            ctx = StepContext(
                position,
                users.propensity[u],
                users.patience[u],
                seconds_so_far[idx],
                past_rate[idx],
                users.arrival[u],
            )
            step_policies = policies[idx]
            needs_model = step_policies != "random"
            p_hat = c_hat = np.zeros((len(idx), n_items))
            if needs_model.any():
                if estimator is None:
                    raise ValueError("estimator must be given for non-random policies; got None")
                p_hat, c_hat = np.zeros((len(idx), n_items)), np.ones((len(idx), n_items))
                p_hat[needs_model], c_hat[needs_model] = estimator(ctx.select(needs_model))
            if position == 1 and (step_policies == "positional").any():
                plans = np.full((batch, config.max_session_length), -1, dtype=np.int64)
                plans[idx] = _plan_sessions(
                    config, questions, estimator, ctx, step_policies, is_eligible[idx]
                )
            chosen = np.empty(len(idx), dtype=np.int64)
            for policy in np.unique(step_policies):
                rows_of = step_policies == policy
                if policy == "positional":
                    planned = plans[idx[rows_of], position - 1]
                    fallback = best_next(p_hat[rows_of], questions.price[None, :],
                                         c_hat[rows_of], is_eligible[idx][rows_of])
                    chosen[rows_of] = np.where(planned >= 0, planned, fallback)
                    continue
                chosen[rows_of] = choose(
                    str(policy),
                    p_hat[rows_of],
                    c_hat[rows_of],
                    questions.price,
                    is_eligible[idx][rows_of],
                    rng,
                    config.max_session_length - position + 1,
                )
            p_true, c_true = true_probabilities(config, questions, ctx)
            pick = np.arange(len(idx))
            answered = rng.random(len(idx)) < p_true[pick, chosen]
            ended = rng.random(len(idx)) >= c_true[pick, chosen]
            seconds = questions.median_seconds[chosen] * np.exp(rng.normal(0.0, 0.3, len(idx)))
            seconds *= np.where(answered, 1.0, 0.4)
            rows.append(
                {
                    "user_id": users.user_ids[u],
                    "session_id": session_ids[idx],
                    "position": np.full(len(idx), position),
                    "item_id": chosen,
                    "answered": answered.astype(np.int64),
                    "price": questions.price[chosen],
                    "seconds": seconds,
                    "ended": ended.astype(np.int64),
                    "policy": step_policies,
                    "timestamp": users.arrival[u] + 0.001 * k + 1e-5 * position,
                    "_k": np.full(len(idx), k),
                }
            )
            shown[idx, chosen] = True
            answered_ever[u[answered], chosen[answered]] = True
            seconds_so_far[idx] += seconds
            counts[idx, 0] += answered
            counts[idx, 1] += 1
            alive[idx[ended]] = False
        past[active] += counts
        rate = counts[:, 0] / np.maximum(counts[:, 1], 1.0)
        returns = rng.random(batch) < config.return_base + config.return_gain * rate
        active = active[returns]
    log = pd.DataFrame({key: np.concatenate([r[key] for r in rows]) for key in rows[0]})
    # Chronological order: user, their session k, position.
    log = log.sort_values(["user_id", "_k", "position"], kind="stable").drop(columns="_k")
    return log.reset_index(drop=True)


def _plan_sessions(
    config: SurveyConfig,
    questions: Questions,
    estimator: Estimator | None,
    ctx: StepContext,
    policies: np.ndarray,
    is_eligible: np.ndarray,
) -> np.ndarray:
    """``(batch, max_session_length)`` exact position-aware plans of the ``positional``
    sessions (-1 elsewhere), from estimates at every position of the session; ``ctx``,
    ``policies`` and ``is_eligible`` describe the same ``batch`` sessions."""
    if estimator is None:
        raise ValueError("estimator must be given for non-random policies; got None")
    rows = policies == "positional"
    horizon = config.max_session_length
    plans = np.full((len(policies), horizon), -1, dtype=np.int64)
    ahead = ctx.select(rows)
    steps = [estimator(ahead.at(t)) for t in range(1, horizon + 1)]
    p = np.stack([s[0] for s in steps], axis=2)  # (n_rows, n_items, horizon)
    c = np.stack([s[1] for s in steps], axis=2)
    plans[rows] = positional_plans(
        p, questions.price, c, is_eligible[rows], horizon, PLAN_CANDIDATES
    )
    return plans
