"""Partitioned logs: a Parquet dataset read lazily, one shard of users per process, indexed with
the whole log's catalogue; two processes trained on their own shards (DDP, gloo) reach the quality
of one process trained on everything."""

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.dataset as ds
import pytest
from conftest import pattern_interactions, small_config

from seqrec import SequentialRecommender, build_dataset, evaluate, leave_one_out
from seqrec.data.partitioned import read_shard, scan_items, user_shards


@pytest.fixture(scope="module")
def partitioned(tmp_path_factory):
    """The pattern log written as an engine would: hive partitions by a 'part' column."""
    frame = pattern_interactions()
    frame["part"] = frame.timestamp % 3
    path = tmp_path_factory.mktemp("log") / "interactions"
    ds.write_dataset(pa.Table.from_pandas(frame, preserve_index=False), path, format="parquet",
                     partitioning=ds.partitioning(pa.schema([("part", pa.int64())]),
                                                  flavor="hive"))
    return path, frame


def test_user_shards_are_stable_and_spread(partitioned):
    assert user_shards(np.array([7, 7, 123456789]), 4).tolist() == user_shards(
        np.array([7, 7, 123456789]), 4).tolist()
    counts = np.bincount(user_shards(np.arange(10_000), 4), minlength=4)
    assert counts.min() > 2300  # about 2,500 each
    assert user_shards(np.array(["u1", "u2"]), 3).tolist() == user_shards(
        np.array(["u1", "u2"], dtype=object), 3).tolist()


def test_shards_partition_the_users_and_share_the_whole_catalogue(partitioned):
    path, frame = partitioned
    catalogue = scan_items(path)
    assert catalogue.ids.tolist() == sorted(frame.item_id.unique().tolist())
    shards = [read_shard(path, rank=r, world_size=2, catalogue=catalogue) for r in (0, 1)]
    users = [set(s.user_index.ids.tolist()) for s in shards]
    assert not users[0] & users[1] and users[0] | users[1] == set(frame.user_id)
    whole = build_dataset(frame)
    for shard in shards:
        assert shard.catalogue is catalogue
        assert len(shard.sequences.items) < len(whole.sequences.items)
        for row, user in enumerate(shard.user_index.ids[:20].tolist()):  # sequences are whole
            expected = whole.sequences.row(int(whole.user_index.to_index([user])[0]))
            assert shard.sequences.row(row).tolist() == expected.tolist()


def test_bad_shard_arguments_are_named(partitioned, tmp_path):
    path, _ = partitioned
    with pytest.raises(ValueError, match="rank=2"):
        read_shard(path, rank=2, world_size=2)
    with pytest.raises(ValueError, match="'buyer'"):
        read_shard(path, rank=0, world_size=1, user_col="buyer")
    with pytest.raises(FileNotFoundError):
        scan_items(tmp_path / "nothing")


SCRIPT = textwrap.dedent("""
    import json, sys
    from pathlib import Path

    sys.path.insert(0, sys.argv[2])
    from lightning_fabric import Fabric

    from conftest import pattern_interactions, small_config
    from seqrec import SequentialRecommender, build_dataset, evaluate, leave_one_out
    from seqrec.data.partitioned import read_shard, scan_items

    path, out = Path(sys.argv[1]), Path(sys.argv[3])
    fabric = Fabric(accelerator="cpu", devices=2, strategy="ddp")
    fabric.launch()
    rank = fabric.global_rank
    catalogue = scan_items(path)
    shard = read_shard(path, rank=rank, world_size=2, catalogue=catalogue)
    split = leave_one_out(shard)
    model = SequentialRecommender(small_config(epochs=30, patience=0))
    result = model.fit(shard, split.train, split.validation, fabric=fabric, sharded=True)
    whole = build_dataset(pattern_interactions())  # small enough to score everything here
    ndcg = evaluate(model, leave_one_out(whole).test, metrics=("ndcg",)).means["ndcg@10"]
    (out / f"rank{rank}.json").write_text(json.dumps({
        "users": int(shard.n_users), "ndcg": ndcg,
        "validation": [h.validation_ndcg for h in result.history]}))
""")


@pytest.mark.slow
def test_two_processes_on_their_own_shards_match_one_process_on_everything(partitioned, tmp_path):
    path, frame = partitioned
    script = tmp_path / "sharded.py"
    script.write_text(SCRIPT)
    done = subprocess.run([sys.executable, str(script), str(path), str(Path(__file__).parent),
                           str(tmp_path)], capture_output=True, text=True, timeout=300,
                          cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert ranks[0]["users"] + ranks[1]["users"] == frame.user_id.nunique()
    assert ranks[0]["validation"] == ranks[1]["validation"]  # one metric over both shards
    assert ranks[0]["ndcg"] == pytest.approx(ranks[1]["ndcg"])  # the same weights
    whole = build_dataset(frame)
    split = leave_one_out(whole)
    single = SequentialRecommender(small_config(epochs=30, patience=0))
    single.fit(whole, split.train, split.validation)
    ndcg_single = evaluate(single, split.test, metrics=("ndcg",)).means["ndcg@10"]
    assert ranks[0]["ndcg"] >= 0.9 and ndcg_single >= 0.9
    assert abs(ranks[0]["ndcg"] - ndcg_single) <= 0.05


@pytest.mark.slow
def test_the_command_line_trains_on_user_shards_and_publishes_every_user(partitioned, tmp_path):
    path, frame = partitioned
    out = tmp_path / "model"
    done = subprocess.run(
        [sys.executable, "-m", "seqrec", "train", "--data", str(path), "--format", "parquet",
         "--devices", "2", "--shard-users", "--set", "epochs=3", "--set", "dim=16",
         "--set", "n_negatives=8", "--out", str(out), "--quiet"],
        capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip().splitlines() == [str(out)] or str(out) in done.stdout
    from seqrec import load_model

    model = load_model(out)
    assert len(model.user_index) == frame.user_id.nunique()
    assert set(model.metadata["metrics"]) >= {"ndcg@10", "recall@10"}
    assert "coverage@10" not in model.metadata["metrics"]  # needs every shard's lists
    recs = model.recommend(frame.user_id.unique()[:5].tolist(), k=3)
    assert len(recs) == 15
