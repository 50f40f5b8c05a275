"""Commands on a saved model: ``evaluate``, ``recommend``, ``similar``, ``info``, ``export``,
``serve``."""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Annotated, Any

import typer

from seqrec.cli.app import CliError, app, message
from seqrec.cli.common import (
    DataOpt,
    ForceOpt,
    FormatOpt,
    ItemColOpt,
    KOpt,
    ModelOpt,
    RepeatOpt,
    Retrieval,
    SplitOpt,
    TestDaysOpt,
    TestFractionOpt,
    ThreadsOpt,
    TimeColOpt,
    UnknownUser,
    UserColOpt,
    apply_threads,
    check_data_options,
    check_out_file,
    check_split_options,
    console,
    emit_frame,
    id_list,
    load_data,
    load_model,
    make_split,
    plural,
    value,
)
from seqrec.cli.tables import fmt, metric_list


@app.command("evaluate")
def evaluate_command(
    model_dir: ModelOpt,
    data: DataOpt = None,
    fmt_: FormatOpt = None,
    split: SplitOpt = "loo",
    test_days: TestDaysOpt = None,
    test_fraction: TestFractionOpt = None,
    k: Annotated[list[int] | None, typer.Option(
        "--k", "-k", min=1, help="Cutoff (repeatable) [default: 10].")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
    user_col: UserColOpt = None,
    item_col: ItemColOpt = None,
    timestamp_col: TimeColOpt = None,
    repeat: RepeatOpt = False,
    threads: ThreadsOpt = None,
) -> None:
    """Evaluate a saved model on the test part of a split of --data.

    Every catalogue item is ranked (no sampled candidates) with each user's history items
    filtered; the metrics are those of the lists `recommend` would return. Items the model does
    not know are dropped from --data (counted in a warning).
    """
    from seqrec import align_to_catalogue, evaluate

    split = value(split)
    check_data_options(data, fmt_, user_col, item_col, timestamp_col)
    check_split_options(split, test_days, test_fraction)
    apply_threads(threads)
    model = load_model(model_dir)
    try:
        dataset = align_to_catalogue(load_data(data, fmt_, user_col, item_col, timestamp_col),
                                     model.catalogue)
    except ValueError as error:
        raise CliError(f"--data: {message(error)}") from None
    parts = make_split(dataset, split, test_days, test_fraction, repeat=repeat)
    cutoffs = sorted(set(k or [10]))
    # score with the model, count popularity (ARP, novelty) on the split's train part
    report = evaluate(model, parts.test, k=cutoffs, train=parts.train, filter_viewed=not repeat)
    n_users = parts.test.targets.n_sequences
    if as_json:
        typer.echo(json.dumps({"model": str(model_dir), "split": split, "k": cutoffs,
                               "n_users": int(n_users),
                               "metrics": {n: float(v) for n, v in report.means.items()}},
                              indent=2))
        return
    console().print(metric_list(report.means, title=f"{model_dir} on {data or value(fmt_)}: "
                                f"{split} split, {plural(n_users, 'test user')}"))


def _ids_or_none(text: str | None, option: str) -> list[str] | None:
    return None if text is None else id_list(text, option)


@app.command()
def recommend(
    model_dir: ModelOpt,
    users: Annotated[str | None, typer.Option(
        "--users", help="Known user ids: comma-separated, or a file with one id per line.")] = None,
    history: Annotated[list[str] | None, typer.Option(
        "--history", help="An anonymous history ITEM,ITEM,... oldest first (repeatable: one "
        "list each).")] = None,
    k: KOpt = 10,
    filter_viewed: Annotated[bool | None, typer.Option(
        "--filter-viewed/--no-filter-viewed", help="Leave out items in the history [default: "
        "yes, unless the model was trained with --repeat].")] = None,
    include_items: Annotated[str | None, typer.Option(
        "--include-items", help="Recommend only these items (file or comma list; an empty file "
        "allows nothing).")] = None,
    exclude_items: Annotated[str | None, typer.Option(
        "--exclude-items", help="Never recommend these items (file or comma list).")] = None,
    on_unknown_user: Annotated[UnknownUser, typer.Option(
        "--on-unknown-user",
        help="A user id the model does not know, or a --history with no known item: fail, give "
        "the most popular items, or leave it out (counted in a warning).")] = "error",
    retrieval: Annotated[Retrieval, typer.Option(
        "--retrieval", help="exact: score every item; ann: candidates from the model's ANN index "
        "(filters and scores stay exact); auto: the index when the model has one and a large "
        "catalogue.")] = "auto",
    out: Annotated[Path | None, typer.Option(
        "--out", "-o", help="CSV file to write [default: stdout].")] = None,
    force: ForceOpt = False,
    threads: ThreadsOpt = None,
) -> None:
    """Top-k items for known users or for anonymous histories, as CSV.

    Columns: user_id (or history: the position of the --history option), item_id, score, rank.
    Each user gets exactly k rows unless fewer items are eligible. Ids are read with the
    model's id rule: for integer ids, "12" is 12 but "012" or "abc" is unknown; unknown items
    in a history or filter are dropped and counted in a warning.
    """
    from seqrec.errors import UnknownIdError

    if (users is None) == (not history):
        raise CliError("give exactly one of --users or --history")
    check_out_file(out, force)
    include = _ids_or_none(include_items, "--include-items")
    exclude = _ids_or_none(exclude_items, "--exclude-items")
    user_ids = _ids_or_none(users, "--users")
    histories = [id_list(h, "--history") for h in history or []]
    apply_threads(threads)
    model = load_model(model_dir)
    if value(retrieval) == "ann" and getattr(model, "ann_index", None) is None:
        raise CliError(f"--retrieval ann: {model_dir} has no ANN index (build one from Python "
                       "with seqrec.ann.build_index and save the model)")
    if include:  # an explicit empty list allows nothing; a list of typos must not look like it
        known = model.catalogue.to_index(include, unknown="pad") >= 0
        if not known.any():
            raise CliError(f"--include-items: none of the {plural(len(include), 'id')} is an item "
                           f"of {model_dir} (first: {include[0]!r}); nothing could be recommended")
    if filter_viewed is None:  # a model trained for repeat consumption keeps seen items
        filter_viewed = not (model.metadata or {}).get("repeat", False)
    options = dict(k=k, filter_viewed=filter_viewed, include_items=include,
                   exclude_items=exclude, on_unknown_user=value(on_unknown_user),
                   retrieval=value(retrieval))
    try:
        if user_ids is not None:
            frame = model.recommend(user_ids, **options)
            key, asked = "user_id", len(user_ids)
        else:
            frame = model.recommend_for_histories(histories, **options)
            key, asked = "history", len(histories)
    except UnknownIdError as error:
        option = "--users" if user_ids is not None else "--history"
        text = message(error).replace(" (see on_unknown_user)", "")
        raise CliError(f"{option}: {text} (see --on-unknown-user)") from None
    short = asked - int((frame.groupby(key).size() >= k).sum())
    if short:
        warnings.warn(f"{plural(short, 'list')} shorter than k={k}: fewer eligible items (seen "
                      "items, --include-items / --exclude-items, or a skipped id)", stacklevel=1)
    emit_frame(frame, out)


@app.command()
def similar(
    model_dir: ModelOpt,
    items: Annotated[str, typer.Option(
        "--items", help="Item ids: comma-separated, or a file with one id per line.")],
    k: KOpt = 10,
    out: Annotated[Path | None, typer.Option(
        "--out", "-o", help="CSV file to write [default: stdout].")] = None,
    force: ForceOpt = False,
    threads: ThreadsOpt = None,
) -> None:
    """Item-to-item neighbours by cosine similarity of the item embeddings, as CSV.

    Columns: item_id, similar_item_id, score, rank.
    """
    from seqrec.errors import UnknownItemError
    from seqrec.recommender import SequentialRecommender

    check_out_file(out, force)
    ids = id_list(items, "--items")
    apply_threads(threads)
    model = load_model(model_dir)
    if not isinstance(model, SequentialRecommender):
        raise CliError(f"--model {model_dir}: a popular baseline has no item embeddings")
    try:
        frame = model.similar_items(ids, k=k)
    except UnknownItemError as error:
        raise CliError(f"--items: {message(error)}") from None
    emit_frame(frame, out)


@app.command()
def info(
    model_dir: ModelOpt,
    as_json: Annotated[bool, typer.Option("--json", help="Print model.json as is.")] = False,
) -> None:
    """What a model directory holds: kind, sizes, when it was trained, test metrics, config."""
    from rich.table import Table

    from seqrec.model_dir import read_metadata

    try:
        meta = read_metadata(model_dir)
    except Exception as error:
        raise CliError(f"--model {model_dir}: {message(error).split(': ', 1)[-1]}") from None
    if as_json:
        typer.echo(json.dumps(meta, indent=2))
        return
    table = Table(title=str(model_dir), show_header=False)
    table.add_column("key")
    table.add_column("value")
    for key in ("kind", "seqrec_version", "trained_at", "n_users", "n_items", "best_epoch",
                "best_validation_ndcg@10"):
        if key in meta:
            item = meta[key]
            table.add_row(key, fmt(item) if isinstance(item, float) else str(item))
    for name, number in (meta.get("metrics") or {}).items():
        table.add_row(f"test {name}", fmt(number))
    saved = meta.get("preset_config") or {}
    rates = _rule_rates(saved)
    for name, setting in saved.items():
        if name in rates:  # a rule such as "width": the rate it trained with, too
            setting = f"{setting} ({rates[name]:g})"
        table.add_row(f"config.{name}", str(setting))
    console().print(table)


def _rule_rates(saved: dict[str, Any]) -> dict[str, float]:
    """:meth:`Config.rule_rates` of a saved config; none when it no longer parses."""
    from seqrec.config import Config

    try:
        return Config.from_saved(saved).rule_rates()
    except ValueError:
        return {}


@app.command("export")
def export_command(
    model_dir: ModelOpt,
    onnx_file: Annotated[Path, typer.Option(
        "--onnx", help="ONNX file to write (never inside a model directory).")],
    force: Annotated[bool, typer.Option("--force", help="Replace an existing --onnx.")] = False,
) -> None:
    """Export the model's inference encoder to ONNX, checked against PyTorch before writing.

    The graph takes (batch, seq_len) int64 item indices, left-padded with 0, seq_len up to the
    model's max_seq_len, and returns (batch, dim) float32 last-position hidden states; an item's
    score is hidden · its embedding. Needs pip install 'seqrec[onnx]'.
    """
    from seqrec.export import export_onnx, require_onnx
    from seqrec.recommender import SequentialRecommender

    check_out_file(onnx_file, force, option="--onnx")
    if onnx_file.resolve().is_relative_to(model_dir.resolve()):
        raise CliError(f"--onnx {onnx_file}: inside the model directory; write it elsewhere")
    try:
        require_onnx()
    except ImportError as error:
        raise CliError(f"--onnx: {message(error)}") from None
    model = load_model(model_dir)
    if not isinstance(model, SequentialRecommender):
        raise CliError(f"--model {model_dir}: a popular baseline has no encoder to export")
    done = export_onnx(model, onnx_file)
    typer.echo(f"wrote {done.path} (opset {done.opset}; ONNX Runtime vs PyTorch: max abs diff "
               f"{done.max_abs_diff:.2g} on {len(done.checked)} check batches)")


@app.command()
def serve(
    model_dir: ModelOpt,
    host: Annotated[str, typer.Option(
        help="Interface to bind (default: this machine only; put a reverse proxy with TLS and "
        "authentication in front before binding to a network).")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="TCP port.")] = 8000,
    popular_fallback: Annotated[bool, typer.Option(
        "--popular-fallback", help="Unknown users (and histories with no known item) get "
        "popular items instead of a 404.")] = False,
    threads: Annotated[int, typer.Option(
        "--threads", min=1, help="Torch threads for scoring.")] = 1,
    value_calibrator: Annotated[Path | None, typer.Option(
        "--value-calibrator", help="A calibrator file fitted for this model (seqrec simulate "
        "calibrate): enables POST /rank/value; read again at every reload.")] = None,
) -> None:
    """Serve a model over HTTP (JSON; OpenAPI at /openapi.json; kill -HUP reloads the model)."""
    from seqrec.serve import check_port
    from seqrec.serve import serve as run_server

    model = load_model(model_dir)  # refuse a broken directory with one line, before binding
    if value_calibrator is not None:
        from seqrec.value.calibrator_file import load_calibrator

        load_calibrator(value_calibrator, model)  # a missing or mismatched file: one line
    try:
        check_port(host, port)
    except OSError as error:
        raise CliError(f"--host {host} --port {port}: cannot listen there "
                       f"({error.strerror or error})") from None
    run_server(model_dir, host=host, port=port, torch_threads=threads,
               unknown_user="popular" if popular_fallback else "error",
               value_calibrator=value_calibrator)
