"""read_interactions / filter_interactions: formats, conversions, validation messages."""

from pathlib import Path

import numpy as np
import pandas as pd
import polars as pl
import pytest

from seqrec.data import filter_interactions, read_interactions


def _table() -> pd.DataFrame:
    return pd.DataFrame(
        {"user": ["a", "a", "b"], "item": [0, 7, 0], "ts": [30, 10, 20], "rating": [1, 2.5, 3]}
    )


def test_pandas_input_is_renamed_and_typed():
    out = read_interactions(
        _table(), user_col="user", item_col="item", timestamp_col="ts", weight_col="rating"
    )
    assert list(out.columns) == ["user_id", "item_id", "timestamp", "weight"]
    assert out["timestamp"].dtype == np.int64
    assert out["item_id"].tolist() == [0, 7, 0]  # raw id 0 is an ordinary item
    assert out["weight"].tolist() == [1.0, 2.5, 3.0]


def test_polars_input_gives_the_same_table():
    expected = read_interactions(_table(), user_col="user", item_col="item", timestamp_col="ts")
    out = read_interactions(
        pl.from_pandas(_table()), user_col="user", item_col="item", timestamp_col="ts"
    )
    pd.testing.assert_frame_equal(out, expected, check_dtype=False)


@pytest.mark.parametrize("suffix", [".csv", ".tsv", ".parquet"])
def test_files_by_suffix(tmp_path: Path, suffix: str):
    path = tmp_path / f"log{suffix}"
    frame = _table()
    if suffix == ".parquet":
        frame.to_parquet(path)
    else:
        frame.to_csv(path, sep="," if suffix == ".csv" else "\t", index=False)
    out = read_interactions(path, user_col="user", item_col="item", timestamp_col="ts")
    assert out["timestamp"].tolist() == [30, 10, 20]
    assert out["user_id"].tolist() == ["a", "a", "b"]


def test_datetime_strings_and_datetimes_become_epoch_seconds():
    frame = pd.DataFrame(
        {
            "user_id": [1, 1],
            "item_id": [1, 2],
            "timestamp": ["1970-01-01 00:00:10", "1970-01-02"],
        }
    )
    assert read_interactions(frame)["timestamp"].tolist() == [10, 86_400]
    frame["timestamp"] = pd.to_datetime(frame["timestamp"], format="mixed").dt.tz_localize(
        "Europe/Berlin"
    )
    assert read_interactions(frame)["timestamp"].tolist() == [10 - 3600, 86_400 - 3600]


def test_float_seconds_are_floored():
    frame = pd.DataFrame({"user_id": [1], "item_id": [1], "timestamp": [881250949.7]})
    assert read_interactions(frame)["timestamp"].tolist() == [881250949]


def test_no_timestamp_column_uses_row_position():
    frame = pd.DataFrame({"user_id": [1, 2, 1], "item_id": [5, 6, 7]})
    assert read_interactions(frame, timestamp_col=None)["timestamp"].tolist() == [0, 1, 2]


def test_missing_column_lists_available_columns():
    with pytest.raises(ValueError, match=r"'timestamp' not found.*\['user_id', 'item_id'\]"):
        read_interactions(pd.DataFrame({"user_id": [1], "item_id": [2]}))


def test_null_ids_name_column_count_and_first_row():
    frame = pd.DataFrame({"user_id": [1, None, 3, None], "item_id": [1] * 4, "timestamp": [0] * 4})
    with pytest.raises(
        ValueError, match=r"'user_id' has 2 rows with null values; first bad row: 1"
    ):
        read_interactions(frame)


def test_unparsable_timestamp_is_reported():
    frame = pd.DataFrame(
        {
            "user_id": [1, 1, 1],
            "item_id": [1, 2, 3],
            "timestamp": ["2020-01-01", "2020-01-02", "soon"],
        }
    )
    with pytest.raises(
        ValueError, match=r"'timestamp' has 1 row with unparsable.*first bad row: 2"
    ):
        read_interactions(frame)


def test_empty_table_and_missing_file():
    with pytest.raises(ValueError, match="empty"):
        read_interactions(pd.DataFrame({"user_id": [], "item_id": [], "timestamp": []}))
    with pytest.raises(FileNotFoundError, match="nowhere.csv"):
        read_interactions("/nowhere.csv")


def test_filter_reports_what_it_removed():
    frame = pd.DataFrame(
        {"user_id": [1, 1, 1, 2, 3, 3], "item_id": [1, 2, 3, 1, 1, 2], "timestamp": range(6)}
    )
    kept, report = filter_interactions(frame, min_user_interactions=2, min_item_interactions=2)
    # item 3 (1 row) goes first, then user 2 (1 row left)
    assert kept["user_id"].tolist() == [1, 1, 3, 3]
    assert (report.rows_removed, report.users_removed, report.items_removed) == (2, 1, 1)
    assert "removed 2 of 6 rows" in str(report)


def test_integer_timestamps_with_one_bad_value_name_that_row_without_pandas_warnings(tmp_path):
    import warnings

    path = tmp_path / "log.csv"
    path.write_text("user_id,item_id,timestamp\n1,1,100\n1,2,101\n2,1,10x\n2,3,103\n")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(ValueError, match=r"1 row with non-numeric timestamps; first bad row: 2 \('10x'\)"):
            read_interactions(path)


def test_text_ids_that_look_like_missing_values_stay_ids(tmp_path):
    path = tmp_path / "log.csv"
    path.write_text("user_id,item_id,timestamp\nNA,None,1\nnull,NaN,2\nNA,x,3\n")
    frame = read_interactions(path)
    assert frame.user_id.tolist() == ["NA", "null", "NA"]
    assert frame.item_id.tolist() == ["None", "NaN", "x"]
    empty = tmp_path / "empty.csv"
    empty.write_text("user_id,item_id,timestamp\n,1,1\n")
    with pytest.raises(ValueError, match="'user_id' has 1 row with null values"):
        read_interactions(empty)
