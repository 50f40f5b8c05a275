"""build_dataset: id mapping, stable chronological order, CSR layout."""

import numpy as np
import pandas as pd
import pytest

from seqrec.data import PAD, build_dataset, read_interactions


def _rows(dataset):
    return [dataset.sequences.row(u).tolist() for u in range(dataset.n_users)]


def test_hand_written_table_gives_expected_sequences():
    frame = pd.DataFrame(
        {
            "user_id": ["bob", "ann", "bob", "ann", "bob"],
            "item_id": [300, 0, 100, 300, 0],
            "timestamp": [5, 9, 1, 2, 3],
        }
    )
    dataset = build_dataset(frame)
    # sorted ids: users ann=0, bob=1; items 0->1, 100->2, 300->3 (raw 0 is an ordinary item)
    assert dataset.user_index.ids.tolist() == ["ann", "bob"]
    assert dataset.catalogue.ids.tolist() == [0, 100, 300]
    assert dataset.n_items == 3
    assert _rows(dataset) == [[3, 1], [2, 1, 3]]
    assert dataset.sequences.timestamps.tolist() == [2, 9, 1, 3, 5]
    assert dataset.sequences.users.tolist() == [0, 1]
    assert dataset.sequences.offsets.tolist() == [0, 2, 5]


def test_ties_keep_input_row_order_not_item_order():
    frame = pd.DataFrame(
        {"user_id": [1, 1, 1, 1], "item_id": [9, 3, 5, 1], "timestamp": [7, 7, 7, 0]}
    )
    dataset = build_dataset(frame)
    assert dataset.catalogue.to_external(dataset.sequences.row(0)).tolist() == [1, 9, 3, 5]


def test_n_items_counts_distinct_items_not_largest_id():
    frame = pd.DataFrame({"user_id": [1, 2], "item_id": [10**9, 5], "timestamp": [0, 0]})
    dataset = build_dataset(frame)
    assert dataset.n_items == 2
    assert dataset.sequences.items.min() > PAD


def test_item_info_is_reindexed_to_catalogue_order():
    frame = pd.DataFrame({"user_id": [1, 1], "item_id": [20, 10], "timestamp": [0, 1]})
    info = pd.DataFrame({"title": ["ten", "twenty", "thirty"]}, index=[10, 20, 30])
    dataset = build_dataset(frame, info)
    assert dataset.item_info["title"].tolist() == ["ten", "twenty"]


def test_matches_a_naive_per_user_sort_on_random_data():
    rng = np.random.default_rng(0)
    n = 2000
    frame = pd.DataFrame(
        {
            "user_id": rng.integers(0, 50, n),
            "item_id": rng.integers(0, 300, n),
            "timestamp": rng.integers(0, 20, n),  # many ties
        }
    )
    dataset = build_dataset(read_interactions(frame))
    for u, user in enumerate(dataset.user_index.ids):
        part = frame[frame["user_id"] == user]
        expected = part.sort_values("timestamp", kind="stable")["item_id"].tolist()
        assert dataset.catalogue.to_external(dataset.sequences.row(u)).tolist() == expected


def test_missing_column_raises():
    with pytest.raises(ValueError, match="'timestamp' missing"):
        build_dataset(pd.DataFrame({"user_id": [1], "item_id": [1]}))
