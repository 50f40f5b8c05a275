"""windows / bucketed_batches / shard on hand-written CSR arrays."""

import numpy as np
import pytest
from conftest import csr

from seqrec.batches import bucketed_batches, shard, windows

ROWS = [[1, 2, 3, 4, 5], [6], [7, 8], [], [9, 10, 11]]


def test_windows_written_out():
    items, offsets = csr(ROWS)
    out = windows(items, offsets, np.array([0, 1, 2, 3, 4]), width=3)
    assert out.dtype == np.int64
    assert out.tolist() == [[3, 4, 5], [0, 0, 6], [0, 7, 8], [0, 0, 0], [9, 10, 11]]


def test_windows_width_follows_the_longest_kept_row_or_pad_to():
    items, offsets = csr(ROWS)
    assert windows(items, offsets, np.array([1, 2]), width=10).tolist() == [[0, 6], [7, 8]]
    assert windows(items, offsets, np.array([2, 0]), width=2, pad_to=4).tolist() == [
        [0, 0, 7, 8], [0, 0, 4, 5]]
    assert windows(items, offsets, np.array([3]), width=5).shape == (1, 0)


def test_windows_of_repeated_and_reordered_rows():
    items, offsets = csr(ROWS)
    assert windows(items, offsets, np.array([4, 0, 4]), width=2).tolist() == [
        [10, 11], [4, 5], [10, 11]]


@pytest.mark.parametrize("batch_size", [1, 3, 7, 64])
def test_bucketed_batches_hold_every_nonempty_row_exactly_once(batch_size):
    lengths = np.random.default_rng(1).integers(0, 30, size=200)
    batches = bucketed_batches(lengths, batch_size, np.random.default_rng(0), bucket_batches=4)
    rows = np.concatenate(batches)
    assert sorted(rows.tolist()) == np.flatnonzero(lengths > 0).tolist()
    assert all(1 <= len(b) <= batch_size for b in batches)


def test_bucketed_batches_group_similar_lengths_and_depend_only_on_the_rng():
    lengths = np.arange(1, 101)
    first = bucketed_batches(lengths, 10, np.random.default_rng(5), bucket_batches=10)
    again = bucketed_batches(lengths, 10, np.random.default_rng(5), bucket_batches=10)
    assert [b.tolist() for b in first] == [b.tolist() for b in again]
    # one sorting chunk holds every row: each batch is ten consecutive lengths
    assert all(np.ptp(lengths[b]) == 9 for b in first)


@pytest.mark.parametrize(("n_batches", "world_size"), [(10, 2), (11, 2), (7, 3), (2, 4)])
def test_shards_are_disjoint_and_equal_sized(n_batches, world_size):
    batches = [np.array([i]) for i in range(n_batches)]
    shards = [shard(batches, rank, world_size) for rank in range(world_size)]
    ids = [[int(b[0]) for b in s] for s in shards]
    assert {len(s) for s in ids} == {n_batches // world_size}
    flat = [i for s in ids for i in s]
    assert len(flat) == len(set(flat))
    assert n_batches - len(flat) < world_size  # only the surplus at the end is dropped


def test_shard_written_out_and_single_process_keeps_everything():
    batches = [np.array([i]) for i in range(5)]
    assert [int(b[0]) for b in shard(batches, 0, 2)] == [0, 2]
    assert [int(b[0]) for b in shard(batches, 1, 2)] == [1, 3]
    assert len(shard(batches, 0, 1)) == 5


def test_one_batch_per_bucket_gives_plain_shuffled_batches():
    lengths = np.random.default_rng(1).integers(0, 30, size=200)
    batches = bucketed_batches(lengths, 8, np.random.default_rng(3), bucket_batches=1)
    order = np.random.default_rng(3).permutation(np.flatnonzero(lengths > 0))
    plain = {frozenset(order[i : i + 8].tolist()) for i in range(0, len(order), 8)}
    assert {frozenset(b.tolist()) for b in batches} == plain
