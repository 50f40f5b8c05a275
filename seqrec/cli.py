"""The ``seqrec`` command line (typer): quickstart, train, evaluate, recommend, similar, info,
compare, simulate.

Conventions shared by every command:

* results go to stdout (tables, CSV, JSON); progress and warnings go to stderr;
* a failure is ONE line on stderr, ``error: <what> (<why>)``, and a non-zero exit code (1 for bad
  input or a failed run, 2 for a malformed command line); ``seqrec --debug <command>`` shows the
  traceback instead;
* an output directory is built in a staging directory beside it and renamed into place when
  complete, so it never holds half a result; an existing non-empty one is only replaced with
  ``--force`` (``train --resume`` continues it). Output files (CSV, plots) are written to a
  temporary file and renamed over the target.

Multi-GPU / multi-node training uses Lightning Fabric's launcher: see ``docs/cli.md``.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import sys
import tempfile
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from enum import Enum
from pathlib import Path
from types import SimpleNamespace
from typing import Annotated, Any

import numpy as np
import pandas as pd
import typer
from rich.console import Console
from rich.table import Table
from typer.core import TyperGroup

from seqrec.files import apply_umask

# ------------------------------------------------------------------------------------------------
# errors: one line on stderr, no traceback unless --debug
# ------------------------------------------------------------------------------------------------


class CliError(Exception):
    """A problem the user can fix; its message is printed as is after ``error:``."""


def _one_line(text: str) -> str:
    lines = [line.strip() for line in str(text).strip().splitlines() if line.strip()]
    return " ".join(lines) if lines else "unknown error"


def _message(error: BaseException) -> str:
    if isinstance(error, CliError):
        return _one_line(str(error))
    if isinstance(error, KeyError) and error.args:  # str(KeyError) adds quotes
        return _one_line(str(error.args[0]))
    if isinstance(error, (ValueError, RuntimeError, OSError, MemoryError)):
        return _one_line(str(error))
    return _one_line(f"{type(error).__name__}: {error} (run `seqrec --debug ...` for the traceback)")


def _error(text: str) -> None:
    typer.echo(f"error: {text}", err=True)


class _Group(TyperGroup):
    """The root command: turns every failure into one ``error:`` line and an exit code."""

    def main(self, args: Any = None, prog_name: str | None = None, complete_var: str | None = None,
             standalone_mode: bool = True, **extra: Any) -> Any:
        argv = list(sys.argv[1:] if args is None else args)
        debug = "--debug" in argv
        with _messages_on_stderr(debug):
            code = self._run(argv, prog_name, complete_var, debug, **extra)
        if standalone_mode:
            sys.exit(code)
        return code

    def _run(self, argv: list[str], prog_name: str | None, complete_var: str | None, debug: bool,
             **extra: Any) -> int:
        try:
            result = super().main(argv, prog_name or "seqrec", complete_var, standalone_mode=False,
                                  **extra)
        except typer.Abort:
            _error("aborted")
            return 1
        except KeyboardInterrupt:
            _error("interrupted")
            return 130
        except Exception as error:
            if _is_usage_error(error):  # typer's (vendored) click: bad or missing options
                if type(error).__name__ == "NoArgsIsHelpError":
                    typer.echo(error.format_message())
                    return 0
                _error(_one_line(error.format_message()))
                return int(error.exit_code)
            if debug:
                raise
            _error(_message(error))
            return 1
        return result if isinstance(result, int) else 0


def _is_usage_error(error: Exception) -> bool:
    return hasattr(error, "format_message") and isinstance(getattr(error, "exit_code", None), int)


@contextmanager
def _messages_on_stderr(debug: bool) -> Iterator[None]:
    """Python warnings and seqrec log warnings as ``warning: ...`` lines (INFO logs with --debug)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setLevel(logging.DEBUG if debug else logging.WARNING)
    handler.setFormatter(logging.Formatter("%(name)s: %(message)s" if debug else "warning: %(message)s"))
    logger = logging.getLogger("seqrec")
    old_level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG if debug else logging.WARNING)
    logger.propagate, old_propagate = False, logger.propagate

    def show(message, category, filename, lineno, file=None, line=None) -> None:  # noqa: ANN001
        typer.echo(f"warning: {_one_line(str(message))}", err=True)

    try:
        with warnings.catch_warnings():
            if not debug:
                warnings.showwarning = show
            yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old_level)
        logger.propagate = old_propagate


class _EpochLines(logging.Handler):
    """Prints the training loop's per-epoch log records as short lines on stderr."""

    def emit(self, record: logging.LogRecord) -> None:
        args = record.args if isinstance(record.args, tuple) else ()
        if record.msg.startswith("epoch ") and len(args) == 5:
            epoch, loss, seconds, rate, metric = args
            text = f"epoch {epoch:>3}  loss {loss:.4f}  {seconds:.1f}s  {rate:.0f} seq/s"
            if metric is not None:
                text += f"  validation ndcg@10 {metric:.4f}"
        else:
            text = record.getMessage()
        typer.echo(text, err=True)


@contextmanager
def _epoch_lines(enabled: bool) -> Iterator[None]:
    if not enabled:
        yield
        return
    logger = logging.getLogger("seqrec.train")
    handler, old_level = _EpochLines(level=logging.INFO), logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old_level)


# ------------------------------------------------------------------------------------------------
# the app
# ------------------------------------------------------------------------------------------------

app = typer.Typer(
    cls=_Group,
    name="seqrec",
    help="Sequential recommendation with transformers (eSASRec): train, evaluate, recommend.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        from seqrec import __version__

        typer.echo(f"seqrec {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks and debug logs.")] = False,
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                          help="Print the version and exit.")] = False,
) -> None:
    """Sequential recommendation with transformers (eSASRec): train, evaluate, recommend.

    Errors are one line on stderr with a non-zero exit code; add --debug (before the command) for
    the traceback.
    """


# ---- shared options ----------------------------------------------------------------------------
FORMATS = ("csv", "tsv", "parquet", "s3rec", "sasrec", "recbole", "movielens")
TABLE_FORMATS = ("csv", "tsv", "parquet")


def _choices(name: str, values: tuple[str, ...]) -> type[Enum]:
    """A str Enum for typer's choice options (shown in --help, checked on parsing)."""
    return Enum(name, {value: value for value in values}, type=str)  # type: ignore[return-value]


Format = _choices("Format", FORMATS)
HeldOutSplit = _choices("HeldOutSplit", ("loo", "time"))
TrainSplit = _choices("TrainSplit", ("loo", "time", "none"))
Accelerator = _choices("Accelerator", ("cpu", "cuda", "auto"))
UnknownUser = _choices("UnknownUser", ("error", "popular", "skip"))


def _value(choice: Any) -> Any:
    return choice.value if isinstance(choice, Enum) else choice

DataOpt = Annotated[Path | None, typer.Option(
    "--data", help="Interaction file (RecBole: the .inter file or its folder). Not needed for "
    "--format movielens (the embedded MovieLens ratings).")]
FormatOpt = Annotated[Format | None, typer.Option(
    "--format",
    help="Data format (see docs/data.md) [default: from the --data suffix: .csv, .tsv, .parquet].")]
UserColOpt = Annotated[str | None, typer.Option(
    "--user-col", help="csv/tsv/parquet: user id column [default: user_id].")]
ItemColOpt = Annotated[str | None, typer.Option(
    "--item-col", help="csv/tsv/parquet: item id column [default: item_id].")]
TimeColOpt = Annotated[str | None, typer.Option(
    "--timestamp-col", help="csv/tsv/parquet: time column (seconds or datetimes) [default: "
    "timestamp]; 'none': the row order is the time order.")]
SplitOpt = Annotated[HeldOutSplit, typer.Option(
    "--split",
    help="loo: each user's last item is the test target, the one before validates; time: the "
    "last --test-days / --test-fraction of the time range is the test period.")]
TestDaysOpt = Annotated[float | None, typer.Option(
    "--test-days", help="--split time: test window of this many days before the last event.")]
TestFractionOpt = Annotated[float | None, typer.Option(
    "--test-fraction", help="--split time: test window as a share of the time range [default: 0.1].")]
SetOpt = Annotated[list[str] | None, typer.Option(
    "--set", help="Config override key=value (repeatable), e.g. --set dim=128 --set lr=3e-4.")]
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar or tables.")]
ModelOpt = Annotated[Path, typer.Option("--model", "-m", help="Model directory (from train).")]
KOpt = Annotated[int, typer.Option("--k", "-k", min=1, help="List length.")]


def _console() -> Console:
    """Rich console on stdout; when stdout is not a terminal, wide enough not to cut tables."""
    console = Console(highlight=False)
    if not console.is_terminal:
        console.width = 160
    return console


# ---- data ----------------------------------------------------------------------------------------
def _load_data(data: Path | None, fmt: str | None, user_col: str | None = None,
               item_col: str | None = None, timestamp_col: str | None = None) -> Any:
    """The :class:`~seqrec.data.Dataset` named by the command line, or a one-line CliError."""
    from seqrec.data import load_dataset, load_interactions

    fmt = _value(fmt)
    if fmt is None:
        suffixes = {".csv": "csv", ".tsv": "tsv", ".parquet": "parquet", ".pq": "parquet"}
        fmt = suffixes.get(data.suffix.lower()) if data is not None else None
        if fmt is None:
            raise CliError(f"--format: missing (one of {', '.join(FORMATS)})")
    columns = {"--user-col": user_col, "--item-col": item_col, "--timestamp-col": timestamp_col}
    given = [name for name, value in columns.items() if value is not None]
    if given and fmt not in TABLE_FORMATS:
        raise CliError(f"{', '.join(given)}: only for --format csv, tsv or parquet (not {fmt})")
    if fmt == "movielens":
        if data is not None:
            raise CliError("--data: not used with --format movielens (the ratings are embedded)")
        return load_dataset(None, "movielens")
    if data is None:
        raise CliError(f"--data: missing (needed for --format {fmt})")
    if not data.exists():
        raise CliError(f"--data {data}: file not found")
    try:
        if fmt in TABLE_FORMATS:
            time_col = timestamp_col or "timestamp"
            return load_interactions(data, format=fmt, user_col=user_col or "user_id",
                                     item_col=item_col or "item_id",
                                     timestamp_col=None if time_col.lower() == "none" else time_col)
        return load_dataset(data, fmt)
    except (ValueError, KeyError, OSError, UnicodeDecodeError) as error:
        raise CliError(f"--data {data}: cannot read as {fmt}: {_message(error)}") from error
    except Exception as error:  # parsers raise their own types (pyarrow, pandas)
        raise CliError(f"--data {data}: cannot read as {fmt}: {_message(error)}") from error


def _make_split(dataset: Any, split: str, test_days: float | None, test_fraction: float | None,
                validation: bool = True) -> Any:
    from seqrec.data import leave_one_out, time_split

    split = _value(split)
    if split != "time" and (test_days is not None or test_fraction is not None):
        raise CliError("--test-days / --test-fraction: only with --split time")
    if split == "loo":
        result = leave_one_out(dataset)
    elif split == "time":
        if test_days is not None and test_fraction is not None:
            raise CliError("--test-days and --test-fraction: give one of them")
        if test_days is None and test_fraction is None:
            test_fraction = 0.1
        result = time_split(dataset, last_days=test_days, last_fraction=test_fraction,
                            validation=validation)
    else:
        return None
    if result.test.targets.n_sequences == 0:
        raise CliError(f"--split {split}: no user has a test target ({result.report.test})")
    return result


def _align_to_model(dataset: Any, model: Any) -> Any:
    """``dataset`` with its item indices rewritten as the model's catalogue indices.

    Interactions with items the model does not know are dropped (one warning counts them), so a
    model can be evaluated on another log of the same catalogue.
    """
    from seqrec.data import Dataset, Sequences

    catalogue = model.catalogue
    same = (len(catalogue) == dataset.n_items
            and catalogue.ids.dtype.kind == dataset.catalogue.ids.dtype.kind
            and bool(np.all(catalogue.ids == dataset.catalogue.ids)))
    if same:
        return Dataset(dataset.sequences, catalogue, dataset.user_index, None)
    # dataset index -> model index (-1: unknown); index 0 stays PAD
    mapping = np.concatenate([[0], catalogue.to_index(dataset.catalogue.ids, unknown="pad")])
    seqs = dataset.sequences
    items = mapping[seqs.items]
    keep = items > 0
    if not keep.any():
        raise CliError("--data: none of its items is in the model's catalogue "
                       "(a different data set, or ids of another type?)")
    if not keep.all():
        warnings.warn(f"--data: {int((~keep).sum()):,} interactions with items unknown to the "
                      "model dropped", stacklevel=2)
    row_of = np.repeat(np.arange(seqs.n_sequences), seqs.lengths)
    offsets = np.zeros(seqs.n_sequences + 1, dtype=np.int64)
    np.cumsum(np.bincount(row_of[keep], minlength=seqs.n_sequences), out=offsets[1:])
    aligned = Sequences(items[keep], offsets, seqs.users, seqs.timestamps[keep])
    return Dataset(aligned, catalogue, dataset.user_index, None)


# ---- config, models --------------------------------------------------------------------------------
def _config(preset_name: str, config_file: Path | None, sets: list[str] | None,
            base: Any = None) -> Any:
    """Preset (or ``base``), then the TOML file, then ``--set`` overrides."""
    from seqrec.config import PRESETS, Config, parse_set, preset

    if base is None:
        if preset_name not in PRESETS:
            raise CliError(f"--preset {preset_name!r}: unknown; expected popular or one of "
                           f"{', '.join(PRESETS)}")
        base = preset(preset_name)
    if config_file is not None:
        if not config_file.is_file():
            raise CliError(f"--config {config_file}: file not found")
        try:
            base = Config.load(config_file, base=base)
        except ValueError as error:
            raise CliError(f"--config {config_file}: {_message(error)}") from error
    try:
        overrides = parse_set(list(sets or []))
        return base.replace(**overrides)
    except ValueError as error:
        message = _message(error)
        raise CliError(message if message.startswith("--set") else f"--set: {message}") from error


def _load_model(path: Path) -> Any:
    from seqrec.checkpoint import load_model

    if not path.exists():
        raise CliError(f"--model {path}: directory not found")
    if not (path / "model.json").is_file():
        raise CliError(f"--model {path}: not a seqrec model directory (no model.json)")
    try:
        return load_model(path)
    except Exception as error:
        raise CliError(f"--model {path}: cannot load the model: {_message(error)}") from error


def _typed_ids(values: list[str], index: Any, option: str, what: str) -> list[Any]:
    """Command-line strings as the model's id type (int when the model's ids are ints)."""
    if index.ids.dtype.kind not in "iu":
        return values
    out = []
    for value in values:
        try:
            out.append(int(value))
        except ValueError:
            raise CliError(f"{option} {value!r}: the model's {what} ids are integers") from None
    return out


def _id_list(value: str, option: str) -> list[str]:
    """Ids from a file (one per line; blank and # lines skipped) or a comma-separated list."""
    path = Path(value)
    looks_like_file = os.sep in value or path.suffix.lower() in (".txt", ".csv", ".tsv", ".ids")
    if path.is_file():
        lines = [line.strip() for line in path.read_text().splitlines()]
        ids = [line for line in lines if line and not line.startswith("#")]
    elif looks_like_file:
        raise CliError(f"{option} {value}: file not found")
    else:
        ids = [part.strip() for part in value.split(",") if part.strip()]
    if not ids:
        raise CliError(f"{option} {value!r}: no ids")
    return ids


# ---- output directories and files ------------------------------------------------------------------
def _check_out_dir(out: Path, force: bool, hint: str = "") -> None:
    if out.exists() and not out.is_dir():
        raise CliError(f"--out {out}: exists and is not a directory")
    if out.is_dir() and any(out.iterdir()) and not force:
        raise CliError(f"--out {out}: directory exists and is not empty; pass --force to replace "
                       f"it{hint}")


def _publish(staged: Path, out: Path) -> None:
    """Move the complete directory ``staged`` to ``out`` (replacing it): two renames."""
    out.parent.mkdir(parents=True, exist_ok=True)
    apply_umask(staged)  # temporary directories and safetensors files are created private
    if out.exists():
        old = out.with_name(f".{out.name}.old-{os.getpid()}")
        os.replace(out, old)
        os.replace(staged, out)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(staged, out)


@contextmanager
def _staging(out: Path) -> Iterator[Path]:
    """A fresh temporary directory beside ``out``, removed unless it was published."""
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".partial", dir=out.parent))
    try:
        yield tmp
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _write_text(path: Path, text: str) -> None:
    """Write ``text`` to a temporary file beside ``path`` and rename it over ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as file:
            file.write(text)
        apply_umask(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def _emit_frame(frame: pd.DataFrame, out: Path | None) -> None:
    text = frame.to_csv(index=False, float_format="%.6g")
    if out is None:
        typer.echo(text, nl=False)
    else:
        _write_text(out, text)
        typer.echo(f"wrote {len(frame):,} rows to {out}", err=True)


# ---- tables ----------------------------------------------------------------------------------------
def _metrics_table(rows: dict[str, dict[str, float]], columns: list[str], title: str | None = None,
                   extra: dict[str, dict[str, str]] | None = None) -> Table:
    table = Table(title=title)
    table.add_column("model")
    for column in columns:
        table.add_column(column, justify="right")
    extra_columns = sorted({c for values in (extra or {}).values() for c in values})
    for column in extra_columns:
        table.add_column(column, justify="center")
    for name, metrics in rows.items():
        cells = [f"{metrics[column]:.1f}" if column == "seconds" else _fmt(metrics.get(column))
                 for column in columns]
        cells += [(extra or {}).get(name, {}).get(column, "") for column in extra_columns]
        table.add_row(name, *cells)
    return table


def _metric_list(metrics: dict[str, float], title: str) -> Table:
    table = Table(title=title)
    table.add_column("metric")
    table.add_column("value", justify="right")
    for name, value in metrics.items():
        table.add_row(name, _fmt(value))
    return table


def _fmt(value: float | None) -> str:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return "-"
    return f"{value:.4f}"


def _history_table(history: Any) -> Table:
    table = Table(title="training")
    for column in ("epoch", "loss", "seconds", "validation ndcg@10"):
        table.add_column(column, justify="right")
    for epoch in history:
        table.add_row(str(epoch.epoch), f"{epoch.loss:.4f}", f"{epoch.seconds:.1f}",
                      _fmt(epoch.validation_ndcg))
    return table


# ------------------------------------------------------------------------------------------------
# quickstart
# ------------------------------------------------------------------------------------------------
QUICKSTART = {"dim": 64, "max_seq_len": 200, "batch_size": 32, "n_negatives": 256,
              "negative_sharing": "sequence", "dropout": 0.3, "item_dropout": 0.0, "epochs": 60,
              "patience": 15}
"""eSASRec settings of ``seqrec quickstart``, sized for a 2-core laptop CPU: 200 items of history
(MovieLens users have 71 ratings at the median), 256 sampled negatives per sequence, small
batches (671 users make only 21 batches an epoch). No item-table dropout: on these 671 users,
with dropout 0.3 already, the preset's 0.2 lowered test NDCG@10 from 0.0480 to 0.0392."""


@app.command()
def quickstart(
    out: Annotated[Path, typer.Option("--out", help="Where to save the model.")] = Path("seqrec-quickstart"),
    epochs: Annotated[int | None, typer.Option("--epochs", min=1, help=(
        f"Upper bound on epochs [default: {QUICKSTART['epochs']}; training stops early when "
        "validation NDCG@10 has not improved for "
        f"{QUICKSTART['patience']} epochs]."))] = None,
    force: Annotated[bool, typer.Option("--force", help="Replace a non-empty --out.")] = False,
    quiet: QuietOpt = False,
) -> None:
    """Train eSASRec on the embedded MovieLens ratings and compare it with the popular baseline.

    Loads 100,004 ratings of 671 users (no download), holds out each user's last movie (test) and
    the one before (validation, for early stopping), trains eSASRec on a CPU in a few minutes,
    prints NDCG@10, Recall@10, MRR@10 and coverage@10 of eSASRec and of the most-popular
    baseline, recommendations for two users, and saves the model.
    """
    from seqrec import build_model, evaluate, leave_one_out, load_movielens

    _check_out_dir(out, force)
    console = _console()
    start = time.perf_counter()
    dataset = load_movielens()
    split = leave_one_out(dataset)
    if not quiet:
        console.print(f"MovieLens: {dataset.n_users:,} users, {dataset.n_items:,} movies, "
                      f"{len(dataset.sequences.items):,} ratings; leave-one-out split "
                      f"({split.test.targets.n_sequences:,} test users)")
    settings = {**QUICKSTART, **({"epochs": epochs} if epochs else {})}
    model = build_model("esasrec", **settings)
    with _epoch_lines(not quiet):
        fit_result = model.fit(dataset, split.train, split.validation, progress=not quiet)
    popular = build_model("popular")
    popular.fit(dataset, split.train)
    names = ("ndcg@10", "recall@10", "mrr@10", "coverage@10")
    metrics = {name: evaluate(m, split.test, k=10).means
               for name, m in (("esasrec", model), ("popular", popular))}
    seconds = time.perf_counter() - start
    model.histories = dataset.sequences  # serve from each user's whole history
    with _staging(out) as tmp:
        model.save(tmp / "model", metrics=metrics["esasrec"])
        _publish(tmp / "model", out)
    if quiet:
        typer.echo(f"{out}")
        return
    console.print(_metrics_table({k: {n: v[n] for n in names} for k, v in metrics.items()},
                                 list(names), title="MovieLens test users (leave-one-out, "
                                 "full ranking, seen items filtered)"))
    console.print(f"eSASRec best epoch {fit_result.best_epoch} of {len(fit_result.history)}; "
                  f"total time {seconds:.0f} s")
    for user in dataset.user_index.ids[:2].tolist():
        _print_example(console, model, dataset, user)
    console.print(f"model saved to {out}  (try: seqrec recommend --model {out} --users "
                  f"{dataset.user_index.ids[0]})")


def _print_example(console: Console, model: Any, dataset: Any, user: Any, n_last: int = 5,
                   k: int = 5) -> None:
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
    console.print(table)


def _title(info: pd.DataFrame | None, item: Any) -> str:
    if info is None or item not in info.index:
        return str(item)
    row = info.loc[item]
    title = str(row.get("title", item))
    genres = row.get("genres")
    return f"{title} [{str(genres).replace('|', ', ')}]" if isinstance(genres, str) else title


# ------------------------------------------------------------------------------------------------
# train
# ------------------------------------------------------------------------------------------------
@app.command()
def train(
    out: Annotated[Path, typer.Option("--out", help="Model directory to create.")],
    data: DataOpt = None,
    fmt: FormatOpt = None,
    preset_name: Annotated[str | None, typer.Option("--preset", help=(
        "popular or a model preset: esasrec, sasrec, sasrec_ss, gsasrec, bert4rec "
        "[default: esasrec]."))] = None,
    config_file: Annotated[Path | None, typer.Option(
        "--config", help="TOML file of config keys, applied over the preset.")] = None,
    sets: SetOpt = None,
    split: Annotated[TrainSplit, typer.Option(
        "--split",
        help="Validation and test split (see evaluate); none: train on everything, no early "
        "stopping, no test metrics.")] = "loo",
    test_days: TestDaysOpt = None,
    test_fraction: TestFractionOpt = None,
    accelerator: Annotated[Accelerator | None, typer.Option(
        "--accelerator",
        help="Device type [default: the config's, cpu].")] = None,
    devices: Annotated[int | None, typer.Option(
        "--devices", min=1, help="Devices (GPUs) per node; > 1 trains data-parallel (DDP).")] = None,
    num_nodes: Annotated[int | None, typer.Option(
        "--num-nodes", min=1, help="Machines; see docs/cli.md for the launch command.")] = None,
    resume: Annotated[bool, typer.Option(
        "--resume", help="Continue from the checkpoint of an interrupted (or finished) run in "
        "--out, with its saved config (--set may change e.g. epochs).")] = False,
    force: Annotated[bool, typer.Option("--force", help="Replace a non-empty --out.")] = False,
    user_col: UserColOpt = None,
    item_col: ItemColOpt = None,
    timestamp_col: TimeColOpt = None,
    quiet: QuietOpt = False,
) -> None:
    """Train a model on an interaction log and save it as a model directory.

    The model is fit on the train part of --split, stops early on validation NDCG@10 and is
    evaluated on the test part; the test metrics are stored in DIR/model.json. A checkpoint is
    written to DIR/checkpoint after every epoch; --resume continues from it. The saved model keeps
    every user's whole history from --data, so `seqrec recommend` continues after each user's
    last interaction.
    """
    from seqrec.config import Config
    from seqrec.recommender import PopularRecommender, SequentialRecommender

    split, accelerator = _value(split), _value(accelerator)
    if resume and force:
        raise CliError("--resume and --force: give one of them")
    _check_out_dir(out, force or resume, hint=" or --resume to continue its training")
    stage = out.parent / f".{out.name}.partial"
    is_popular = (preset_name or "esasrec") == "popular"
    if is_popular:
        if sets or config_file:
            raise CliError("--preset popular: takes no --set or --config")
        if resume:
            raise CliError("--resume: the popular baseline has nothing to resume")
        config = None
    elif resume:
        if preset_name or config_file:
            raise CliError("--resume: uses the config saved in --out; change it with --set only")
        saved = next((p for p in (stage / "config.toml", out / "config.toml") if p.is_file()), None)
        has_checkpoint = any((d / "checkpoint" / "state.json").is_file() for d in (stage, out))
        if saved is None or not has_checkpoint:
            raise CliError(f"--resume: no checkpoint in {out} or {stage}")
        config = _config("esasrec", None, sets, base=Config.load(saved))
    else:
        config = _config(preset_name or "esasrec", config_file, sets, base=None)
    if config is not None:
        hardware = {"accelerator": accelerator, "devices": devices, "num_nodes": num_nodes}
        config = config.replace(**{k: v for k, v in hardware.items() if v is not None})
    elif any(v is not None for v in (accelerator, devices, num_nodes)):
        raise CliError("--accelerator/--devices/--num-nodes: not used by --preset popular")

    fabric = None
    if config is not None:
        from seqrec.train import make_fabric

        fabric = make_fabric(config)
        # DDP: from here on one process per device runs this command. Under `fabric run` the
        # processes exist already and Fabric has set itself up (it refuses a second launch).
        if fabric.world_size > 1 and not getattr(fabric, "_launched", False):
            fabric.launch()
    rank0 = fabric is None or fabric.global_rank == 0

    dataset = _load_data(data, fmt, user_col, item_col, timestamp_col)
    parts = _make_split(dataset, split, test_days, test_fraction)
    if rank0:
        _prepare_stage(stage, out, resume, config)
    if fabric is not None:
        fabric.barrier()
    console = _console()
    if rank0 and not quiet:
        console.print(f"data: {dataset.n_users:,} users, {dataset.n_items:,} items, "
                      f"{len(dataset.sequences.items):,} interactions")
        if parts is not None:
            console.print(parts.report.summary())
    train_part = None if parts is None else parts.train
    validation = None if parts is None else parts.validation
    model: Any
    if config is None:
        model = PopularRecommender()
        model.fit(dataset, train_part)
    else:
        model = SequentialRecommender(config)
        with _epoch_lines(rank0 and not quiet):
            model.fit(dataset, train_part, validation, checkpoint_dir=stage, resume=resume,
                      progress=rank0 and not quiet, fabric=fabric)
    if not rank0:
        return
    metrics: dict[str, float] = {}
    if parts is not None:
        from seqrec import evaluate

        metrics = evaluate(model, parts.test, k=10).means
    model.histories = dataset.sequences  # serve from each user's whole history
    model.save(stage / "model", metrics=metrics)
    if (stage / "checkpoint").is_dir():
        os.replace(stage / "checkpoint", stage / "model" / "checkpoint")
    _publish(stage / "model", out)
    shutil.rmtree(stage, ignore_errors=True)
    if not quiet:
        if getattr(model, "fit_result", None) is not None:
            console.print(_history_table(model.fit_result.history))
        if metrics:
            console.print(_metric_list(metrics, title=f"test metrics ({split} split)"))
    typer.echo(f"model saved to {out}")


def _prepare_stage(stage: Path, out: Path, resume: bool, config: Any) -> None:
    """The staging directory of a training run: kept across crashes so --resume can continue."""
    if resume:  # the command checked that one of the two checkpoints exists
        if not (stage / "checkpoint" / "state.json").is_file():
            shutil.rmtree(stage, ignore_errors=True)
            stage.mkdir(parents=True)
            shutil.copytree(out / "checkpoint", stage / "checkpoint")
    else:
        if stage.exists():
            warnings.warn(f"removing {stage}, left by an interrupted run (use --resume to "
                          "continue one)", stacklevel=2)
            shutil.rmtree(stage)
        stage.mkdir(parents=True)
    if config is not None:
        _write_text(stage / "config.toml", config.to_toml())


# ------------------------------------------------------------------------------------------------
# evaluate
# ------------------------------------------------------------------------------------------------
@app.command("evaluate")
def evaluate_command(
    model_dir: ModelOpt,
    data: DataOpt = None,
    fmt: FormatOpt = None,
    split: SplitOpt = "loo",
    test_days: TestDaysOpt = None,
    test_fraction: TestFractionOpt = None,
    k: Annotated[list[int] | None, typer.Option(
        "--k", "-k", min=1, help="Cutoff (repeatable) [default: 10].")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
    user_col: UserColOpt = None,
    item_col: ItemColOpt = None,
    timestamp_col: TimeColOpt = None,
) -> None:
    """Evaluate a saved model on the test part of a split of --data.

    Every catalogue item is ranked (no sampled candidates) with each user's history items
    filtered. Items the model does not know are dropped from --data (counted in a warning).
    """
    from seqrec import evaluate

    split = _value(split)
    model = _load_model(model_dir)
    dataset = _align_to_model(_load_data(data, fmt, user_col, item_col, timestamp_col), model)
    parts = _make_split(dataset, split, test_days, test_fraction)
    # score with the model, but count popularity (ARP, novelty) on the split's train part
    view = SimpleNamespace(score_block=model.score_block, n_items=model.n_items,
                           histories=parts.train)
    cutoffs = sorted(set(k or [10]))
    report = evaluate(view, parts.test, k=cutoffs)
    if as_json:
        typer.echo(json.dumps({"model": str(model_dir), "split": split, "k": cutoffs,
                               "n_users": int(parts.test.targets.n_sequences),
                               "metrics": {n: float(v) for n, v in report.means.items()}},
                              indent=2))
        return
    _console().print(_metric_list(report.means, title=f"{model_dir} on {data or _value(fmt)} "
                                  f"({split}, {parts.test.targets.n_sequences:,} test users)"))


# ------------------------------------------------------------------------------------------------
# recommend, similar, info
# ------------------------------------------------------------------------------------------------
@app.command()
def recommend(
    model_dir: ModelOpt,
    users: Annotated[str | None, typer.Option(
        "--users", help="Known user ids: comma-separated, or a file with one id per line.")] = None,
    history: Annotated[list[str] | None, typer.Option(
        "--history", help="An anonymous history ITEM,ITEM,... oldest first (repeatable: one "
        "list each).")] = None,
    k: KOpt = 10,
    filter_viewed: Annotated[bool, typer.Option(
        "--filter-viewed/--no-filter-viewed", help="Leave out items in the history.")] = True,
    include_items: Annotated[str | None, typer.Option(
        "--include-items", help="Recommend only these items (file or comma list).")] = None,
    exclude_items: Annotated[str | None, typer.Option(
        "--exclude-items", help="Never recommend these items (file or comma list).")] = None,
    on_unknown_user: Annotated[UnknownUser, typer.Option(
        "--on-unknown-user",
        help="A user id the model does not know: fail, give the most popular items, or "
        "leave it out.")] = "error",
    out: Annotated[Path | None, typer.Option(
        "--out", "-o", help="CSV file to write [default: stdout].")] = None,
) -> None:
    """Top-k items for known users or for anonymous histories, as CSV.

    Columns: user_id (or history: the position of the --history option), item_id, score, rank.
    Each user gets exactly k rows unless fewer items are eligible.
    """
    if (users is None) == (not history):
        raise CliError("give exactly one of --users or --history")
    model = _load_model(model_dir)
    include = exclude = None
    if include_items is not None:
        include = _typed_ids(_id_list(include_items, "--include-items"), model.catalogue,
                             "--include-items", "item")
    if exclude_items is not None:
        exclude = _typed_ids(_id_list(exclude_items, "--exclude-items"), model.catalogue,
                             "--exclude-items", "item")
    if users is not None:
        ids = _typed_ids(_id_list(users, "--users"), model.user_index, "--users", "user")
        try:
            frame = model.recommend(ids, k=k, filter_viewed=filter_viewed, include_items=include,
                                    exclude_items=exclude,
                                    on_unknown_user=_value(on_unknown_user))
        except KeyError as error:
            raise CliError(f"--users: {_message(error)} (see --on-unknown-user)") from error
    else:
        histories = [_typed_ids(_id_list(h, "--history"), model.catalogue, "--history", "item")
                     for h in history or []]
        frame = model.recommend_for_histories(histories, k=k, filter_viewed=filter_viewed,
                                              include_items=include, exclude_items=exclude)
    _emit_frame(frame, out)


@app.command()
def similar(
    model_dir: ModelOpt,
    items: Annotated[str, typer.Option(
        "--items", help="Item ids: comma-separated, or a file with one id per line.")],
    k: KOpt = 10,
    out: Annotated[Path | None, typer.Option(
        "--out", "-o", help="CSV file to write [default: stdout].")] = None,
) -> None:
    """Item-to-item neighbours by cosine similarity of the item embeddings, as CSV.

    Columns: item_id, similar_item_id, score, rank.
    """
    model = _load_model(model_dir)
    if not hasattr(model, "similar_items"):
        raise CliError(f"--model {model_dir}: a popular baseline has no item embeddings")
    ids = _typed_ids(_id_list(items, "--items"), model.catalogue, "--items", "item")
    try:
        frame = model.similar_items(ids, k=k)
    except KeyError as error:
        raise CliError(f"--items: {_message(error)}") from error
    _emit_frame(frame, out)


@app.command()
def info(
    model_dir: ModelOpt,
    as_json: Annotated[bool, typer.Option("--json", help="Print model.json as is.")] = False,
) -> None:
    """What a model directory holds: kind, sizes, when it was trained, test metrics, config."""
    from seqrec.checkpoint import read_metadata

    if not model_dir.exists():
        raise CliError(f"--model {model_dir}: directory not found")
    try:
        meta = read_metadata(model_dir)
    except FileNotFoundError:
        raise CliError(f"--model {model_dir}: not a seqrec model directory (no model.json)") from None
    except json.JSONDecodeError as error:
        raise CliError(f"--model {model_dir}: model.json is not valid JSON ({error})") from None
    if as_json:
        typer.echo(json.dumps(meta, indent=2))
        return
    table = Table(title=str(model_dir), show_header=False)
    table.add_column("key")
    table.add_column("value")
    for key in ("kind", "seqrec_version", "trained_at", "n_users", "n_items", "best_epoch",
                "best_validation_ndcg@10"):
        if key in meta:
            value = meta[key]
            table.add_row(key, _fmt(value) if isinstance(value, float) else str(value))
    for name, value in (meta.get("metrics") or {}).items():
        table.add_row(f"test {name}", _fmt(value))
    for name, value in (meta.get("preset_config") or {}).items():
        table.add_row(f"config.{name}", str(value))
    _console().print(table)


@app.command()
def serve(
    model_dir: ModelOpt,
    host: Annotated[str, typer.Option(help="Interface to bind (default: this machine only).")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="TCP port.")] = 8000,
    popular_fallback: Annotated[bool, typer.Option(
        "--popular-fallback", help="Unknown users get popular items instead of a 404.")] = False,
) -> None:
    """Serve a model over HTTP (JSON; OpenAPI at /openapi.json; kill -HUP reloads the model)."""
    from seqrec.serve import serve as run_server

    if not (model_dir / "model.json").exists():
        raise CliError(f"--model {model_dir}: not a seqrec model directory (no model.json)")
    run_server(model_dir, host=host, port=port,
               unknown_user="popular" if popular_fallback else "error")


# ------------------------------------------------------------------------------------------------
# compare
# ------------------------------------------------------------------------------------------------
COMPARE_METRICS = ("ndcg", "recall", "coverage", "arp", "novelty")


@app.command()
def compare(
    data: DataOpt = None,
    fmt: FormatOpt = None,
    models: Annotated[str, typer.Option(
        "--models", help="Comma-separated presets: popular, esasrec, sasrec, sasrec_ss, gsasrec, "
        "bert4rec.")] = "esasrec,sasrec,popular",
    split: SplitOpt = "time",
    test_days: TestDaysOpt = None,
    test_fraction: TestFractionOpt = None,
    sets: SetOpt = None,
    k: KOpt = 10,
    plot: Annotated[Path | None, typer.Option(
        "--plot", help="Draw the NDCG / coverage front to this image (.png, .svg, .pdf).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
    accelerator: Annotated[Accelerator | None, typer.Option(
        "--accelerator",
        help="Device type for the transformer models.")] = None,
    user_col: UserColOpt = None,
    item_col: ItemColOpt = None,
    timestamp_col: TimeColOpt = None,
    quiet: QuietOpt = False,
) -> None:
    """Train several models on one split and compare accuracy with beyond-accuracy metrics.

    Each model is fit on the train part (early stopping on validation NDCG@10) and evaluated on
    the test part: NDCG, Recall, coverage, ARP and novelty at k. Models no other model beats on
    both NDCG@k and coverage@k are marked Pareto-optimal; --plot draws that front. --set applies
    to every transformer model (e.g. --set epochs=20).
    """
    from seqrec import evaluate
    from seqrec.recommender import PopularRecommender, SequentialRecommender
    from seqrec.report import pareto_front

    split, accelerator = _value(split), _value(accelerator)
    names = [name.strip() for name in models.split(",") if name.strip()]
    if not names or len(set(names)) != len(names):
        raise CliError(f"--models {models!r}: give distinct preset names, comma-separated")
    configs = {name: None if name == "popular" else _config(name, None, sets) for name in names}
    if accelerator is not None:
        configs = {n: c if c is None else c.replace(accelerator=accelerator)
                   for n, c in configs.items()}
    dataset = _load_data(data, fmt, user_col, item_col, timestamp_col)
    parts = _make_split(dataset, split, test_days, test_fraction)
    results: dict[str, dict[str, float]] = {}
    for name in names:
        if not quiet:
            typer.echo(f"training {name}", err=True)
        config = configs[name]
        model = PopularRecommender() if config is None else SequentialRecommender(config)
        start = time.perf_counter()
        with _epoch_lines(not quiet):
            model.fit(dataset, parts.train, parts.validation, progress=not quiet)
        report = evaluate(model, parts.test, k=k, metrics=COMPARE_METRICS)
        results[name] = {**report.means, "seconds": time.perf_counter() - start}
    columns = [f"{metric}@{k}" for metric in COMPARE_METRICS]
    points = [[results[n][f"ndcg@{k}"], results[n][f"coverage@{k}"]] for n in names]
    on_front = pareto_front(points)
    if plot is not None:
        from seqrec.report import plot_front

        plot_front(names, [p[1] for p in points], [p[0] for p in points], on_front, plot,
                   xlabel=f"coverage@{k}", ylabel=f"NDCG@{k}",
                   title=f"{data.name if data else _value(fmt)}, {split} split")
    if as_json:
        typer.echo(json.dumps({"split": split, "k": k, "models": [
            {"model": n, **{c: float(results[n][c]) for c in columns},
             "seconds": results[n]["seconds"], "pareto_optimal": bool(front)}
            for n, front in zip(names, on_front, strict=True)]}, indent=2))
    else:
        marks = {n: {"pareto": "yes" if front else ""} for n, front in zip(names, on_front,
                                                                           strict=True)}
        _console().print(_metrics_table(results, [*columns, "seconds"], extra=marks,
                                        title=f"test ({split}, {parts.test.targets.n_sequences:,}"
                                              " users)"))
    if plot is not None:
        typer.echo(f"front drawn to {plot}", err=True)


# ------------------------------------------------------------------------------------------------
# simulate (seqrec.value), entry points
# ------------------------------------------------------------------------------------------------
def _mount_simulate() -> None:
    try:
        from seqrec.value.cli import app as simulate_app
    except ImportError as error:  # the value package's optional parts are missing
        message = _one_line(str(error))

        @app.command("simulate", help="Value simulator (unavailable here).",
                     context_settings={"ignore_unknown_options": True, "allow_extra_args": True})
        def _simulate_unavailable() -> None:
            raise CliError(f"simulate: unavailable ({message})")

        return
    app.add_typer(simulate_app, name="simulate",
                  help="Simulate users to compare ranking policies and A/B designs.")


_mount_simulate()


def main() -> None:
    """Console-script entry point (``seqrec``) and ``python -m seqrec``."""
    typer.main.get_command(app).main(prog_name="seqrec")


if __name__ == "__main__":
    main()
