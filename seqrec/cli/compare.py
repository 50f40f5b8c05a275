"""``seqrec compare``: train several presets on one split, compare accuracy with
beyond-accuracy metrics and mark the Pareto front."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated

import typer

from seqrec.cli.app import CliError, app
from seqrec.cli.common import (
    PLOT_FORMATS,
    Accelerator,
    DataOpt,
    FormatOpt,
    ItemColOpt,
    KOpt,
    ProgressOpt,
    QuietOpt,
    RepeatOpt,
    SetOpt,
    SplitOpt,
    TargetsOpt,
    TestDaysOpt,
    TestFractionOpt,
    ThreadsOpt,
    TimeColOpt,
    UserColOpt,
    check_data_options,
    check_out_file,
    check_split_options,
    console,
    echo_data_report,
    load_data,
    make_config,
    make_split,
    plural,
    value,
    warn_inert,
)
from seqrec.cli.tables import metrics_table
from seqrec.cli.training import progress_callbacks

COMPARE_METRICS = ("ndcg", "recall", "coverage", "arp", "novelty")


@app.command()
def compare(
    data: DataOpt = None,
    fmt_: FormatOpt = None,
    models: Annotated[str, typer.Option(
        "--models", help="Comma-separated presets: popular, esasrec, sasrec, sasrec_ss, gsasrec, "
        "bert4rec, hstu, fuxi_alpha.")] = "esasrec,sasrec,popular",
    split: SplitOpt = "time",
    test_days: TestDaysOpt = None,
    test_fraction: TestFractionOpt = None,
    sets: SetOpt = None,
    k: KOpt = 10,
    plot: Annotated[Path | None, typer.Option(
        "--plot", help="Draw the NDCG / coverage front to this image (.png, .svg, .pdf).")] = None,
    force: Annotated[bool, typer.Option("--force", help="Replace an existing --plot.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
    accelerator: Annotated[Accelerator | None, typer.Option(
        "--accelerator", help="Device type for the transformer models [default: cpu].")] = None,
    threads: ThreadsOpt = None,
    user_col: UserColOpt = None,
    item_col: ItemColOpt = None,
    timestamp_col: TimeColOpt = None,
    debiased: Annotated[bool, typer.Option(
        "--debiased", help="Also dNDCG@k and dHR@k: targets of over-popular items down-sampled "
        "(Q3 + 1.5 IQR of per-item counts), as the eSASRec paper's time-split tables.")] = False,
    repeat: RepeatOpt = False,
    targets: TargetsOpt = None,
    progress: ProgressOpt = None,
    quiet: QuietOpt = False,
) -> None:
    """Train several models on one split and compare accuracy with beyond-accuracy metrics.

    Each model is fit on the train part (early stopping on validation NDCG@10) and evaluated on
    the test part: NDCG, Recall, coverage, ARP and novelty at k. Models no other model beats on
    both NDCG@k and coverage@k are marked Pareto-optimal; --plot draws that front. --set applies
    to every transformer model (e.g. --set epochs=20). The table (or JSON) is the result and is
    printed even with --quiet, which hides progress only.
    """
    from seqrec.config import Runtime
    from seqrec.evaluation import evaluate
    from seqrec.popular import PopularRecommender
    from seqrec.recommender import SequentialRecommender
    from seqrec.report import pareto_front

    split = value(split)
    names = [name.strip() for name in models.split(",") if name.strip()]
    if not names or len(set(names)) != len(names):
        raise CliError(f"--models {models!r}: give distinct preset names, comma-separated")
    if sets and set(names) == {"popular"}:
        raise CliError("--set: applies to the sequential models; --models has only popular")
    configs = {name: None if name == "popular" else make_config(name, None, sets,
                                                                option="--models",
                                                                warn=False)
               for name in names}
    warn_inert([config for config in configs.values() if config is not None], sets)
    if plot is not None and plot.suffix.lower() not in PLOT_FORMATS:
        raise CliError(f"--plot {plot}: unknown image format {plot.suffix or '(none)'!r}; use "
                       f"{', '.join(PLOT_FORMATS)}")
    check_out_file(plot, force, "--plot")
    check_data_options(data, fmt_, user_col, item_col, timestamp_col)
    check_split_options(split, test_days, test_fraction)
    runtime = Runtime(accelerator=value(accelerator) or "cpu", threads=threads)
    dataset = load_data(data, fmt_, user_col, item_col, timestamp_col)
    if targets is not None and split != "time":
        raise CliError("--targets: only with --split time")
    parts = make_split(dataset, split, test_days, test_fraction, repeat=repeat,
                       targets=value(targets) or "all")
    if not quiet:
        echo_data_report(dataset, parts)
    on_epoch, on_batch = progress_callbacks(quiet, progress)
    results: dict[str, dict[str, float]] = {}
    for name in names:
        if not quiet:
            typer.echo(f"training {name}", err=True)
        config = configs[name]
        model = (PopularRecommender() if config is None
                 else SequentialRecommender(config, runtime=runtime))
        start = time.perf_counter()
        model.fit(dataset, parts.train, parts.validation, on_epoch=on_epoch, on_batch=on_batch)
        report = evaluate(model, parts.test, k=k, metrics=COMPARE_METRICS, train=parts.train,
                          filter_viewed=not repeat, debiased=debiased)
        results[name] = {**report.means, "seconds": time.perf_counter() - start}
    columns = [f"{metric}@{k}" for metric in COMPARE_METRICS]
    if debiased:
        columns += [f"dndcg@{k}", f"dhit_rate@{k}"]
    points = [[results[n][f"ndcg@{k}"], results[n][f"coverage@{k}"]] for n in names]
    on_front = pareto_front(points)
    if as_json:
        typer.echo(json.dumps({"split": split, "k": k, "models": [
            {"model": n, **{c: float(results[n][c]) for c in columns},
             "seconds": results[n]["seconds"], "pareto_optimal": bool(front)}
            for n, front in zip(names, on_front, strict=True)]}, indent=2))
    else:
        marks = {n: {"pareto": "yes" if front else ""}
                 for n, front in zip(names, on_front, strict=True)}
        users = plural(parts.test.targets.n_sequences, "user")
        console().print(metrics_table(results, [*columns, "seconds"], extra=marks,
                                      title=f"test ({split}, {users})"))
    if plot is not None:
        from seqrec.report import plot_front

        plot_front(names, [p[1] for p in points], [p[0] for p in points], on_front, plot,
                   xlabel=f"coverage@{k}", ylabel=f"NDCG@{k}",
                   title=f"{data.name if data else value(fmt_)}, {split} split")
        typer.echo(f"front drawn to {plot}", err=True)
