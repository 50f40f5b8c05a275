"""Loaders: tiny files in every text format, the embedded MovieLens, and the shared real files."""

from pathlib import Path

import pandas as pd
import pytest

from seqrec.data import (
    load_dataset,
    load_interactions,
    load_movielens,
    load_recbole,
    load_s3rec,
    load_sasrec,
)

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"


def _rows(dataset):
    external = dataset.catalogue.to_external
    return {
        dataset.user_index.ids[u]: external(dataset.sequences.row(u)).tolist()
        for u in range(dataset.n_users)
    }


def test_s3rec_lines_are_user_then_chronological_items(tmp_path: Path):
    path = tmp_path / "x.txt"
    path.write_text("1 5 6 7\n2 6 5\n\n3 9\n")
    dataset = load_s3rec(path)
    assert _rows(dataset) == {1: [5, 6, 7], 2: [6, 5], 3: [9]}
    assert dataset.sequences.timestamps.tolist() == [0, 1, 2, 0, 1, 0]


def test_s3rec_duplicate_user_line_raises(tmp_path: Path):
    path = tmp_path / "x.txt"
    path.write_text("1 5\n1 6\n")
    with pytest.raises(ValueError, match="more than one line"):
        load_s3rec(path)


def test_sasrec_pairs_use_line_number_as_time(tmp_path: Path):
    path = tmp_path / "x.txt"
    path.write_text("1 5\n2 6\n1 7\n1 5\n")
    dataset = load_sasrec(path)
    assert _rows(dataset) == {1: [5, 7, 5], 2: [6]}
    assert dataset.sequences.timestamps.tolist() == [0, 2, 3, 1]


def test_recbole_inter_and_item_files(tmp_path: Path):
    (tmp_path / "toy.inter").write_text(
        "user_id:token\titem_id:token\trating:float\ttimestamp:float\n"
        "u1\t10\t3\t200\nu1\t20\t4\t100.5\nu2\t10\t5\t50\n"
    )
    (tmp_path / "toy.item").write_text(
        "item_id:token\tmovie_title:token_seq\trelease_year:token\tclass:token_seq\n"
        '10\tA "quoted" film\t1995\tDrama\n20\tB\t1996\tComedy Drama\n'
    )
    dataset = load_recbole(tmp_path)
    assert _rows(dataset) == {"u1": [20, 10], "u2": [10]}
    assert dataset.sequences.timestamps.tolist() == [100, 200, 50]
    assert dataset.item_info["title"].tolist() == ['A "quoted" film', "B"]
    assert dataset.item_info["genres"].tolist() == ["Drama", "Comedy Drama"]


def test_csv_through_load_dataset(tmp_path: Path):
    path = tmp_path / "log.csv"
    pd.DataFrame({"user_id": [1, 1], "item_id": ["x", "y"], "timestamp": [2, 1]}).to_csv(
        path, index=False
    )
    assert _rows(load_dataset(path, "csv")) == {1: ["y", "x"]}
    assert _rows(load_interactions(path)) == {1: ["y", "x"]}


def test_unknown_format_lists_allowed():
    with pytest.raises(ValueError, match="allowed: csv, tsv, parquet, s3rec, sasrec, recbole"):
        load_dataset("x", "json")  # type: ignore[arg-type]


def test_missing_file():
    with pytest.raises(FileNotFoundError, match="nope.txt"):
        load_s3rec("/nope.txt")


def test_movielens_is_embedded_with_titles():
    dataset = load_movielens()
    assert len(dataset.sequences.items) == 100_004
    assert dataset.n_items == 9_066
    assert dataset.n_users == 671
    assert {"title", "genres", "year"} <= set(dataset.item_info.columns)
    assert dataset.item_info.loc[1, "title"] == "Toy Story"
    assert (dataset.sequences.lengths > 0).all()


def _shared(relative: str) -> Path:
    path = SHARED / relative
    if not path.exists():
        pytest.skip(f"shared data file {path} not present (CI puts shared/ beside the repo)")
    return path


def test_beauty_s3rec_sizes_and_order():
    path = _shared("s3rec/Beauty.txt")
    dataset = load_s3rec(path)
    assert (dataset.n_users, dataset.n_items) == (22_363, 12_101)
    assert len(dataset.sequences.items) == 198_502
    first = path.read_text().splitlines()[0].split()
    assert dataset.catalogue.to_external(dataset.sequences.row(0)).tolist() == [
        int(t) for t in first[1:]
    ]


def test_video_sasrec_sizes():
    dataset = load_sasrec(_shared("sasrec/Video.txt"))
    assert (dataset.n_users, dataset.n_items) == (31_013, 23_715)
    assert len(dataset.sequences.items) == 287_107


def test_ml100k_recbole_sizes():
    dataset = load_recbole(_shared("ml-100k"))
    assert (dataset.n_users, dataset.n_items) == (943, 1_682)
    assert len(dataset.sequences.items) == 100_000
    assert dataset.item_info.loc[1, "title"] == "Toy Story"
