"""``seqrec simulate``: the survey simulator and value-aware ranking from a trained model, on the
command line (typer app, mounted by seqrec.cli). Only typer is imported here; the simulator, the
model, its plots and rich load when a command runs.

* ``seqrec simulate survey`` — compare ranking policies and A/B designs on simulated users;
* ``seqrec simulate calibrate`` — fit a calibrator of a saved recommender's probabilities on a
  held-out time window of impressions, and save it as JSON for that model version;
* ``seqrec simulate rank`` — filter -> score (a saved recommender) -> calibrate (fitted here, or
  a saved ``--calibrator``) -> order by expected revenue, for one history.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

if TYPE_CHECKING:
    from seqrec.value.simulator import SimulationResult

app = typer.Typer(
    help="Simulate users to compare ranking policies and A/B designs.", no_args_is_help=True
)


@app.callback()
def simulate() -> None:
    """Simulate users to compare ranking policies and A/B designs."""


def _ci(e: object, digits: int = 2) -> str:
    return f"{e.mean:.{digits}f} [{e.ci_low:.{digits}f}, {e.ci_high:.{digits}f}]"


def result_tables(result: SimulationResult) -> list[Any]:
    """Rich tables: model quality, policies, A/B designs."""
    from rich.table import Table

    models = Table(title="Estimators (fitted on random-policy logs of the past; latest rows held out)")
    for column in (
        "model",
        "ROC AUC",
        "ECE raw",
        "ECE calibrated",
        "log-loss raw",
        "log-loss calibrated",
    ):
        models.add_column(column, justify="right")
    for name, fit in (
        ("answer (Platt)", result.answer_fit),
        ("abandonment (isotonic)", result.abandonment_fit),
    ):
        models.add_row(
            name,
            f"{fit.auc:.3f}",
            f"{fit.before.ece:.4f}",
            f"{fit.after.ece:.4f}",
            f"{fit.before.log_loss:.4f}",
            f"{fit.after.log_loss:.4f}",
        )
    policies = Table(
        title=f"Policies on {result.config.n_users} users (mean [95% CI], bootstrap over users)"
    )
    for column in (
        "policy",
        "estimates",
        "NDCG (rel=answered)",
        "answers/session",
        "session length",
        "ARPU ($)",
    ):
        policies.add_column(column, justify="right")
    for r in result.rows:
        policies.add_row(
            r.policy,
            r.estimates,
            _ci(r.ndcg, 3),
            _ci(r.answers_per_session),
            _ci(r.session_length),
            _ci(r.arpu),
        )
    tables = [models, policies]
    if result.drift:
        drift = Table(title="Calibrators fitted on the past log, judged on the future (drift)")
        for column in ("target", "calibrator", "log-loss", "Brier", "ECE equal-width",
                       "ECE equal-mass"):
            drift.add_column(column, justify="right")
        for d in result.drift:
            m = d.metrics
            drift.add_row(d.target, d.calibrator, f"{m.log_loss:.4f}", f"{m.brier:.4f}",
                          f"{m.ece:.4f}", f"{m.ece_mass:.4f}")
        tables.append(drift)
    if result.designs and result.truth_effect is not None:
        cfg = result.config
        ab = Table(
            title=f"A/B {cfg.treatment} vs {cfg.control}: true ARPU effect {_ci(result.truth_effect)}"
        )
        for column in (
            "design",
            "experiments x users",
            "mean effect ($)",
            "SD of estimate",
            "mean 95% CI width",
            "CI coverage",
        ):
            ab.add_column(column, justify="right")
        for d in result.designs:
            ab.add_row(
                d.design,
                f"{d.n_experiments} x {d.users_per_experiment}",
                f"{d.mean_effect:.3f}",
                f"{d.sd_effect:.3f}",
                f"{d.mean_ci_width:.3f}",
                f"{d.coverage:.0%}",
            )
        tables.append(ab)
    return tables


@app.command()
def survey(
    users: int = typer.Option(
        10000, "--users", help="Users per policy run and in the training logs."
    ),
    policies: str = typer.Option(
        "random,likely,price,value,cascade,capped,positional", "--policies",
        help="Comma list of policies.",
    ),
    seed: int = typer.Option(0, "--seed", help="Master seed."),
    out: Path = typer.Option(
        Path("value_simulation"), "--out", help="Folder for the PNG and table."
    ),
    experiments: int = typer.Option(
        200, "--experiments", help="Repeated A/B experiments per design (0: skip)."
    ),
    experiment_users: int = typer.Option(
        400, "--experiment-users", help="Users per A/B experiment."
    ),
    oracle: bool = typer.Option(
        True, "--oracle/--no-oracle", help="Also run policies on true probabilities."
    ),
    force: bool = typer.Option(False, "--force", help="Replace a non-empty --out folder."),
) -> None:
    """Compare policies on NDCG, answers/session, session length and ARPU; replay an A/B test split by user vs by session."""
    from rich.console import Console

    from seqrec.files import replace_dir, staged_dir
    from seqrec.value.plots import simulation_figure
    from seqrec.value.policies import policy_names
    from seqrec.value.simulator import SimulationConfig, run_survey_simulation

    if out.exists() and not out.is_dir():
        raise typer.BadParameter(f"{out} exists and is not a folder", param_hint="--out")
    if out.is_dir() and any(out.iterdir()) and not force:
        raise typer.BadParameter(f"{out} is not empty; pass --force to replace it",
                                 param_hint="--out")
    try:
        config = SimulationConfig(
            n_users=users,
            policies=policy_names(policies),
            seed=seed,
            oracle=oracle,
            n_experiments=experiments,
            users_per_experiment=experiment_users,
        )
    except ValueError as error:
        raise typer.BadParameter(str(error)) from error
    start = time.perf_counter()
    result = run_survey_simulation(config)
    elapsed = time.perf_counter() - start
    console = Console(width=140, record=True)
    for table in result_tables(result):
        console.print(table)
    with staged_dir(out) as tmp:  # the folder is replaced whole, once complete
        simulation_figure(result, tmp / "value_simulation.png")
        console.print(f"simulation took {elapsed:.1f} s; figure: {out / 'value_simulation.png'}")
        (tmp / "value_simulation.txt").write_text(console.export_text())
        replace_dir(tmp, out)


def _ids(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def _fit(model: Any, impressions: Path, interactions: Path, method: str, test_fraction: float,
         normalise: str) -> Any:
    import pandas as pd

    from seqrec.value.model_scores import fit_model_calibrator

    return fit_model_calibrator(model, pd.read_csv(impressions), pd.read_csv(interactions),
                                method, "time", test_fraction, normalise=normalise)


def _report_line(method: str, report: Any) -> str:
    """One line of a CalibrationReport (or a saved HeldOutReport: same attributes)."""
    if report is None:
        return f"calibration ({method}): saved without a held-out report"
    b, a = report.before, report.after
    return (f"calibration ({method}, {report.holdout} holdout: fitted on {report.n_train_rows} "
            f"impressions, reported on the latest {report.n_test_rows}): log-loss "
            f"{b.log_loss:.4f} -> {a.log_loss:.4f}, ECE equal-mass {b.ece_mass:.4f} -> "
            f"{a.ece_mass:.4f}, Brier {b.brier:.4f} -> {a.brier:.4f}")


_MODEL = typer.Option(..., "--model", help="A saved model folder (seqrec train).")
_IMPRESSIONS_HELP = "CSV: user_id, item_id, timestamp, answered (0/1), later than the training data."
_INTERACTIONS_HELP = "CSV: user_id, item_id, timestamp (the users' histories)."
_NORMALISE_HELP = "Softmax over the 'catalogue' or the 'eligible' items."
_TEST_FRACTION_HELP = "Latest share of impressions held out for the report."


@app.command()
def calibrate(
    model_dir: Path = _MODEL,
    impressions: Path = typer.Option(..., "--impressions", help=_IMPRESSIONS_HELP),
    interactions: Path = typer.Option(..., "--interactions", help=_INTERACTIONS_HELP),
    out: Path = typer.Option(..., "--out", help="The calibrator file to write (JSON)."),
    method: str = typer.Option("platt", "--method", help="platt, temperature or isotonic."),
    normalise: str = typer.Option("catalogue", "--normalise", help=_NORMALISE_HELP),
    test_fraction: float = typer.Option(0.3, "--test-fraction", help=_TEST_FRACTION_HELP),
    force: bool = typer.Option(False, "--force", help="Replace an existing --out file."),
) -> None:
    """Fit a calibrator of the model's next-item probabilities on a held-out time window of
    impressions and save it (JSON, for this model version) for `simulate rank --calibrator` and
    `seqrec serve --value-calibrator`."""
    from seqrec.model_dir import load_model
    from seqrec.value.calibrator_file import save_calibrator

    if out.is_dir():
        raise typer.BadParameter(f"{out} is a folder, expected a file path", param_hint="--out")
    if out.exists() and not force:
        raise typer.BadParameter(f"{out} exists; pass --force to replace it", param_hint="--out")
    try:
        model = load_model(model_dir)
        report = _fit(model, impressions, interactions, method, test_fraction, normalise)
    except (ValueError, KeyError) as error:
        raise typer.BadParameter(str(error)) from error
    save_calibrator(report, out, model=model, normalise=normalise)
    typer.echo(_report_line(method, report))
    typer.echo(f"calibrator for model {model.metadata['model_version']} ({normalise} "
               f"log-probabilities) saved to {out}")


@app.command()
def rank(
    model_dir: Path = _MODEL,
    items: Path = typer.Option(
        ..., "--items", help="CSV of candidates: item_id, price (dollars), continuation (0-1)."
    ),
    calibrator: Path | None = typer.Option(
        None, "--calibrator", help="A saved calibrator (simulate calibrate) for this model, "
        "instead of fitting one from --impressions and --interactions.",
    ),
    impressions: Path | None = typer.Option(None, "--impressions", help=_IMPRESSIONS_HELP),
    interactions: Path | None = typer.Option(None, "--interactions", help=_INTERACTIONS_HELP),
    history: str = typer.Option("", "--history", help="The user's item ids, oldest first, a,b,c."),
    cap: int | None = typer.Option(None, "--cap", help="Most items the session shows (exact DP)."),
    exclude: str = typer.Option("", "--exclude", help="Ineligible candidate ids, a,b,c."),
    method: str | None = typer.Option(
        None, "--method", help="platt (default), temperature or isotonic (when fitting)."),
    normalise: str | None = typer.Option(
        None, "--normalise", help=_NORMALISE_HELP + " Default: the calibrator file's, or "
        "'catalogue' when fitting."),
    test_fraction: float | None = typer.Option(
        None, "--test-fraction", help=_TEST_FRACTION_HELP + " Default 0.3 (when fitting)."),
) -> None:
    """Rank candidates by expected revenue from a recommender's calibrated probabilities (a
    calibrator fitted here from --impressions and --interactions, or a saved --calibrator)."""
    import numpy as np
    import pandas as pd
    from rich.console import Console
    from rich.table import Table

    from seqrec.model_dir import load_model
    from seqrec.value.calibrator_file import load_calibrator
    from seqrec.value.value_rank import rank_by_value

    fitting = impressions is not None or interactions is not None
    if calibrator is not None and fitting:
        raise typer.BadParameter("give either --calibrator or --impressions with "
                                 "--interactions, not both", param_hint="--calibrator")
    if calibrator is None and (impressions is None or interactions is None):
        raise typer.BadParameter("give --calibrator FILE, or both --impressions and "
                                 "--interactions to fit a calibrator", param_hint="--calibrator")
    for name, given in (("--method", method), ("--test-fraction", test_fraction)):
        if calibrator is not None and given is not None:
            raise typer.BadParameter("only for fitting: the --calibrator file was fitted already",
                                     param_hint=name)
    try:
        model = load_model(model_dir)
        table = pd.read_csv(items)
        missing = [c for c in ("item_id", "price", "continuation") if c not in table.columns]
        if missing:
            raise ValueError(f"--items is missing columns {missing}")
        candidates = model.catalogue.to_index(table["item_id"].tolist(), where="--items")
        excluded = model.catalogue.to_index(_ids(exclude), where="--exclude")
        if calibrator is not None:
            saved = load_calibrator(calibrator, model)
            if normalise not in (None, saved.normalise):
                raise ValueError(f"--normalise {normalise}: {calibrator} was fitted on "
                                 f"{saved.normalise!r} log-probabilities")
            method, normalise, fitted, report = (saved.method, saved.normalise,
                                                 saved.calibrator, saved.report)
        else:
            assert impressions is not None and interactions is not None
            method, normalise = method or "platt", normalise or "catalogue"
            report = _fit(model, impressions, interactions, method,
                          0.3 if test_fraction is None else test_fraction, normalise)
            fitted = report.calibrator
        ranking = rank_by_value(model, _ids(history), table["item_id"].tolist(),
                                table["price"].to_numpy(), table["continuation"].to_numpy(),
                                fitted, cap=cap, normalise=normalise,  # type: ignore[arg-type]
                                is_eligible=~np.isin(candidates, excluded))
    except (ValueError, KeyError) as error:
        raise typer.BadParameter(str(error)) from error
    console = Console(width=120)
    prefix = f"{calibrator}: " if calibrator is not None else ""
    console.print(prefix + _report_line(method, report))
    out = Table(title=f"By expected revenue (P(next) over the {normalise}; cap {cap or 'none'})")
    for column in ("rank", "item_id", "log P(next)", "P(answer)", "price ($)", "continuation",
                   "key r p / (1 - c)"):
        out.add_column(column, justify="right")
    for i, item in enumerate(ranking.item_ids.tolist()):
        out.add_row(str(i + 1), str(item), f"{ranking.log_probs[i]:.3f}",
                    f"{ranking.probabilities[i]:.3f}", f"{ranking.prices[i]:.2f}",
                    f"{ranking.continuation[i]:.3f}", f"{ranking.keys[i]:.3f}")
    console.print(out)
    console.print(f"expected revenue ${ranking.expected_revenue:.3f} per session")


if __name__ == "__main__":
    app()
