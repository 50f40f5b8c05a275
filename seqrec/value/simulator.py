"""A survey simulator for comparing ranking policies and A/B designs on revenue per user.

:func:`run_survey_simulation` puts the parts together:

* the world — questions, users, true probabilities that depend on the position (with an
  item-by-position effect) and drift with time (:mod:`seqrec.value.survey`);
* the session loop, which runs filter -> score -> calibrate -> order -> serve at every step
  within the session cap (:func:`seqrec.value.sessions.simulate`);
* the policies ``random``, ``likely``, ``price``, ``value``, ``cascade`` (greedy index),
  ``capped`` (exact under the cap) and ``positional`` (exact position-aware plan)
  (:mod:`seqrec.value.policies`);
* their estimates of ``p`` and ``c``, fitted on logs of the random logging policy of the past
  (users arriving at times [0, 1)), split by time (:mod:`seqrec.value.estimators`), and used on
  users of the future (times [1, 1.2)); ``oracle=True`` adds the same policies with the true
  probabilities;
* calibrators compared under the drift (:mod:`seqrec.value.drift`);
* summaries with user-level bootstrap CIs (:mod:`seqrec.value.summary`) and the A/B analyses of
  :mod:`seqrec.value.ab` (user split vs session split).
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import pandas as pd

from seqrec.value.ab import (
    SampleRatioMismatchWarning,
    analyze_arpu,
    assign_groups,
    session_level_effect,
)
from seqrec.value.abandonment import ClassifierFit, impression_features
from seqrec.value.drift import DriftRow, calibration_under_drift
from seqrec.value.estimators import (
    Estimator,
    ModelEstimator,
    OracleEstimator,
    TabulatedEstimator,
    fit_models,
)
from seqrec.value.policies import POLICIES, constant_policy
from seqrec.value.sessions import simulate
from seqrec.value.summary import Estimate, PolicyRow, session_table, summarise, user_ratio
from seqrec.value.survey import Questions, SurveyConfig, make_questions, make_users

logger = logging.getLogger(__name__)

_AB_FIRST_USER_ID = 10_000_000
"""A/B experiments draw users from this id on (training users start at 0, evaluation at 1e6)."""
PAST, FUTURE = (0.0, 1.0), (1.0, 1.2)
"""Arrival times of the training users (the past log) and of every evaluated user."""


@dataclass(frozen=True)
class DesignRow:
    """A/B estimates of ARPU(treatment) - ARPU(control) over repeated simulated experiments.

    Attributes:
        design: "user split" (analysed per user, bootstrap CI) or "session split" (per-session
            revenue × sessions/user, CI treating sessions as independent).
        n_experiments: experiments simulated.
        users_per_experiment: users in each.
        mean_effect, sd_effect: mean and standard deviation (dollars) of the estimate over
            experiments (``sd_effect`` NaN for one experiment).
        mean_ci_width: mean width of the 95% CI (dollars).
        coverage: share of experiments whose CI contains the true effect.
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
        policies: policies to compare (default all of :data:`~seqrec.value.policies.POLICIES`).
        seed: master seed.
        oracle: also run each policy that reads estimates with the true probabilities.
        n_experiments: repeated A/B experiments per design (0: none).
        users_per_experiment: users in each A/B experiment.
        control, treatment: the A/B policies.
        n_boot: bootstrap resamples for CIs.
        survey: the generative model.

    Raises:
        ValueError: naming the field for unknown or no policies, ``n_users`` or ``n_boot`` below
            10, negative ``n_experiments`` or fewer than 20 users per experiment.
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
    """Everything the CLI prints and plots.

    Attributes:
        config: what was run.
        answer_fit, abandonment_fit: the fitted estimators and their held-out quality.
        rows: one :class:`~seqrec.value.summary.PolicyRow` per (policy, estimates) run.
        truth_effect: the true ARPU effect of treatment vs control (None without experiments).
        designs: one :class:`DesignRow` per A/B design (empty without experiments).
        drift: calibrators fitted on the past log, judged on a random-policy log of the future.
        user_revenue: per row of ``rows``, ``(n_users,) float64`` dollars earned from each
            evaluation user (the same users in every run: paired comparisons).
    """

    config: SimulationConfig
    answer_fit: ClassifierFit
    abandonment_fit: ClassifierFit
    rows: tuple[PolicyRow, ...]
    truth_effect: Estimate | None
    designs: tuple[DesignRow, ...]
    drift: tuple[DriftRow, ...] = ()
    user_revenue: tuple[np.ndarray, ...] = ()


def _revenue_per_user(log: pd.DataFrame, user_ids: np.ndarray) -> np.ndarray:
    """``(n_users,) float64`` dollars earned from each of ``user_ids`` (0 for users not in the log)."""
    revenue = (log["price"] * log["answered"]).groupby(log["user_id"]).sum()
    return revenue.reindex(user_ids, fill_value=0.0).to_numpy()


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
    users = make_users(sim.n_experiments * n, rng, first_id=_AB_FIRST_USER_ID, arrive=FUTURE)
    weights = {sim.control: 0.5, sim.treatment: 0.5}
    experiment = f"exp-{sim.seed}-" + ("" if unit == "user" else "s")

    def policy_of(user_ids: np.ndarray, session_ids: np.ndarray) -> np.ndarray:
        return assign_groups(user_ids if unit == "user" else session_ids, experiment, weights)

    assigned = pd.DataFrame({"user_id": users.user_ids,
                             "group": assign_groups(users.user_ids, experiment, weights)})
    assigned_block = (users.user_ids - _AB_FIRST_USER_ID) // n

    log = simulate(
        sim.survey, questions, users, policy_of, estimator, seed=int(rng.integers(2**31))
    )
    sessions = session_table(log).rename(columns={"policy": "group"})
    block = (sessions["user_id"].to_numpy() - _AB_FIRST_USER_ID) // n
    effects, widths, covered = [], [], []
    for e in range(sim.n_experiments):
        part = sessions[block == e]
        if unit == "user":
            with warnings.catch_warnings():  # at alpha 0.001, 200 experiments raise some by chance
                warnings.simplefilter("ignore", SampleRatioMismatchWarning)
                result = analyze_arpu(part, sim.control, sim.treatment, n_boot=sim.n_boot, seed=e,
                                      weights=weights, assigned=assigned[assigned_block == e])
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

    Raises:
        ValueError: as :func:`seqrec.value.abandonment.fit_classifier` when the training logs are
            too small to fit and evaluate the models.
    """
    root = np.random.default_rng(sim.seed)
    questions = make_questions(sim.survey, root)
    train_users = make_users(sim.n_users, root, first_id=0, arrive=PAST)
    train_log = simulate(
        sim.survey, questions, train_users, constant_policy("random"), None, seed=sim.seed + 1
    )
    answer_fit, abandonment_fit = fit_models(questions, train_log, sim.seed)
    features = impression_features(train_log, questions.table())
    model = TabulatedEstimator.build(
        ModelEstimator(questions, answer_fit.model, abandonment_fit.model),
        features,
        sim.survey.max_session_length,
    )
    oracle = OracleEstimator(sim.survey, questions)
    eval_users = make_users(sim.n_users, root, first_id=1_000_000, arrive=FUTURE)
    runs: list[tuple[str, Literal["model", "oracle"], Estimator]] = [
        (p, "model", model) for p in sim.policies
    ]
    if sim.oracle:
        runs += [(p, "oracle", oracle) for p in sim.policies if p not in ("random", "price")]
    rows, per_user_revenue, future_log, user_revenue = [], {}, None, []
    for policy, label, estimator in runs:
        log = simulate(
            sim.survey, questions, eval_users, constant_policy(policy), estimator, seed=sim.seed + 2
        )
        rows.append(summarise(log, policy, label, sim.n_boot, sim.seed))
        user_revenue.append(_revenue_per_user(log, eval_users.user_ids))
        if policy == "random":
            future_log = log
        if label == "model":
            per_user_revenue[policy] = user_revenue[-1]
        logger.info("policy %s (%s): ARPU %.3f", policy, label, rows[-1].arpu.mean)
    truth, designs = None, ()
    if sim.n_experiments:
        for policy in (sim.control, sim.treatment):
            if policy not in per_user_revenue:  # an A/B arm that was not among the policies
                log = simulate(
                    sim.survey,
                    questions,
                    eval_users,
                    constant_policy(policy),
                    model,
                    seed=sim.seed + 2,
                )
                per_user_revenue[policy] = _revenue_per_user(log, eval_users.user_ids)
        diff = per_user_revenue[sim.treatment] - per_user_revenue[sim.control]
        truth = user_ratio(diff, np.ones(len(diff)), sim.n_boot, np.random.default_rng(sim.seed))
        designs = tuple(
            _ab_design(sim, questions, model, unit, truth.mean) for unit in ("user", "session")
        )
    if future_log is None:
        future_log = simulate(sim.survey, questions, eval_users, constant_policy("random"), None,
                              seed=sim.seed + 2)
    drift = calibration_under_drift(train_log, future_log, questions, sim.seed)
    return SimulationResult(sim, answer_fit, abandonment_fit, tuple(rows), truth, designs, drift,
                            tuple(user_revenue))
