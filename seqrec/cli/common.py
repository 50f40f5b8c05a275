"""What the commands share: options, reading data, splits, configs, models, ids and outputs.

Every check here runs before any training or scoring, so a bad option costs nothing.
"""

from __future__ import annotations

import os
import sys
import warnings
from enum import Enum
from pathlib import Path
from typing import Annotated, Any

import typer

from seqrec.cli.app import CliError, message

FORMATS = ("csv", "tsv", "parquet", "s3rec", "sasrec", "recbole", "movielens")
TABLE_FORMATS = ("csv", "tsv", "parquet")
PLOT_FORMATS = (".png", ".svg", ".pdf")
SMALL_TEST = 100
"""Below this many test users a warning says the metrics mean little."""


def choices(name: str, values: tuple[str, ...]) -> type[Enum]:
    """A str Enum for typer's choice options (shown in --help, checked on parsing)."""
    return Enum(name, {value: value for value in values}, type=str)  # type: ignore[return-value]


def value(choice: Any) -> Any:
    return choice.value if isinstance(choice, Enum) else choice


Format = choices("Format", FORMATS)
HeldOutSplit = choices("HeldOutSplit", ("loo", "time"))
TrainSplit = choices("TrainSplit", ("loo", "time", "none"))
Accelerator = choices("Accelerator", ("cpu", "cuda", "auto"))
UnknownUser = choices("UnknownUser", ("error", "popular", "skip"))
Retrieval = choices("Retrieval", ("exact", "ann", "auto"))

DataOpt = Annotated[Path | None, typer.Option(
    "--data", help="Interaction file (RecBole: the .inter file or its folder). Not needed for "
    "--format movielens (the embedded MovieLens ratings).")]
FormatOpt = Annotated[Format | None, typer.Option(
    "--format",
    help="Data format (see docs/data.md) [default: from the --data suffix: .csv, .tsv, .parquet, "
    ".inter; a directory with a .inter file is recbole].")]
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
    "last --test-days / --test-fraction of the time range is the test period. Targets the "
    "user has already seen are dropped (counted), since seen items are never recommended.")]
TestDaysOpt = Annotated[float | None, typer.Option(
    "--test-days", help="--split time: test window of this many days before the last event.")]
RepeatOpt = Annotated[bool, typer.Option(
    "--repeat", help="Repeat consumption counts (re-buys): keep held-out items the user already "
    "has, and do not filter seen items when evaluating (or recommending, for train's saved "
    "model).")]
TargetsOpt = Annotated[choices("Targets", ("all", "first")) | None, typer.Option(
    "--targets", help="--split time: every test-window event is a target (all), or only each "
    "user's first event after the cutoff (first: the eSASRec paper's protocol) [default: all].")]
TestFractionOpt = Annotated[float | None, typer.Option(
    "--test-fraction", help="--split time: test window as a share of the time range [default: 0.1].")]
SetOpt = Annotated[list[str] | None, typer.Option(
    "--set", metavar="KEY=VALUE", help="Config override (repeatable), e.g. --set dim=128 --set "
    "lr=3e-4; keys and values: seqrec.config.Config (dropout=depth and item_dropout=width: the "
    "esasrec preset's rates, growing with depth and width).")]
QuietOpt = Annotated[bool, typer.Option(
    "--quiet", "-q", help="Print only the results: no progress, epoch lines or reports.")]
ProgressOpt = Annotated[bool | None, typer.Option(
    "--progress/--no-progress", help="Progress bars on stderr [default: only when stderr is a "
    "terminal]. Epoch lines are printed either way (one plain line per epoch), unless --quiet.")]
ThreadsOpt = Annotated[int | None, typer.Option(
    "--threads", min=1, help="Torch threads for this process [default: one per core]; not saved "
    "with the model.")]
ModelOpt = Annotated[Path, typer.Option("--model", "-m", help="Model directory (from train).")]
KOpt = Annotated[int, typer.Option("--k", "-k", min=1, help="List length.")]
ForceOpt = Annotated[bool, typer.Option("--force", help="Replace an existing --out.")]


def console() -> Any:
    """Rich console on stdout; when stdout is not a terminal, wide enough not to cut tables."""
    from rich.console import Console

    out = Console(highlight=False)
    if not out.is_terminal:
        out.width = 200
    return out


def apply_threads(threads: int | None) -> None:
    if threads is not None:
        import torch

        torch.set_num_threads(threads)


def show_bars(progress: bool | None, quiet: bool) -> bool:
    """Progress bars: as asked, else only on a terminal; never with --quiet."""
    if quiet:
        return False
    return sys.stderr.isatty() if progress is None else progress


# ---- data ----------------------------------------------------------------------------------------
def check_data_options(data: Path | None, fmt: Any, user_col: str | None = None,
                       item_col: str | None = None, timestamp_col: str | None = None) -> str:
    """The format to read ``data`` as, after checking the options fit together."""
    fmt = value(fmt)
    if fmt is None:
        suffixes = {".csv": "csv", ".tsv": "tsv", ".parquet": "parquet", ".pq": "parquet",
                    ".inter": "recbole"}
        fmt = suffixes.get(data.suffix.lower()) if data is not None else None
        if data is not None and data.is_dir() and any(data.glob("*.inter")):
            fmt = "recbole"  # a RecBole atomic-file directory
        if fmt is None:
            raise CliError(f"--format: missing (one of {', '.join(FORMATS)})")
    columns = {"--user-col": user_col, "--item-col": item_col, "--timestamp-col": timestamp_col}
    given = [name for name, column in columns.items() if column is not None]
    if given and fmt not in TABLE_FORMATS:
        raise CliError(f"{', '.join(given)}: only for --format csv, tsv or parquet (not {fmt})")
    if fmt == "movielens":
        if data is not None:
            raise CliError("--data: not used with --format movielens (the ratings are embedded)")
    elif data is None:
        raise CliError(f"--data: missing (needed for --format {fmt})")
    elif not data.exists():
        raise CliError(f"--data {data}: file not found")
    return fmt


def load_data(data: Path | None, fmt: Any, user_col: str | None = None,
              item_col: str | None = None, timestamp_col: str | None = None) -> Any:
    """The :class:`~seqrec.data.Dataset` named by the command line, or a one-line CliError."""
    from seqrec.data import load_dataset, load_interactions

    fmt = check_data_options(data, fmt, user_col, item_col, timestamp_col)
    if fmt == "movielens":
        return load_dataset(None, "movielens")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # pandas' format-inference chatter
            if fmt in TABLE_FORMATS:
                time_col = timestamp_col or "timestamp"
                return load_interactions(data, format=fmt, user_col=user_col or "user_id",
                                         item_col=item_col or "item_id",
                                         timestamp_col=None if time_col.lower() == "none"
                                         else time_col)
            return load_dataset(data, fmt)
    except Exception as error:  # parsers raise their own types (pyarrow, pandas)
        raise CliError(f"--data {data}: cannot read as {fmt}: {message(error)}") from error


def check_split_options(split: str, test_days: float | None, test_fraction: float | None) -> None:
    if split != "time" and (test_days is not None or test_fraction is not None):
        raise CliError("--test-days / --test-fraction: only with --split time")
    if test_days is not None and test_fraction is not None:
        raise CliError("--test-days and --test-fraction: give one of them")
    if test_days is not None and not test_days > 0:
        raise CliError(f"--test-days {test_days:g}: expected a number of days > 0")
    if test_fraction is not None and not 0 < test_fraction < 1:
        raise CliError(f"--test-fraction {test_fraction:g}: expected a fraction between 0 and 1")


def make_split(dataset: Any, split: Any, test_days: float | None, test_fraction: float | None,
               validation: bool = True, repeat: bool = False, targets: str = "all") -> Any:
    """The split the command line names, or None for ``--split none``; warns when the test part
    is too small to mean much. Already-seen targets are dropped and counted, unless ``repeat``
    (re-consumption counts: they are kept, and evaluation does not filter seen items)."""
    from seqrec.data import leave_one_out, time_split

    split = value(split)
    check_split_options(split, test_days, test_fraction)
    if split == "loo":
        result = leave_one_out(dataset, filter_already_seen=not repeat)
    elif split == "time":
        if test_days is None and test_fraction is None:
            test_fraction = 0.1
        result = time_split(dataset, last_days=test_days, last_fraction=test_fraction,
                            validation=validation, filter_already_seen=not repeat,
                            targets=value(targets))
    else:
        return None
    n_test = result.test.targets.n_sequences
    if n_test == 0:
        raise CliError(f"--split {split}: no user has a test target ({result.report.test})")
    if n_test < SMALL_TEST:
        warnings.warn(f"--split {split}: only {n_test} test user{'s' if n_test != 1 else ''}; "
                      f"metrics from fewer than {SMALL_TEST} users are mostly noise", stacklevel=2)
    return result


def echo_data_report(dataset: Any, split: Any) -> None:
    """The loaded log's size and, unless ``split`` is None, its split report, on stderr."""
    typer.echo(f"data: {dataset.n_users:,} users, {dataset.n_items:,} items, "
               f"{len(dataset.sequences.items):,} interactions", err=True)
    if split is not None:
        typer.echo(split.report.summary(), err=True)


# ---- configs and models --------------------------------------------------------------------------
def make_config(preset_name: str, config_file: Path | None, sets: list[str] | None,
                base: Any = None, option: str = "--preset", warn: bool = True) -> Any:
    """Preset (or ``base``), then the TOML file, then ``--set`` overrides; ``option`` is the
    command-line option that named the preset (for the error an unknown name gets). With
    ``warn``, a ``--set`` that changes nothing under the result gets a warning
    (:func:`warn_inert`)."""
    from seqrec.config import PRESETS, Config, parse_set, preset

    if base is None:
        if preset_name not in PRESETS:
            raise CliError(f"{option} {preset_name!r}: unknown; expected popular or one of "
                           f"{', '.join(PRESETS)}")
        base = preset(preset_name)
    if config_file is not None:
        if not config_file.is_file():
            raise CliError(f"--config {config_file}: file not found")
        try:
            base = Config.load(config_file, base=base)
        except ValueError as error:
            raise CliError(f"--config {config_file}: {message(error)}") from error
    try:
        config = base.replace(**parse_set(list(sets or [])))
    except ValueError as error:
        text = message(error)
        raise CliError(text if text.startswith("--set") else f"--set: {text}") from error
    if warn:
        warn_inert([config], sets)
    return config


def warn_inert(configs: list[Any], sets: list[str] | None) -> None:
    """A warning for each ``--set`` key that changes nothing under every one of ``configs``
    (``temperature`` with dot similarity, ...: :func:`seqrec.config.inert_settings`)."""
    from seqrec.config import inert_settings, parse_set

    values = parse_set(list(sets or []))
    per_config = [inert_settings(config, values) for config in configs]
    for text in per_config[0] if per_config else []:
        if all(text in texts for texts in per_config):
            warnings.warn(f"--set {text}; applied anyway", stacklevel=2)


def load_model(path: Path) -> Any:
    """A validated model directory, or a one-line CliError naming what is wrong."""
    from seqrec.model_dir import load_model as load

    try:
        return load(path)
    except Exception as error:
        raise CliError(f"--model {path}: cannot load the model: {message(error)}") from error


def id_list(text: str, option: str) -> list[str]:
    """Ids from a file (one per line; blank and # lines skipped) or a comma-separated list, as
    strings: the model reads them under its id rule (see docs/cli.md)."""
    path = Path(text)
    looks_like_file = os.sep in text or path.suffix.lower() in (".txt", ".csv", ".tsv", ".ids")
    if path.is_file():
        lines = [line.strip() for line in path.read_text().splitlines()]
        ids = [line for line in lines if line and not line.startswith("#")]
    elif looks_like_file:
        raise CliError(f"{option} {text}: file not found")
    else:
        ids = [part.strip() for part in text.split(",") if part.strip()]
    if not ids and option != "--include-items":
        raise CliError(f"{option} {text!r}: no ids")
    return ids


# ---- outputs -------------------------------------------------------------------------------------
def check_out_file(out: Path | None, force: bool, option: str = "--out") -> None:
    """Refuse an output file that would replace something not asked to be replaced, or write
    into a model directory; checked before any work."""
    if out is None:
        return
    if out.is_dir():
        raise CliError(f"{option} {out}: is a directory; give a file name")
    if (out.parent / "model.json").is_file() or (out.parent / "manifest.json").is_file():
        raise CliError(f"{option} {out}: inside a model directory; write it elsewhere")
    if out.exists() and not force:
        raise CliError(f"{option} {out}: exists; pass --force to replace it")
    parent = next((p for p in (out.parent, *out.parent.parents) if p.exists()), Path("."))
    if not os.access(parent, os.W_OK):
        raise CliError(f"{option} {out}: {parent} is not writable")


def check_out_dir(out: Path, force: bool, hint: str = "") -> None:
    """Refuse a non-empty output directory unless ``--force``."""
    if out.exists() and not out.is_dir():
        raise CliError(f"--out {out}: exists and is not a directory")
    if out.is_dir() and any(out.iterdir()) and not force:
        raise CliError(f"--out {out}: directory exists and is not empty; pass --force to replace "
                       f"it{hint}")
    parent = next((p for p in (out.parent, *out.parent.parents) if p.exists()), Path("."))
    if not os.access(parent, os.W_OK):
        raise CliError(f"--out {out}: {parent} is not writable")


def emit_frame(frame: Any, out: Path | None, what: str = "rows") -> None:
    """A DataFrame as CSV on stdout or, atomically, into ``out``."""
    from seqrec.files import write_atomic

    text = frame.to_csv(index=False, float_format="%.6g")
    if out is None:
        typer.echo(text, nl=False)
    else:
        write_atomic(out, text)
        typer.echo(f"wrote {plural(len(frame), 'row')} to {out}", err=True)


def plural(count: int, noun: str) -> str:
    """``1 row``, ``2 rows``, ``1,000 rows``."""
    return f"{count:,} {noun}{'' if count == 1 else 's'}"
