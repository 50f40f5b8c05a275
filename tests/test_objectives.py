"""Objectives: inputs / targets / is_target written out for tiny CSR arrays."""

import numpy as np
import pytest
from conftest import csr

from seqrec.build import build_objective
from seqrec.config import preset
from seqrec.objectives import MaskedItem, NextItem

ROWS = [[1, 2, 3, 4, 5], [6, 7], [8]]


def test_next_item_shifted_sequence_written_out():
    items, offsets = csr(ROWS)
    batch = NextItem(max_seq_len=3).training_batch(items, offsets, np.array([0, 1, 2]),
                                                   np.random.default_rng(0))
    # windows of the last 4 items: [2 3 4 5], [0 0 6 7], [0 0 0 8]
    assert batch.inputs.tolist() == [[2, 3, 4], [0, 0, 6], [0, 0, 0]]
    assert batch.targets.tolist() == [[3, 4, 5], [0, 6, 7], [0, 0, 8]]
    assert batch.is_target.tolist() == [[True] * 3, [False, False, True], [False] * 3]


def test_next_item_is_causal_and_inference_reads_the_most_recent_items():
    objective = NextItem(max_seq_len=3)
    assert objective.causal and not objective.needs_mask_token and objective.min_length == 2
    items, offsets = csr(ROWS)
    assert objective.inference_inputs(items, offsets, np.array([0, 1])).tolist() == [
        [3, 4, 5], [0, 6, 7]]


def test_masked_item_mask_token_is_n_items_plus_one_and_attention_bidirectional():
    objective = build_objective(preset("bert4rec"), n_items=40)
    assert isinstance(objective, MaskedItem)
    assert objective.mask_token == 41 and objective.needs_mask_token and not objective.causal


@pytest.mark.parametrize("mask_prob", [0.0, 0.2, 1.0])
def test_masked_item_never_masks_pad_and_masks_at_least_one_per_row(mask_prob):
    rng = np.random.default_rng(0)
    lengths = rng.integers(1, 12, size=300)
    rows = [list(rng.integers(1, 41, size=n)) for n in lengths]
    items, offsets = csr(rows)
    objective = MaskedItem(max_seq_len=8, mask_token=41, mask_prob=mask_prob)
    batch = objective.training_batch(items, offsets, np.arange(300), rng)
    window = np.where(batch.is_target.numpy(), batch.targets.numpy(), batch.inputs.numpy())
    is_pad = window == 0
    masked = batch.is_target.numpy()
    assert not (masked & is_pad).any()
    assert masked.any(axis=1).all()
    assert (batch.inputs.numpy()[masked] == 41).all()
    assert (batch.inputs.numpy()[~masked] != 41).all()
    assert (batch.targets.numpy()[~masked] == 0).all() and (batch.targets.numpy()[masked] > 0).all()
    if mask_prob == 1.0:
        assert (masked == ~is_pad).all()
    if mask_prob == 0.0:  # only the forced last position
        assert masked.sum(axis=1).tolist() == [1] * 300 and masked[:, -1].all()


def test_masked_item_written_out_with_a_fixed_rng():
    items, offsets = csr([[1, 2, 3], [4]])
    objective = MaskedItem(max_seq_len=3, mask_token=9, mask_prob=0.5)
    rng = np.random.default_rng(3)
    draws = np.random.default_rng(3).random((2, 3)) < 0.5
    batch = objective.training_batch(items, offsets, np.array([0, 1]), rng)
    expected = draws & np.array([[True, True, True], [False, False, True]])
    expected[~expected.any(axis=1), -1] = True
    assert batch.is_target.numpy().tolist() == expected.tolist()
    window = np.array([[1, 2, 3], [0, 0, 4]])
    assert batch.inputs.tolist() == np.where(expected, 9, window).tolist()
    assert batch.targets.tolist() == np.where(expected, window, 0).tolist()


def test_masked_item_inference_appends_mask_after_the_most_recent_items():
    items, offsets = csr(ROWS)
    objective = MaskedItem(max_seq_len=3, mask_token=9)
    assert objective.inference_inputs(items, offsets, np.array([0, 1, 2])).tolist() == [
        [4, 5, 9], [6, 7, 9], [0, 8, 9]]


def test_mean_targets_written_out():
    lengths = np.array([0, 1, 2, 5, 30])  # rows of 0 and 1 items give no next-item target
    # next item, max_seq_len 10: min(len, 11) - 1 over rows with >= 2 items = (1 + 4 + 10) / 3
    assert NextItem(10).mean_targets(lengths) == pytest.approx(5.0)
    # masked item, p = 0.2, max_seq_len 10: max(0.2 * min(len, 10), 1) over rows with >= 1 item
    # = (1 + 1 + 1 + 2) / 4
    assert MaskedItem(10, mask_token=99, mask_prob=0.2).mean_targets(lengths) == pytest.approx(1.25)


def test_next_item_inference_sees_the_time_gaps_training_saw_in_a_positional_log():
    # a log without times: timestamps are positions 0, 1, 2, ... Training queries position i at
    # its target's time (i + 1); the default query of inference must keep those gaps, else a
    # time-aware layer sees every gap one unit shorter than it learned them (issue 14's FuXi-α
    # gap on Beauty)
    items, offsets = csr([[4, 5, 6, 7]])
    stamps = np.array([0, 1, 2, 3], dtype=np.int64)
    objective = NextItem(max_seq_len=3)
    batch = objective.training_batch(items, offsets, np.array([0]), np.random.default_rng(0), stamps)
    # the history [4, 5, 6] (times 0..2) predicts 7: training's last query is 7's time, 3
    history, history_offsets = csr([[4, 5, 6]])
    times = objective.inference_times(stamps[:3], history_offsets, np.array([0]), width=3)
    assert objective.inference_inputs(history, history_offsets, np.array([0])).tolist() == [
        batch.inputs[0].tolist()]
    assert times.inputs.tolist() == batch.times.inputs.tolist() == [[0, 1, 2]]
    assert times.queries.tolist() == batch.times.queries.tolist() == [[1, 2, 3]]
    given = objective.inference_times(stamps[:3], history_offsets, np.array([0]), width=3,
                                      query_times=np.array([9]))
    assert given.queries.tolist() == [[1, 2, 9]]
