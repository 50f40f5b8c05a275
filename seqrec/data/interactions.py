"""Interaction logs: read from files or data frames, validate, filter.

An *interactions* table is a pandas DataFrame with the columns :data:`USER_ID`, :data:`ITEM_ID`,
:data:`TIMESTAMP` (int64 seconds since the Unix epoch, or positions for logs without time) and
optionally :data:`WEIGHT` (float64). Ids may be integers or strings; a raw item id 0 is an ordinary
item (internal index 0 is PAD, but raw ids are never used as indices).
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd

logger = logging.getLogger(__name__)

USER_ID = "user_id"
ITEM_ID = "item_id"
TIMESTAMP = "timestamp"
WEIGHT = "weight"

TableFormat = Literal["csv", "tsv", "parquet"]
_SUFFIX_FORMATS: dict[str, TableFormat] = {
    ".csv": "csv",
    ".tsv": "tsv",
    ".tab": "tsv",
    ".parquet": "parquet",
    ".pq": "parquet",
}


def read_interactions(
    source: pd.DataFrame | object | str | Path,
    *,
    format: TableFormat | None = None,
    user_col: str = USER_ID,
    item_col: str = ITEM_ID,
    timestamp_col: str | None = TIMESTAMP,
    weight_col: str | None = None,
    sep: str | None = None,
) -> pd.DataFrame:
    """Read and validate an interaction log.

    Args:
        source: a pandas DataFrame, a polars DataFrame, or the path of a CSV / TSV / Parquet file.
        format: ``"csv"``, ``"tsv"`` or ``"parquet"``; inferred from the file suffix when None
            (``.csv``, ``.tsv``/``.tab``, ``.parquet``/``.pq``; ``.gz`` etc. after them is allowed).
        user_col: column holding user ids (int or str).
        item_col: column holding item ids (int or str).
        timestamp_col: column holding times: integer seconds, float seconds (floored),
            datetimes or datetime strings (naive ones are read as UTC). None: the row position
            (0, 1, ...) in the input is the timestamp.
        weight_col: optional column of weights (e.g. ratings), returned as float64 :data:`WEIGHT`.
        sep: field separator for text files; default ``","`` for CSV and ``"\\t"`` for TSV.

    Returns:
        A new DataFrame with a RangeIndex and columns ``user_id``, ``item_id``, ``timestamp``
        (int64 seconds) and, when ``weight_col`` is given, ``weight`` (float64), in input row order.

    Raises:
        FileNotFoundError: ``source`` is a path that does not exist (the message holds the path).
        ValueError: unknown format; the table is empty; a column is missing (the message lists the
            available columns); ids, timestamps or weights contain nulls/NaN, or timestamps cannot
            be parsed (the message names the column, the number of bad rows and the first bad row,
            counted from 0 over the data rows of the input).
    """
    frame = _to_pandas(source, format=format, sep=sep)
    if len(frame) == 0:
        raise ValueError(f"interactions are empty (no rows in {_describe(source)})")
    wanted = [user_col, item_col] + [c for c in (timestamp_col, weight_col) if c is not None]
    for column in wanted:
        if column not in frame.columns:
            raise ValueError(
                f"column {column!r} not found in {_describe(source)}; "
                f"available columns: {list(map(str, frame.columns))}"
            )
    out = {USER_ID: _ids(frame[user_col], user_col), ITEM_ID: _ids(frame[item_col], item_col)}
    if timestamp_col is None:
        out[TIMESTAMP] = np.arange(len(frame), dtype=np.int64)
    else:
        out[TIMESTAMP] = to_seconds(frame[timestamp_col], timestamp_col)
    if weight_col is not None:
        weight = pd.to_numeric(frame[weight_col], errors="coerce").to_numpy(
            np.float64, na_value=np.nan
        )
        _raise_on_bad(np.isnan(weight), weight_col, "null or non-numeric values")
        out[WEIGHT] = weight
    return pd.DataFrame(out)


def to_seconds(values: pd.Series, name: str = TIMESTAMP) -> np.ndarray:
    """Convert a column of times to int64 seconds since the Unix epoch.

    Args:
        values: integers (seconds), floats (seconds, floored), datetimes (tz-aware ones are
            converted to UTC) or strings (parsed with :func:`pandas.to_datetime`, naive = UTC;
            strings holding plain integers are read as seconds).
        name: column name for error messages.

    Returns:
        ``(n,)`` int64 seconds.

    Raises:
        ValueError: nulls/NaN/inf or unparsable values; the message names the column, the count
            and the first bad row.
    """
    values = values.reset_index(drop=True)
    _raise_on_bad(values.isna().to_numpy(), name, "null values")
    if pd.api.types.is_bool_dtype(values.dtype):
        raise ValueError(f"column {name!r} holds booleans, not times")
    if pd.api.types.is_integer_dtype(values.dtype):
        return values.to_numpy(np.int64)
    if pd.api.types.is_float_dtype(values.dtype):
        floats = values.to_numpy(np.float64)
        _raise_on_bad(~np.isfinite(floats), name, "infinite values")
        return np.floor(floats).astype(np.int64)
    if isinstance(values.dtype, pd.DatetimeTZDtype) or pd.api.types.is_datetime64_dtype(
        values.dtype
    ):
        return _datetimes_to_seconds(values)
    # strings / objects: plain numbers first (CSV readers keep a numeric column as text when one
    # value is not a number), then dates
    numbers = pd.to_numeric(values, errors="coerce")
    is_number = numbers.notna().to_numpy()
    if is_number.mean() > 0.5:  # a column of seconds with a few bad values: name them
        _raise_on_bad(~is_number, name, "non-numeric timestamps", values)
        floats = numbers.to_numpy(np.float64)
        _raise_on_bad(~np.isfinite(floats), name, "infinite values", values)
        return np.floor(floats).astype(np.int64)
    text = values.astype(str)
    with warnings.catch_warnings():  # pandas' "could not infer format" chatter
        warnings.simplefilter("ignore", UserWarning)
        parsed = pd.to_datetime(text, errors="coerce", utc=True)
        if parsed.isna().any():
            parsed = pd.to_datetime(text, errors="coerce", utc=True, format="mixed")
    _raise_on_bad(parsed.isna().to_numpy(), name, "unparsable timestamps", values)
    return _datetimes_to_seconds(parsed)


@dataclass(frozen=True)
class FilterReport:
    """What :func:`filter_interactions` removed.

    Attributes:
        rows_before, users_before, items_before: sizes of the input table.
        rows_removed, users_removed, items_removed: what disappeared (rows of rare users or items,
            and the users/items left without any row).
        rounds: number of filtering passes made.
    """

    rows_before: int
    users_before: int
    items_before: int
    rows_removed: int
    users_removed: int
    items_removed: int
    rounds: int

    def __str__(self) -> str:
        return (
            f"filter_interactions: removed {self.rows_removed:,} of {self.rows_before:,} rows, "
            f"{self.users_removed:,} of {self.users_before:,} users, "
            f"{self.items_removed:,} of {self.items_before:,} items in {self.rounds} round(s)"
        )


def filter_interactions(
    interactions: pd.DataFrame,
    *,
    min_user_interactions: int = 1,
    min_item_interactions: int = 1,
    until_stable: bool = False,
) -> tuple[pd.DataFrame, FilterReport]:
    """Drop rows of rare items, then of rare users, and report what was removed.

    Args:
        interactions: table with ``user_id`` and ``item_id`` columns (from :func:`read_interactions`).
        min_user_interactions: keep users with at least this many rows (counted after the item pass).
        min_item_interactions: keep items with at least this many rows.
        until_stable: repeat both passes until nothing changes (a k-core); otherwise one pass each.

    Returns:
        ``(filtered, report)``: the remaining rows in input order (index reset) and a
        :class:`FilterReport`.
    """
    frame = interactions
    rounds = 0
    while True:
        rounds += 1
        n_before = len(frame)
        item_counts = frame[ITEM_ID].map(frame[ITEM_ID].value_counts())
        frame = frame[(item_counts >= min_item_interactions).to_numpy()]
        user_counts = frame[USER_ID].map(frame[USER_ID].value_counts())
        frame = frame[(user_counts >= min_user_interactions).to_numpy()]
        if not until_stable or len(frame) == n_before:
            break
    frame = frame.reset_index(drop=True)
    report = FilterReport(
        rows_before=len(interactions),
        users_before=interactions[USER_ID].nunique(),
        items_before=interactions[ITEM_ID].nunique(),
        rows_removed=len(interactions) - len(frame),
        users_removed=interactions[USER_ID].nunique() - frame[USER_ID].nunique(),
        items_removed=interactions[ITEM_ID].nunique() - frame[ITEM_ID].nunique(),
        rounds=rounds,
    )
    logger.info("%s", report)
    return frame, report


def _to_pandas(source: object, *, format: TableFormat | None, sep: str | None) -> pd.DataFrame:
    if isinstance(source, pd.DataFrame):
        return source.reset_index(drop=True)
    if type(source).__module__.split(".")[0] == "polars":
        return source.to_pandas()  # type: ignore[attr-defined]
    if not isinstance(source, (str, Path)):
        raise TypeError(
            f"source must be a pandas/polars DataFrame or a path, got {type(source).__name__}"
        )
    path = Path(source)
    if not path.exists():
        raise FileNotFoundError(f"interactions file not found: {path}")
    format = format or _infer_format(path)
    if format == "parquet":
        return pd.read_parquet(path)
    if format in ("csv", "tsv"):
        # only an empty field is missing: "NA", "None" or "null" are ids like any other text
        return pd.read_csv(path, sep=sep or ("," if format == "csv" else "\t"),
                           keep_default_na=False, na_values=[""])
    raise ValueError(f"unknown format {format!r}; allowed: csv, tsv, parquet")


def _infer_format(path: Path) -> TableFormat:
    for suffix in path.suffixes[::-1]:
        if suffix.lower() in _SUFFIX_FORMATS:
            return _SUFFIX_FORMATS[suffix.lower()]
    raise ValueError(
        f"cannot infer the format of {path} from its suffix; pass format= (csv, tsv, parquet)"
    )


def _ids(values: pd.Series, name: str) -> pd.Series | np.ndarray:
    """Ids as int64 when integral (also floats without fraction), else as Python objects/strings."""
    values = values.reset_index(drop=True)
    _raise_on_bad(values.isna().to_numpy(), name, "null values")
    if pd.api.types.is_bool_dtype(values.dtype):
        return values.astype(np.int64).to_numpy()
    if pd.api.types.is_integer_dtype(values.dtype):
        return values.to_numpy(np.int64)
    if pd.api.types.is_float_dtype(values.dtype):
        floats = values.to_numpy(np.float64)
        _raise_on_bad(floats != np.floor(floats), name, "non-integer float ids")
        return floats.astype(np.int64)
    return values.to_numpy(object)


def _raise_on_bad(bad: np.ndarray, name: str, what: str, values: pd.Series | None = None) -> None:
    if bad.any():
        first = int(np.argmax(bad))
        shown = f" ({values.iloc[first]!r})" if values is not None else ""
        count = int(bad.sum())
        raise ValueError(f"column {name!r} has {count:,} row{'' if count == 1 else 's'} with "
                         f"{what}; first bad row: {first}{shown}")


def _datetimes_to_seconds(values: pd.Series) -> np.ndarray:
    epoch = (
        pd.Timestamp(0, tz="UTC")
        if isinstance(values.dtype, pd.DatetimeTZDtype)
        else pd.Timestamp(0)
    )
    return ((values - epoch) // pd.Timedelta(seconds=1)).to_numpy(np.int64)


def _describe(source: object) -> str:
    return str(source) if isinstance(source, (str, Path)) else f"the {type(source).__name__}"
