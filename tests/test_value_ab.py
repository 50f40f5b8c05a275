"""User-level A/B: canonical ids and group order, deterministic hashing, shares, independence,
ARPU analysis, sample-ratio mismatch, missing zero-revenue users and unit warnings."""

import subprocess
import sys
import uuid
import warnings

import numpy as np
import pandas as pd
import pytest
from scipy.stats import chi2_contingency

from seqrec.value.ab import (
    MissingUsersWarning,
    SampleRatioMismatchWarning,
    UnitMismatchWarning,
    analyze_arpu,
    assign_group,
    assign_groups,
    sample_ratio_test,
    session_level_effect,
)
from seqrec.value.assignment import canonical_user_id

WEIGHTS = {"control": 0.5, "treatment": 0.3, "holdout": 0.2}


def test_same_group_in_another_process():
    ids = ["u1", 42, "alice", 10**12]
    here = [assign_group(u, "exp-1", WEIGHTS) for u in ids]
    code = (
        "from seqrec.value.ab import assign_group;"
        f"print(','.join(assign_group(u, 'exp-1', {WEIGHTS!r}) for u in {ids!r}))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        env={"PYTHONHASHSEED": "123"},
    )
    assert out.stdout.strip().split(",") == here


def test_scalar_and_vector_agree_and_ids_are_canonicalised():
    ids = np.arange(1000)
    groups = assign_groups(ids, "exp", WEIGHTS)
    assert [assign_group(int(u), "exp", WEIGHTS) for u in ids[:50]] == groups[:50].tolist()
    assert (
        assign_group(7, "exp", WEIGHTS)
        == assign_group("7", "exp", WEIGHTS)
        == assign_group(np.int64(7), "exp", WEIGHTS)
    )


def test_integers_and_integral_floats_are_one_user():
    for same in (7.0, np.float64(7.0), np.float32(7.0), "7", " 7 ", np.int32(7)):
        assert canonical_user_id(same) == "7"
        assert assign_group(same, "exp", WEIGHTS) == assign_group(7, "exp", WEIGHTS)
    assert canonical_user_id(7.5) == "7.5"
    assert assign_groups(np.array([7.0, 8.0]), "exp", WEIGHTS).tolist() == assign_groups(
        np.array([7, 8]), "exp", WEIGHTS).tolist()


def test_uuid_case_and_whitespace_variants_are_one_user():
    canonical = "6fa459ea-ee8a-3ca4-894e-db77e160355e"
    variants = [" 6FA459EA-EE8A-3CA4-894E-DB77E160355E\n", "6fa459eaee8a3ca4894edb77e160355e",
                "{6FA459EA-ee8a-3ca4-894e-db77e160355e}", "urn:uuid:" + canonical,
                uuid.UUID(canonical)]
    for variant in variants:
        assert canonical_user_id(variant) == canonical
    groups = {assign_group(v, "uuid-exp", WEIGHTS) for v in [canonical, *variants]}
    assert len(groups) == 1
    assert canonical_user_id("Alice") != canonical_user_id("alice")  # other strings keep case


@pytest.mark.parametrize("bad", [True, float("nan"), float("inf"), "  ", b"7", None])
def test_ids_outside_the_rule_raise_naming_user_id(bad):
    with pytest.raises(ValueError, match="user_id"):
        assign_group(bad, "exp", WEIGHTS)


def test_the_order_groups_are_listed_in_does_not_move_users():
    ids = np.arange(5000)
    forward = assign_groups(ids, "order", {"A": 0.2, "B": 0.3, "C": 0.5})
    backward = assign_groups(ids, "order", {"C": 0.5, "B": 0.3, "A": 0.2})
    assert forward.tolist() == backward.tolist()


def test_shares_within_half_a_point_on_a_million_ids():
    groups = assign_groups(np.arange(1_000_000), "share-test", WEIGHTS)
    for name, weight in WEIGHTS.items():
        assert abs(np.mean(groups == name) - weight) < 0.005


def test_two_experiments_are_independent():
    ids = np.arange(200_000)
    a = assign_groups(ids, "exp-a", {"A": 0.5, "B": 0.5})
    b = assign_groups(ids, "exp-b", {"X": 0.2, "Y": 0.8})
    table = pd.crosstab(a, b).to_numpy()
    assert chi2_contingency(table).pvalue > 0.001


@pytest.mark.parametrize(
    ("weights", "match"),
    [
        ({"A": 0.5, "B": 0.6}, "sum to 1"),
        ({"A": float("nan"), "B": 0.5}, "weights must be finite"),
        ({"A": -0.5, "B": 1.5}, ">= 0"),
        ({}, "at least one group"),
    ],
)
def test_bad_weights_raise(weights, match):
    with pytest.raises(ValueError, match=match):
        assign_group("u", "exp", weights)


def test_analyze_arpu_hand_computed_and_no_warning_for_user_split():
    sessions = pd.DataFrame(
        {
            "user_id": [1, 1, 2, 3, 4, 4],
            "group": ["A", "A", "A", "B", "B", "B"],
            "revenue": [1.0, 2.0, 0.0, 4.0, 1.0, 1.0],
        }
    )
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        result = analyze_arpu(sessions, "A", "B", n_boot=200)
    assert result.control.arpu == pytest.approx(1.5)  # users 1 (3.0), 2 (0.0)
    assert result.treatment.arpu == pytest.approx(3.0)  # users 3 (4.0), 4 (2.0)
    assert result.effect == pytest.approx(1.5)
    assert result.randomization_unit == "user" and not result.unit_mismatch
    assert result.effect_ci_low <= result.effect <= result.effect_ci_high


def test_session_randomised_data_warns_and_flags():
    sessions = pd.DataFrame(
        {"user_id": [1, 1, 2, 2], "group": ["A", "B", "A", "B"], "revenue": [1.0, 2.0, 0.0, 1.0]}
    )
    with pytest.warns(UnitMismatchWarning, match="randomised by session"):
        result = analyze_arpu(sessions, "A", "B", n_boot=50)
    assert result.unit_mismatch and result.randomization_unit == "session"
    assert session_level_effect(sessions, "A", "B").unit_mismatch


def test_analyze_arpu_rejects_bad_revenue_and_groups():
    sessions = pd.DataFrame({"user_id": [1, 2], "group": ["A", "B"], "revenue": [np.nan, 1.0]})
    with pytest.raises(ValueError, match="revenue must be finite"):
        analyze_arpu(sessions, "A", "B")
    with pytest.raises(ValueError, match="treatment group 'C'"):
        analyze_arpu(sessions.fillna(0.0), "A", "C")


def _arms(n_control, n_treatment, seed=0, revenue_zero_share=0.3):
    rng = np.random.default_rng(seed)
    n = n_control + n_treatment
    revenue = np.where(rng.random(n) < revenue_zero_share, 0.0, rng.exponential(2.0, n))
    return pd.DataFrame({"user_id": np.arange(n), "group": ["A"] * n_control + ["B"] * n_treatment,
                         "revenue": revenue})


def test_sample_ratio_mismatch_is_detected_and_reported():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fair = analyze_arpu(_arms(1000, 1010), "A", "B", n_boot=100)
    assert not fair.sample_ratio_mismatch and fair.srm_pvalue > 0.5
    with pytest.warns(SampleRatioMismatchWarning, match="'A': 1000, 'B': 1200"):
        skewed = analyze_arpu(_arms(1000, 1200), "A", "B", n_boot=100)
    assert skewed.sample_ratio_mismatch and skewed.srm_pvalue < 1e-4
    # the same counts are no mismatch when the weights were 1000 : 1200
    assert sample_ratio_test({"A": 1000, "B": 1200}, {"A": 5 / 11, "B": 6 / 11}) > 0.9


def test_srm_weights_must_sum_to_one_and_name_the_groups():
    with pytest.raises(ValueError, match="weights must sum to 1"):
        analyze_arpu(_arms(10, 10), "A", "B", n_boot=10, weights={"A": 0.5, "B": 0.6})
    with pytest.raises(ValueError, match="missing \\['B'\\]"):
        sample_ratio_test({"A": 5, "B": 5}, {"A": 1.0})


def test_users_missing_from_the_log_count_as_zero_with_a_warning():
    """Only paying users were logged: ARPU over them is inflated; the assignment table restores
    the others at $0 and the warning says how many."""
    full = _arms(500, 500)
    logged = full[full["revenue"] > 0]
    with pytest.warns(MissingUsersWarning, match="none of the .* users has zero revenue"):
        inflated = analyze_arpu(logged, "A", "B", n_boot=100)
    n_missing = int((full["revenue"] == 0).sum())
    with pytest.warns(MissingUsersWarning, match=f"{n_missing} assigned users have no row"):
        restored = analyze_arpu(logged, "A", "B", n_boot=100, assigned=full[["user_id", "group"]])
    assert restored.n_missing_users == n_missing
    truth = full.groupby("group")["revenue"].mean()
    assert restored.control.arpu == pytest.approx(truth["A"])
    assert restored.treatment.arpu == pytest.approx(truth["B"])
    assert inflated.control.arpu > truth["A"] * 1.2
