"""Value-aware ranking: calibrated probabilities, abandonment, cascade ranking (exact under a
session cap and position effects), eligibility masks, A/B, and the sequence recommender wired in.

Revenue per user is ``sum_t r_t p_t prod_{s<t} c_t``: rank by ``r p / (1 - c)`` with calibrated
``p`` (answer) and ``c`` (continuation) — exactly, by dynamic programming, under a session cap or
position-dependent probabilities — filter eligibility *before* scoring, and randomise A/B tests by
user. See docs/value.md.

Names are imported lazily (PEP 562): importing :mod:`seqrec.value` does not load scikit-learn
until a name that needs it is used.

Modules: ``ranking`` (cascade index, exact capped DP, greedy), ``positional`` (exact subset DP
and heuristic for position-dependent probabilities), ``planning`` (the same, batched over
sessions), ``calibrators`` (Platt, temperature, isotonic), ``online`` (standardised online Platt,
windowed refits), ``reliability`` (log-loss, Brier, ECE equal-width and equal-mass, reliability
curves), ``logs`` (impression-log columns, split by user or by time), ``calibration`` (fit on one
part, report on another), ``abandonment``, ``eligibility`` (vectorised masks), ``serving`` (rank
and serve the eligible items, bulk back-end check), ``assignment`` and ``ab`` (A/B assignment and
analysis), ``model_scores`` and ``value_rank`` (the recommender's probabilities, calibrated and
ordered), ``calibrator_file`` (a fitted calibrator saved as JSON for its model version); the
survey simulator: ``survey`` (the world), ``policies``, ``estimators``, ``sessions``
(the session loop), ``drift``, ``summary``, ``simulator`` (the whole run), ``plots`` and ``cli``.
"""

from __future__ import annotations

import importlib

_MODULE_OF = {
    "ABANDONMENT_FEATURES": "abandonment",
    "ArpuResult": "ab",
    "CalibrationReport": "calibration",
    "CalibratorFileError": "calibrator_file",
    "CalibratorMismatchError": "calibrator_file",
    "EligibilityState": "eligibility",
    "HeldOutReport": "calibrator_file",
    "ItemRules": "eligibility",
    "MissingUsersWarning": "ab",
    "ModelScorer": "model_scores",
    "NothingEligible": "serving",
    "OnlinePlatt": "online",
    "Ranked": "serving",
    "SampleRatioMismatchWarning": "ab",
    "SavedCalibrator": "calibrator_file",
    "Scorer": "calibration",
    "Served": "serving",
    "UnitMismatchWarning": "ab",
    "ValueRanking": "value_rank",
    "WindowedCalibrator": "online",
    "analyze_arpu": "ab",
    "assign_group": "assignment",
    "assign_groups": "assignment",
    "best_next": "ranking",
    "brute_force_order": "ranking",
    "calibrate": "calibration",
    "calibration_metrics": "reliability",
    "canonical_user_id": "assignment",
    "capped_order": "ranking",
    "cascade_keys": "ranking",
    "cascade_order": "ranking",
    "eligibility_mask": "eligibility",
    "eligibility_state": "eligibility",
    "equal_mass_ece": "reliability",
    "expected_revenue": "ranking",
    "fit_abandonment": "abandonment",
    "fit_calibrator": "calibrators",
    "fit_isotonic": "calibrators",
    "fit_model_calibrator": "model_scores",
    "fit_platt": "calibrators",
    "fit_temperature": "calibrators",
    "greedy_order": "ranking",
    "impression_features": "abandonment",
    "load_calibrator": "calibrator_file",
    "next_item_log_probs": "model_scores",
    "pairwise_scorer": "calibration",
    "positional_order": "positional",
    "positional_revenue": "positional",
    "rank_by_value": "value_rank",
    "rank_columns_by_value": "value_rank",
    "rank_eligible": "serving",
    "reliability_curve": "reliability",
    "sample_ratio_test": "ab",
    "save_calibrator": "calibrator_file",
    "serve_first_accepted": "serving",
    "session_level_effect": "ab",
    "split_by_time": "logs",
    "split_by_user": "logs",
}

__all__ = sorted(_MODULE_OF)


def __getattr__(name: str) -> object:
    if name not in _MODULE_OF:
        raise AttributeError(f"module 'seqrec.value' has no attribute {name!r}")
    return getattr(importlib.import_module(f"seqrec.value.{_MODULE_OF[name]}"), name)
