"""``seqrec simulate``: the survey simulator from the command line (typer app, mounted by
seqrec.cli). Only typer is imported here; the simulator, its plots and rich load when a command
runs."""

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

    models = Table(title="Estimators (fitted on random-policy logs; held-out users)")
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
        "random,likely,value,cascade", "--policies", help="Comma list of policies."
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


if __name__ == "__main__":
    app()
