"""Benchmark: value-aware ranking — ARPU per policy, exact vs heuristic orders, calibration under
drift and at any score scale, eligibility mask time.

Run: ``python benchmarks/value.py [--users 10000] [--no-write]``

1. **ARPU per policy**: the survey simulator exactly as ``seqrec simulate survey`` runs it by
   default (10 000 users, estimates and oracle, 200 x 400-user A/B experiments per design), with
   each policy's ARPU (95% bootstrap CI over users) and the paired difference to the greedy index
   (``cascade``) over the same users; the run's wall time is the CLI's.
2. **Calibration under drift**: calibrators fitted on the simulator's past log, judged on a
   random-policy log of the future (from run 1).
3. **Orders**: the exact capped DP against the truncated index order, and the exact position-aware
   subset DP against the greedy index and the local-search heuristic, on random instances; time
   per call.
4. **Online Platt at any score scale**: ``OnlinePlatt`` on raw scores x1/x20/x50 against the
   former unstandardised SGD (reimplemented here as the reference).
5. **Eligibility mask** time per request at 10 k / 100 k candidates: vectorised masks against the
   former per-item Python loop (reimplemented here), median of 50 requests.

Writes ``benchmarks/results/value.md`` unless ``--no-write``; records the CPU and the load
average (``os.getloadavg``) before and after, since the machine is shared.
"""

from __future__ import annotations

import argparse
import datetime
import os
import time
from pathlib import Path

import numpy as np
from _common import cpu_model  # noqa: E402  (benchmarks/ helper)

from seqrec.files import write_atomic
from seqrec.value.calibrators import fit_platt, sigmoid
from seqrec.value.eligibility import EligibilityState, ItemRules, eligibility_mask
from seqrec.value.online import OnlinePlatt
from seqrec.value.positional import (
    positional_exact_order,
    positional_greedy_order,
    positional_heuristic_order,
    positional_revenue,
)
from seqrec.value.ranking import capped_order, cascade_order, expected_revenue
from seqrec.value.reliability import calibration_metrics
from seqrec.value.simulator import SimulationConfig, run_survey_simulation

RESULTS = Path(__file__).resolve().parent / "results" / "value.md"


def _ci(values: np.ndarray, n_boot: int = 1000, seed: int = 0) -> str:
    rng = np.random.default_rng(seed)
    draws = values[rng.integers(0, len(values), (n_boot, len(values)))].mean(axis=1)
    low, high = np.quantile(draws, [0.025, 0.975])
    return f"{values.mean():+.3f} [{low:+.3f}, {high:+.3f}]"


def policies_section(n_users: int) -> list[str]:
    start = time.perf_counter()
    result = run_survey_simulation(SimulationConfig(n_users=n_users, oracle=True))
    took = time.perf_counter() - start
    greedy = {r.estimates: rev for r, rev in zip(result.rows, result.user_revenue, strict=True)
              if r.policy == "cascade"}
    lines = [
        f"### 1. ARPU per policy ({n_users} users; run took {took:.1f} s, the same as "
        "`seqrec simulate survey` with its defaults)", "",
        "| policy | estimates | ARPU $ [95% CI] | vs greedy index (cascade), paired $ [95% CI] "
        "| session length | NDCG |",
        "|---|---|---|---|---|---|",
    ]
    for row, revenue in zip(result.rows, result.user_revenue, strict=True):
        base = greedy.get(row.estimates)
        diff = _ci(revenue - base) if base is not None and row.policy != "cascade" else "—"
        lines.append(f"| {row.policy} | {row.estimates} | {row.arpu.mean:.3f} "
                     f"[{row.arpu.ci_low:.3f}, {row.arpu.ci_high:.3f}] | {diff} | "
                     f"{row.session_length.mean:.2f} | {row.ndcg.mean:.3f} |")
    lines += ["", "### 2. Calibration under drift", "",
              "Calibrators fitted on the past log (users arriving at times [0, 1)), judged on a "
              "random-policy log of the future ([1, 1.2)) of the same run:", "",
              "| target | calibrator | log-loss | Brier | ECE equal-width | ECE equal-mass |",
              "|---|---|---|---|---|---|"]
    for d in result.drift:
        m = d.metrics
        lines.append(f"| {d.target} | {d.calibrator} | {m.log_loss:.4f} | {m.brier:.4f} | "
                     f"{m.ece:.4f} | {m.ece_mass:.4f} |")
    if result.truth_effect is not None:
        t = result.truth_effect
        lines += ["", f"A/B {result.config.treatment} vs {result.config.control}: true effect "
                  f"{t.mean:.3f} [{t.ci_low:.3f}, {t.ci_high:.3f}]", "",
                  "| design | mean effect | SD | mean CI width | coverage |", "|---|---|---|---|---|"]
        lines += [f"| {d.design} | {d.mean_effect:.3f} | {d.sd_effect:.3f} | "
                  f"{d.mean_ci_width:.3f} | {d.coverage:.0%} |" for d in result.designs]
    return lines


def orders_section() -> list[str]:
    rng = np.random.default_rng(0)
    losses, worse = [], 0
    for _ in range(2000):
        n = int(rng.integers(2, 11))
        p, r, c = rng.random(n), rng.exponential(1.0, n), rng.random(n)
        cap = int(rng.integers(1, n))
        exact = expected_revenue(p, r, c, capped_order(p, r, c, cap))
        truncated = expected_revenue(p, r, c, cascade_order(p, r, c)[:cap])
        worse += truncated < exact - 1e-12
        losses.append(1 - truncated / exact)
    lines = ["### 3. Orders", "",
             f"Capped (2 000 random instances, 2-10 items, uniform p and c, exponential r, cap "
             f"1..n-1): the truncated index order is worse than the exact capped DP in "
             f"{worse / 20:.0f}% of them; revenue lost: mean {np.mean(losses):.1%}, worst "
             f"{np.max(losses):.1%}.", "",
             "Position-dependent (item x position p and c; ratio to the exact subset DP, 200 "
             "instances per row):", "",
             "| instances | items | greedy mean | greedy worst | heuristic mean | heuristic worst |",
             "|---|---|---|---|---|---|"]
    for kind in ("uniform", "smooth"):
        for n in (6, 10, 14):
            greedy, heuristic = [], []
            for _ in range(200):
                t = np.arange(n)
                if kind == "uniform":
                    p, c = rng.random((n, n)), rng.random((n, n))
                else:
                    p = sigmoid(rng.normal(0, 1, n)[:, None] - rng.normal(0, 0.3, n)[:, None] * t)
                    c = sigmoid(2 + rng.normal(0, 1, n)[:, None] - 0.2 * rng.random(n)[:, None] * t)
                r = rng.exponential(1.0, n)
                best = positional_revenue(p, r, c, positional_exact_order(p, r, c))
                greedy.append(positional_revenue(p, r, c, positional_greedy_order(p, r, c)) / best)
                heuristic.append(positional_revenue(p, r, c, positional_heuristic_order(p, r, c))
                                 / best)
            lines.append(f"| {kind} | {n} | {np.mean(greedy):.3f} | {np.min(greedy):.3f} | "
                         f"{np.mean(heuristic):.3f} | {np.min(heuristic):.3f} |")
    lines += ["", "Time per call (median of 3, uniform instances):", "",
              "| function | items | cap | seconds |", "|---|---|---|---|"]
    for name, fn, n, cap in (("positional_exact_order", positional_exact_order, 12, None),
                             ("positional_exact_order", positional_exact_order, 16, None),
                             ("positional_exact_order", positional_exact_order, 20, None),
                             ("positional_exact_order", positional_exact_order, 60, 3),
                             ("positional_heuristic_order", positional_heuristic_order, 20, None),
                             ("positional_heuristic_order", positional_heuristic_order, 100, 10),
                             ("capped_order", None, 100_000, 10)):
        times = []
        for _ in range(3):
            if fn is None:
                p, r, c = rng.random(n), rng.exponential(1.0, n), rng.random(n)
                start = time.perf_counter()
                capped_order(p, r, c, cap)
            else:
                p, r, c = rng.random((n, n if cap is None else cap)), rng.exponential(1.0, n), \
                    rng.random((n, n if cap is None else cap))
                start = time.perf_counter()
                fn(p, r, c, cap)
            times.append(time.perf_counter() - start)
        lines.append(f"| {name} | {n} | {cap or 'none'} | {np.median(times):.4f} |")
    return lines


def _unstandardised_sgd(scores: np.ndarray, outcomes: np.ndarray, chunk: int = 1000,
                        lr: float = 0.01) -> tuple[np.ndarray, float]:
    """The former OnlinePlatt: SGD on raw scores from slope 1, intercept 0 (reference)."""
    slope, intercept, out = 1.0, 0.0, np.empty(len(scores))
    for lo in range(0, len(scores), chunk):
        part = slice(lo, lo + chunk)
        out[part] = sigmoid(slope * scores[part] + intercept)
        for s, y in zip(scores[part].tolist(), outcomes[part].tolist(), strict=True):
            z = slope * s + intercept
            p = 1.0 / (1.0 + np.exp(-z)) if z > -30 else 0.0
            slope, intercept = slope - lr * (p - y) * s, intercept - lr * (p - y)
    return out, slope


def scale_section() -> list[str]:
    rng = np.random.default_rng(0)
    n = 40_000
    s = rng.normal(0.0, 1.5, n)
    y = (rng.random(n) < sigmoid(np.where(np.arange(n) >= n // 2, 0.5 * s - 1.0, s))).astype(float)
    tail = slice(n - 10_000, n)
    best = calibration_metrics(fit_platt(s[tail], y[tail]).predict(s[tail]), y[tail])
    lines = ["### 4. Online Platt at any score scale", "",
             "40 000 pairs, calibration drifting from sigmoid(s) to sigmoid(0.5 s - 1) halfway; "
             "predict each 1 000-pair chunk, then learn it; metrics on the last 10 000 pairs "
             f"(best fixed Platt on them: log-loss {best.log_loss:.4f}, ECE {best.ece:.4f}).", "",
             "| scores | calibrator | log-loss | ECE equal-width | ECE equal-mass | slope x scale |",
             "|---|---|---|---|---|---|"]
    for scale in (1.0, 20.0, 50.0):
        online, predictions = OnlinePlatt(0.01), np.empty(n)
        for lo in range(0, n, 1000):
            predictions[lo:lo + 1000] = online.predict(scale * s[lo:lo + 1000])
            online.update(scale * s[lo:lo + 1000], y[lo:lo + 1000])
        old, old_slope = _unstandardised_sgd(scale * s, y)
        for name, p, slope in (("standardised (now)", predictions, online.slope),
                               ("unstandardised (before)", old, old_slope)):
            m = calibration_metrics(np.clip(p[tail], 0, 1), y[tail])
            lines.append(f"| x{scale:g} | {name} | {m.log_loss:.4f} | {m.ece:.4f} | "
                         f"{m.ece_mass:.4f} | {slope * scale:+.3f} |")
    return lines


def _loop_mask(ids, item_segments, user_segments, shown, answered, quotas, excluded):
    """The former per-item loop (reference)."""
    out = np.zeros(len(ids), dtype=bool)
    for i, item in enumerate(ids.tolist()):
        allowed = item_segments.get(item)
        out[i] = not ((allowed is not None and not (allowed & user_segments)) or item in shown
                      or item in answered or quotas.get(item, 1) <= 0 or item in excluded)
    return out


def mask_section() -> list[str]:
    lines = ["### 5. Eligibility mask per request (median of 50; rules built once per catalogue)",
             "", "| candidates | vectorised mask (ms) | per-item loop, before (ms) | ItemRules "
             "build, once (ms) |", "|---|---|---|---|"]
    for n in (10_000, 100_000):
        ids = np.arange(n)
        segments = {i: frozenset({"eu"}) for i in range(0, n, 7)}
        shown, answered, excluded = set(range(500)), set(range(900, 990)), {11, 12}
        quotas = {5: 0, 6: 3}
        start = time.perf_counter()
        rules = ItemRules(ids, segments)
        build = time.perf_counter() - start
        state = EligibilityState.from_ids(rules, {"us"}, shown, answered, quotas, excluded)
        fast, slow = [], []
        for _ in range(50):
            t0 = time.perf_counter()
            mask = eligibility_mask(state)
            fast.append(time.perf_counter() - t0)
        for _ in range(5):
            t0 = time.perf_counter()
            reference = _loop_mask(ids, segments, frozenset({"us"}), shown, answered, quotas,
                                   excluded)
            slow.append(time.perf_counter() - t0)
        assert (mask == reference).all()
        lines.append(f"| {n:,} | {np.median(fast) * 1e3:.3f} | {np.median(slow) * 1e3:.1f} | "
                     f"{build * 1e3:.0f} |")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=10_000)
    parser.add_argument("--no-write", action="store_true")
    parser.add_argument("--note", default="", help="What else was running (added to the header).")
    args = parser.parse_args()
    load_before = os.getloadavg()
    later = [orders_section(), scale_section(), mask_section()]
    sections = [policies_section(args.users), *later]
    load_after = os.getloadavg()
    header = [
        "## Value-aware ranking (benchmarks/value.py)", "",
        f"{datetime.date.today()}, {cpu_model()}, {os.cpu_count()} CPUs shared with other "
        f"engineers: load average (1/5/15 min) {'/'.join(f'{x:.1f}' for x in load_before)} "
        f"before, {'/'.join(f'{x:.1f}' for x in load_after)} after. "
        "Command: `.venv/bin/python benchmarks/value.py`." + (f" {args.note}" if args.note else ""),
        "",
    ]
    text = "\n".join(header + [line for section in sections for line in [*section, ""]])
    print(text)
    if not args.no_write:
        write_atomic(RESULTS, text)


if __name__ == "__main__":
    main()
