r"""A survey simulator for comparing ranking policies and A/B designs on revenue per user.

Generative model (all randomness from ``np.random.default_rng(seed)``; logits use ``sigmoid``):

* **Questions** ``j = 1..n_items``: type ``free_text_j ~ Bernoulli(free_text_share)``; difficulty
  ``d_j ~ Normal(0, 1) + 0.7 free_text_j``; price (dollars) ``r_j = 0.10 + 0.30 exp(0.4 d_j + 0.6 z_j) +
  0.30 free_text_j`` with ``z_j ~ Normal(0, 1)`` the client's budget (hard questions pay more on
  average, but some easy ones pay well); median answer time (seconds)
  ``m_j = 12 exp(0.4 d_j + 0.8 free_text_j)``.
* **Users** ``i``: propensity ``a_i ~ Normal(0, 0.8)`` (likes to answer) and patience
  ``b_i ~ Normal(0, 0.8)`` (stays longer).
* **Shown at position t** (1-based) in a session:
  ``P(answer) = sigmoid(answer_base + a_i - answer_difficulty d_j - fatigue (t - 1))``;
  after the item the user **abandons** with
  ``P(end) = sigmoid(abandon_base - b_i + abandon_difficulty d_j + abandon_free_text free_text_j
  + abandon_fatigue (t - 1))``, independently of the answer; time spent is
  ``m_j exp(Normal(0, 0.3))`` seconds, times 0.4 when not answered.
* **Sessions**: at most ``max_session_length`` items; no question is shown twice in a session or
  after it was answered; a user starts one session and, after each, returns for another (up to
  ``n_sessions``) with probability ``return_base + return_gain * (answers / shown)`` of the session
  just finished, so a policy's effect on experience carries over to later sessions.

Revenue is the price of each answered question. Policies pick the next question among eligible
ones with estimated answer probability ``p``, continuation ``c = 1 - P(end)`` and price ``r``:

* ``random``: uniform (also the logging policy of the training logs);
* ``likely``: max ``p`` (what an engagement model with the best NDCG does);
* ``value``: max ``p r``;
* ``cascade``: max ``p r / (1 - c)``, re-scored at every step (:func:`seqrec.value.ranking.best_next`).

Estimates come from models fitted on logs of the random logging policy: a gradient-boosted answer
model calibrated with Platt scaling and the calibrated abandonment model of
:mod:`seqrec.value.abandonment` (features: position, seconds so far, item difficulty proxies,
user's past completion rate). ``oracle=True`` adds the same policies with the true probabilities.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol

import numpy as np
import pandas as pd

from seqrec.value.ab import analyze_arpu, assign_groups, session_level_effect
from seqrec.value.abandonment import (
    ClassifierFit,
    ClassifierModel,
    fit_classifier,
    impression_features,
)
from seqrec.value.calibration import sigmoid
from seqrec.value.ranking import best_next

logger = logging.getLogger(__name__)

Policy = Literal["random", "likely", "value", "cascade"]
POLICIES: tuple[str, ...] = ("random", "likely", "value", "cascade")


@dataclass(frozen=True)
class SurveyConfig:
    """Parameters of the generative model (see the module docstring); checked on creation."""

    n_items: int = 40
    max_session_length: int = 10
    n_sessions: int = 3
    free_text_share: float = 0.3
    answer_base: float = 1.8
    answer_difficulty: float = 1.0
    fatigue: float = 0.08
    abandon_base: float = -2.6
    abandon_difficulty: float = 0.8
    abandon_free_text: float = 0.8
    abandon_fatigue: float = 0.12
    return_base: float = 0.2
    return_gain: float = 0.6

    def __post_init__(self) -> None:
        for name in ("n_items", "max_session_length", "n_sessions"):
            value = getattr(self, name)
            if not (isinstance(value, int) and value >= 1):
                raise ValueError(f"SurveyConfig.{name} must be an integer >= 1; got {value!r}")
        for name in ("free_text_share", "return_base", "return_gain"):
            value = getattr(self, name)
            if not (np.isfinite(value) and 0.0 <= value <= 1.0):
                raise ValueError(f"SurveyConfig.{name} must be in [0, 1]; got {value!r}")
        if self.return_base + self.return_gain > 1.0:
            raise ValueError(
                f"SurveyConfig.return_base + return_gain must be <= 1; got {self.return_base + self.return_gain!r}"
            )


@dataclass(frozen=True)
class Questions:
    """The catalogue: ``(n_items,)`` arrays; ``price`` in dollars, ``median_seconds`` in seconds."""

    price: np.ndarray
    is_free_text: np.ndarray
    difficulty: np.ndarray
    median_seconds: np.ndarray

    def table(self) -> pd.DataFrame:
        """Item table for :func:`seqrec.value.abandonment.impression_features` (item ids 0..n-1)."""
        return pd.DataFrame(
            {
                "item_id": np.arange(len(self.price)),
                "median_answer_seconds": self.median_seconds,
                "is_free_text": self.is_free_text.astype(np.float64),
            }
        )


@dataclass(frozen=True)
class Users:
    """``(n_users,)`` latent ``propensity`` and ``patience``; ids are ``user_ids``."""

    user_ids: np.ndarray
    propensity: np.ndarray
    patience: np.ndarray


def make_questions(config: SurveyConfig, rng: np.random.Generator) -> Questions:
    """Draw the catalogue as in the module docstring."""
    free = rng.random(config.n_items) < config.free_text_share
    difficulty = rng.normal(size=config.n_items) + 0.7 * free
    price = (
        0.10 + 0.30 * np.exp(0.4 * difficulty + 0.6 * rng.normal(size=config.n_items)) + 0.30 * free
    )
    median = 12.0 * np.exp(0.4 * difficulty + 0.8 * free)
    return Questions(np.round(price, 2), free, difficulty, median)


def make_users(n_users: int, rng: np.random.Generator, first_id: int = 0) -> Users:
    """Draw ``n_users`` users with ids ``first_id ..``.

    Raises:
        ValueError: if ``n_users < 1``.
    """
    if n_users < 1:
        raise ValueError(f"n_users must be >= 1; got {n_users!r}")
    return Users(
        np.arange(first_id, first_id + n_users),
        rng.normal(0.0, 0.8, n_users),
        rng.normal(0.0, 0.8, n_users),
    )


@dataclass(frozen=True)
class StepContext:
    """What is known when choosing the item at ``position`` for ``(batch,)`` sessions.

    ``propensity`` / ``patience`` are the latent truth (only the oracle may read them);
    ``seconds_so_far`` and ``past_completion_rate`` are observable features.
    """

    position: int
    propensity: np.ndarray
    patience: np.ndarray
    seconds_so_far: np.ndarray
    past_completion_rate: np.ndarray


def true_probabilities(
    config: SurveyConfig, questions: Questions, ctx: StepContext
) -> tuple[np.ndarray, np.ndarray]:
    """True answer and continuation probabilities, each ``(batch, n_items) float64``."""
    t = ctx.position - 1
    answer = sigmoid(
        config.answer_base
        + ctx.propensity[:, None]
        - config.answer_difficulty * questions.difficulty[None, :]
        - config.fatigue * t
    )
    end = sigmoid(
        config.abandon_base
        - ctx.patience[:, None]
        + config.abandon_difficulty * questions.difficulty[None, :]
        + config.abandon_free_text * questions.is_free_text[None, :]
        + config.abandon_fatigue * t
    )
    return answer, 1.0 - end


class Estimator(Protocol):
    """Estimated ``(p, c)``, each ``(batch, n_items)``, for a step."""

    def __call__(self, ctx: StepContext) -> tuple[np.ndarray, np.ndarray]: ...


@dataclass(frozen=True)
class OracleEstimator:
    """The true probabilities (for reference runs, clearly labelled "oracle")."""

    config: SurveyConfig
    questions: Questions

    def __call__(self, ctx: StepContext) -> tuple[np.ndarray, np.ndarray]:
        return true_probabilities(self.config, self.questions, ctx)


@dataclass(frozen=True)
class ModelEstimator:
    """Calibrated fitted models: answer model for ``p``, abandonment model for ``c = 1 - P(end)``."""

    questions: Questions
    answer: ClassifierModel
    abandonment: ClassifierModel

    def __call__(self, ctx: StepContext) -> tuple[np.ndarray, np.ndarray]:
        batch, n_items = len(ctx.seconds_so_far), len(self.questions.price)
        # Feature order = ABANDONMENT_FEATURES; one row per (session, item).
        features = np.empty((batch, n_items, 5))  # (batch, n_items, n_features)
        features[..., 0] = ctx.position
        features[..., 1] = ctx.seconds_so_far[:, None]
        features[..., 2] = self.questions.median_seconds[None, :]
        features[..., 3] = self.questions.is_free_text[None, :]
        features[..., 4] = ctx.past_completion_rate[:, None]
        flat = features.reshape(batch * n_items, 5)
        p = self.answer.predict(flat).reshape(batch, n_items)
        c = 1.0 - self.abandonment.predict(flat).reshape(batch, n_items)
        return np.clip(p, 0.0, 1.0), np.clip(c, 0.0, 1.0)


@dataclass(frozen=True)
class TabulatedEstimator:
    """A :class:`ModelEstimator` evaluated once on a grid, then read by nearest grid point.

    Gradient-boosted trees cost ~0.1 µs per row per tree; predicting every (session, item) pair at
    every step dominated the run time. The table is exact in ``position`` and item; the two
    continuous features (``seconds_so_far``, ``past_completion_rate``) are rounded to the nearest
    of ``grid_size`` quantiles of the training features.

    Attributes:
        seconds_grid: ``(g_s,)`` increasing seconds-so-far grid points.
        rate_grid: ``(g_r,)`` increasing past-completion-rate grid points.
        p: ``(max_position, g_s, g_r, n_items)`` answer probabilities.
        c: same shape, continuation probabilities.
    """

    seconds_grid: np.ndarray
    rate_grid: np.ndarray
    p: np.ndarray
    c: np.ndarray

    @staticmethod
    def build(
        model: ModelEstimator, features: pd.DataFrame, max_position: int, grid_size: int = 16
    ) -> TabulatedEstimator:
        """Tabulate ``model`` (one predict call per model); grids from quantiles of ``features``."""
        quantiles = np.linspace(0.0, 1.0, grid_size)
        seconds_grid = np.unique(np.quantile(features["seconds_so_far"], quantiles))
        rate_grid = np.unique(np.quantile(features["past_completion_rate"], quantiles))
        positions = np.arange(1, max_position + 1)
        pos, sec, rate = np.meshgrid(positions, seconds_grid, rate_grid, indexing="ij")
        ctx = StepContext(0, np.empty(0), np.empty(0), sec.ravel(), rate.ravel())
        shape = (max_position, len(seconds_grid), len(rate_grid), len(model.questions.price))
        # One batch for all grid cells: the position varies per row, so build features directly.
        n_items = shape[-1]
        flat = np.empty((pos.size, n_items, 5))  # (cells, n_items, n_features)
        flat[..., 0] = pos.ravel()[:, None]
        flat[..., 1] = ctx.seconds_so_far[:, None]
        flat[..., 2] = model.questions.median_seconds[None, :]
        flat[..., 3] = model.questions.is_free_text[None, :]
        flat[..., 4] = ctx.past_completion_rate[:, None]
        flat = flat.reshape(-1, 5)
        p = np.clip(model.answer.predict(flat), 0.0, 1.0).reshape(shape)
        c = np.clip(1.0 - model.abandonment.predict(flat), 0.0, 1.0).reshape(shape)
        return TabulatedEstimator(seconds_grid, rate_grid, p, c)

    def __call__(self, ctx: StepContext) -> tuple[np.ndarray, np.ndarray]:
        position = min(ctx.position, self.p.shape[0]) - 1
        s = _nearest(self.seconds_grid, ctx.seconds_so_far)
        r = _nearest(self.rate_grid, ctx.past_completion_rate)
        return self.p[position, s, r], self.c[position, s, r]  # (batch, n_items) each


def _nearest(grid: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Index of the nearest grid point for each value (grid increasing)."""
    midpoints = (grid[1:] + grid[:-1]) / 2
    return np.searchsorted(midpoints, values)


def choose(
    policy: str,
    p: np.ndarray,
    c: np.ndarray,
    price: np.ndarray,
    is_eligible: np.ndarray,
    rng: np.random.Generator,
) -> np.ndarray:
    """Next item column ``(batch,) int64`` for one policy from ``(batch, n_items)`` estimates.

    Raises:
        ValueError: for an unknown policy or a row without eligible items.
    """
    if policy == "random":
        noise = np.where(is_eligible, rng.random(is_eligible.shape), -1.0)
        return np.argmax(noise, axis=1)
    if policy == "likely":
        return np.argmax(np.where(is_eligible, p, -1.0), axis=1)
    if policy == "value":
        return np.argmax(np.where(is_eligible, p * price[None, :], -1.0), axis=1)
    if policy == "cascade":
        return best_next(p, price[None, :], c, is_eligible)
    raise ValueError(f"policy must be one of {POLICIES}; got {policy!r}")


PolicyOf = Callable[[np.ndarray, np.ndarray], np.ndarray]
"""``policy_of(user_ids (batch,), session_ids (batch,)) -> (batch,)`` policy names per session."""


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
        config, questions, users: the world.
        policy_of: the policy of each session (constant, or an A/B assignment).
        estimator: estimates for non-random policies (may be None if all sessions are random).
        seed: seeds outcomes and the random policy.

    Returns:
        Impression log, chronological per session: ``user_id, session_id, position, item_id,
        answered, price, seconds, ended, policy``; ``session_id = user_id * n_sessions + k``.
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
            )
            step_policies = policies[idx]
            needs_model = step_policies != "random"
            p_hat = c_hat = np.zeros((len(idx), n_items))
            if needs_model.any():
                if estimator is None:
                    raise ValueError("estimator must be given for non-random policies; got None")
                sub = StepContext(
                    *(
                        a[needs_model] if isinstance(a, np.ndarray) else a
                        for a in vars(ctx).values()
                    )
                )
                p_hat, c_hat = np.zeros((len(idx), n_items)), np.ones((len(idx), n_items))
                p_hat[needs_model], c_hat[needs_model] = estimator(sub)
            chosen = np.empty(len(idx), dtype=np.int64)
            for policy in np.unique(step_policies):
                rows_of = step_policies == policy
                chosen[rows_of] = choose(
                    str(policy),
                    p_hat[rows_of],
                    c_hat[rows_of],
                    questions.price,
                    is_eligible[idx][rows_of],
                    rng,
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


def session_table(log: pd.DataFrame) -> pd.DataFrame:
    """Per session: ``user_id, session_id, policy, revenue`` (dollars), ``answers``, ``length``,
    ``ndcg`` of the shown order with relevance = answered (0 for a session with no answer)."""
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
    """A mean with a 95% CI from a bootstrap over users."""

    mean: float
    ci_low: float
    ci_high: float


def _user_ratio(
    numerator: np.ndarray, denominator: np.ndarray, n_boot: int, rng: np.random.Generator
) -> Estimate:
    """sum(num)/sum(den) over users, CI by resampling users (clustered bootstrap)."""
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
    """User-level 95% CIs of NDCG, answers/session, session length (ratio estimators) and ARPU."""
    sessions = session_table(log)
    per_user = sessions.groupby("user_id")[["revenue", "answers", "length", "ndcg"]].sum()
    n_sessions = sessions.groupby("user_id").size().to_numpy(dtype=np.float64)
    ones = np.ones(len(per_user))
    rng = np.random.default_rng(seed)
    return PolicyRow(
        policy=policy,
        estimates=estimates,
        ndcg=_user_ratio(per_user["ndcg"].to_numpy(), n_sessions, n_boot, rng),
        answers_per_session=_user_ratio(
            per_user["answers"].to_numpy(dtype=np.float64), n_sessions, n_boot, rng
        ),
        session_length=_user_ratio(
            per_user["length"].to_numpy(dtype=np.float64), n_sessions, n_boot, rng
        ),
        arpu=_user_ratio(per_user["revenue"].to_numpy(), ones, n_boot, rng),
        n_users=len(per_user),
        n_sessions=len(sessions),
    )


@dataclass(frozen=True)
class DesignRow:
    """A/B estimates of ARPU(treatment) - ARPU(control) over repeated simulated experiments.

    Attributes:
        design: "user split" (analysed per user, bootstrap CI) or "session split" (per-session
            revenue × sessions/user, CI treating sessions as independent).
        mean_effect, sd_effect: mean and standard deviation of the estimate over experiments.
        mean_ci_width: mean width of the 95% CI.
        coverage: share of experiments whose CI contains ``truth``.
    """

    design: str
    n_experiments: int
    users_per_experiment: int
    mean_effect: float
    sd_effect: float
    mean_ci_width: float
    coverage: float


@dataclass(frozen=True)
class SimulationConfig:
    """What :func:`run_survey_simulation` runs.

    Attributes:
        n_users: users per policy run (the same users for every policy) and in the training logs.
        policies: policies to compare.
        seed: master seed.
        oracle: also run each non-random policy with the true probabilities.
        n_experiments: repeated A/B experiments per design.
        users_per_experiment: users in each A/B experiment.
        control, treatment: the A/B policies.
        n_boot: bootstrap resamples for CIs.
        survey: the generative model.
    """

    n_users: int = 10000
    policies: tuple[str, ...] = POLICIES
    seed: int = 0
    oracle: bool = False
    n_experiments: int = 200
    users_per_experiment: int = 400
    control: str = "likely"
    treatment: str = "cascade"
    n_boot: int = 500
    survey: SurveyConfig = field(default_factory=SurveyConfig)

    def __post_init__(self) -> None:
        unknown = [p for p in (*self.policies, self.control, self.treatment) if p not in POLICIES]
        if unknown:
            raise ValueError(f"policies must be among {POLICIES}; got {unknown}")
        if not self.policies:
            raise ValueError("policies must not be empty; got ()")
        for name in ("n_users", "n_boot"):
            if getattr(self, name) < 10:
                raise ValueError(
                    f"SimulationConfig.{name} must be >= 10; got {getattr(self, name)!r}"
                )
        if self.n_experiments < 0 or (self.n_experiments and self.users_per_experiment < 20):
            raise ValueError(
                "n_experiments must be >= 0 and users_per_experiment >= 20; got "
                f"{self.n_experiments!r}, {self.users_per_experiment!r}"
            )


@dataclass(frozen=True)
class SimulationResult:
    """Everything the CLI prints and plots."""

    config: SimulationConfig
    answer_fit: ClassifierFit
    abandonment_fit: ClassifierFit
    rows: tuple[PolicyRow, ...]
    truth_effect: Estimate | None
    designs: tuple[DesignRow, ...]


def fit_models(
    config: SurveyConfig, questions: Questions, log: pd.DataFrame, seed: int
) -> tuple[ClassifierFit, ClassifierFit]:
    """Fit the Platt-calibrated answer model and isotonic-calibrated abandonment model on a log."""
    features = impression_features(log, questions.table())
    users = log["user_id"].to_numpy()
    answer = fit_classifier(features, log["answered"].to_numpy(), users, "platt", seed=seed)
    abandonment = fit_classifier(features, log["ended"].to_numpy(), users, "isotonic", seed=seed)
    return answer, abandonment


def _constant(policy: str) -> PolicyOf:
    return lambda user_ids, session_ids: np.full(len(user_ids), policy, dtype=object)


def _ab_design(
    sim: SimulationConfig,
    questions: Questions,
    estimator: Estimator,
    unit: Literal["user", "session"],
    truth: float,
) -> DesignRow:
    """Simulate ``n_experiments`` independent experiments (disjoint user blocks) of one design."""
    n = sim.users_per_experiment
    rng = np.random.default_rng([sim.seed, 3 if unit == "user" else 4])
    users = make_users(sim.n_experiments * n, rng, first_id=10_000_000)
    weights = {sim.control: 0.5, sim.treatment: 0.5}

    def policy_of(user_ids: np.ndarray, session_ids: np.ndarray) -> np.ndarray:
        experiment = f"exp-{sim.seed}-" + ("" if unit == "user" else "s")
        return assign_groups(user_ids if unit == "user" else session_ids, experiment, weights)

    log = simulate(
        sim.survey, questions, users, policy_of, estimator, seed=int(rng.integers(2**31))
    )
    sessions = session_table(log).rename(columns={"policy": "group"})
    block = (sessions["user_id"].to_numpy() - 10_000_000) // n
    effects, widths, covered = [], [], []
    for e in range(sim.n_experiments):
        part = sessions[block == e]
        if unit == "user":
            result = analyze_arpu(part, sim.control, sim.treatment, n_boot=sim.n_boot, seed=e)
            effect, low, high = result.effect, result.effect_ci_low, result.effect_ci_high
        else:
            result = session_level_effect(part, sim.control, sim.treatment)
            effect, low, high = result.effect, result.ci_low, result.ci_high
        effects.append(effect)
        widths.append(high - low)
        covered.append(low <= truth <= high)
    return DesignRow(
        design=f"{unit} split",
        n_experiments=sim.n_experiments,
        users_per_experiment=n,
        mean_effect=float(np.mean(effects)),
        sd_effect=float(np.std(effects, ddof=1)) if len(effects) > 1 else float("nan"),
        mean_ci_width=float(np.mean(widths)),
        coverage=float(np.mean(covered)),
    )


def run_survey_simulation(sim: SimulationConfig) -> SimulationResult:
    """Train estimators on random-policy logs, compare policies, and replay the A/B designs.

    Steps: (1) draw questions; (2) simulate ``n_users`` training users under ``random`` and fit the
    models; (3) simulate ``n_users`` fresh users (the same users for each policy, outcomes from
    the same seed) under each policy; (4) the true ARPU effect of treatment vs control is the
    difference of (3)'s ARPUs (its CI from a paired bootstrap over users); (5) repeat the A/B test
    ``n_experiments`` times per design on fresh users and report bias, spread and CI coverage.
    """
    root = np.random.default_rng(sim.seed)
    questions = make_questions(sim.survey, root)
    train_users = make_users(sim.n_users, root, first_id=0)
    train_log = simulate(
        sim.survey, questions, train_users, _constant("random"), None, seed=sim.seed + 1
    )
    answer_fit, abandonment_fit = fit_models(sim.survey, questions, train_log, sim.seed)
    features = impression_features(train_log, questions.table())
    model = TabulatedEstimator.build(
        ModelEstimator(questions, answer_fit.model, abandonment_fit.model),
        features,
        sim.survey.max_session_length,
    )
    oracle = OracleEstimator(sim.survey, questions)
    eval_users = make_users(sim.n_users, root, first_id=1_000_000)
    runs: list[tuple[str, Literal["model", "oracle"], Estimator]] = [
        (p, "model", model) for p in sim.policies
    ]
    if sim.oracle:
        runs += [(p, "oracle", oracle) for p in sim.policies if p != "random"]
    rows, per_user_revenue = [], {}
    for policy, label, estimator in runs:
        log = simulate(
            sim.survey, questions, eval_users, _constant(policy), estimator, seed=sim.seed + 2
        )
        rows.append(summarise(log, policy, label, sim.n_boot, sim.seed))
        if label == "model":
            revenue = (log["price"] * log["answered"]).groupby(log["user_id"]).sum()
            per_user_revenue[policy] = revenue.reindex(
                eval_users.user_ids, fill_value=0.0
            ).to_numpy()
        logger.info("policy %s (%s): ARPU %.3f", policy, label, rows[-1].arpu.mean)
    truth, designs = None, ()
    if sim.n_experiments:
        if sim.control not in per_user_revenue or sim.treatment not in per_user_revenue:
            needed = [sim.control, sim.treatment]
            for policy in needed:
                if policy not in per_user_revenue:
                    log = simulate(
                        sim.survey,
                        questions,
                        eval_users,
                        _constant(policy),
                        model,
                        seed=sim.seed + 2,
                    )
                    revenue = (log["price"] * log["answered"]).groupby(log["user_id"]).sum()
                    per_user_revenue[policy] = revenue.reindex(
                        eval_users.user_ids, fill_value=0.0
                    ).to_numpy()
        diff = per_user_revenue[sim.treatment] - per_user_revenue[sim.control]
        truth = _user_ratio(diff, np.ones(len(diff)), sim.n_boot, np.random.default_rng(sim.seed))
        designs = tuple(
            _ab_design(sim, questions, model, unit, truth.mean) for unit in ("user", "session")
        )
    return SimulationResult(sim, answer_fit, abandonment_fit, tuple(rows), truth, designs)


def policy_names(text: str | Sequence[str]) -> tuple[str, ...]:
    """Parse ``"random,likely"`` (or a sequence) into checked policy names.

    Raises:
        ValueError: naming an unknown policy.
    """
    names = tuple(
        p.strip() for p in (text.split(",") if isinstance(text, str) else text) if p.strip()
    )
    unknown = [p for p in names if p not in POLICIES]
    if unknown or not names:
        raise ValueError(f"policies must be a comma list of {POLICIES}; got {text!r}")
    return names
