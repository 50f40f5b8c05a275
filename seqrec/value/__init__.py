"""Value-aware ranking: calibrated probabilities, abandonment, cascade ranking, eligibility, A/B.

Revenue per user is ``sum_t r_t p_t prod_{s<t} c_s``: rank by ``r p / (1 - c)`` with calibrated
``p`` (answer) and ``c`` (continuation), filter eligibility *before* scoring, and randomise A/B
tests by user. See docs/value.md.

Names are imported lazily (PEP 562): importing :mod:`seqrec.value` does not load scikit-learn
until a name that needs it is used.

Modules: ``calibrators`` (Platt, temperature, isotonic, online Platt), ``reliability`` (log-loss,
Brier, ECE, reliability curves), ``logs`` (impression-log columns, checks, split by user),
``calibration`` (fit on some users, report on others), ``abandonment``, ``ranking`` (cascade
order), ``eligibility``, ``ab``; the survey simulator: ``survey`` (the world), ``policies``,
``estimators``, ``sessions`` (the session loop), ``summary``, ``simulator`` (the whole run),
``plots`` and ``cli``.
"""

from __future__ import annotations

import importlib

_MODULE_OF = {
    "ABANDONMENT_FEATURES": "abandonment",
    "ArpuResult": "ab",
    "CalibrationReport": "calibration",
    "EligibilityState": "eligibility",
    "NothingEligible": "eligibility",
    "OnlinePlatt": "calibrators",
    "Ranked": "eligibility",
    "Scorer": "calibration",
    "Served": "eligibility",
    "UnitMismatchWarning": "ab",
    "analyze_arpu": "ab",
    "assign_group": "ab",
    "assign_groups": "ab",
    "best_next": "ranking",
    "brute_force_order": "ranking",
    "calibrate": "calibration",
    "calibration_metrics": "reliability",
    "cascade_keys": "ranking",
    "cascade_order": "ranking",
    "eligibility_mask": "eligibility",
    "expected_revenue": "ranking",
    "fit_abandonment": "abandonment",
    "fit_calibrator": "calibrators",
    "fit_isotonic": "calibrators",
    "fit_platt": "calibrators",
    "fit_temperature": "calibrators",
    "greedy_order": "ranking",
    "impression_features": "abandonment",
    "pairwise_scorer": "calibration",
    "rank_eligible": "eligibility",
    "reliability_curve": "reliability",
    "serve_first_accepted": "eligibility",
    "session_level_effect": "ab",
    "split_by_user": "logs",
}

__all__ = sorted(_MODULE_OF)


def __getattr__(name: str) -> object:
    if name not in _MODULE_OF:
        raise AttributeError(f"module 'seqrec.value' has no attribute {name!r}")
    return getattr(importlib.import_module(f"seqrec.value.{_MODULE_OF[name]}"), name)
