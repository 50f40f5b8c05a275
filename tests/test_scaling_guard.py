"""The full-softmax memory guard: a catalogue too large is refused up front with a GiB estimate."""

import re

import numpy as np
import pytest

from seqrec.build import build_parts
from seqrec.config import preset
from seqrec.memory import check_softmax_memory
from seqrec.train import fit

GIB = 2**30


def test_refuses_huge_catalogue_with_gib_estimate():
    config = preset("esasrec", loss="softmax", batch_size=128, max_seq_len=50)
    n_items = 10_000_000
    expected = 3 * 4 * 128 * 50 * (n_items + 1) / GIB  # 71.5 GiB
    with pytest.raises(MemoryError) as info:
        check_softmax_memory(config, n_items, available=16 * GIB)
    message = str(info.value)
    match = re.search(r"about ([\d.]+) GiB", message)
    assert match, message
    assert float(match.group(1)) == pytest.approx(expected, abs=0.05)
    assert "10,000,000 items" in message
    assert "16.0 GiB is available" in message
    assert "sampled_softmax" in message  # says what to change


def test_accepts_small_catalogue_and_returns_estimate():
    config = preset("esasrec", loss="softmax", batch_size=128, max_seq_len=50)
    estimate = check_softmax_memory(config, 10_000, available=16 * GIB)
    assert estimate == 3 * 4 * 128 * 50 * 10_001
    assert estimate < 16 * GIB // 2


def test_boundary_is_half_of_available():
    config = preset("esasrec", loss="softmax", batch_size=1, max_seq_len=1)
    estimate = 12 * 1001  # n_items = 1000
    assert check_softmax_memory(config, 1000, available=2 * estimate) == estimate
    with pytest.raises(MemoryError):
        check_softmax_memory(config, 1000, available=2 * estimate - 2)


@pytest.mark.parametrize("loss", ["sampled_softmax", "bce", "gbce"])
def test_sampled_losses_return_zero(loss):
    config = preset("esasrec", loss=loss)
    assert check_softmax_memory(config, 10_000_000, available=1) == 0
    assert check_softmax_memory(config, 10_000_000) == 0


def test_fit_refuses_before_training():
    # tiny catalogue, but batch_size × max_seq_len make the logits ~ 29 TiB: fit must refuse at once
    config = preset("esasrec", loss="softmax", batch_size=10_000_000, max_seq_len=5_000, dim=8,
                    epochs=1)
    parts = build_parts(config, 50)
    items = np.arange(1, 11, dtype=np.int64)
    offsets = np.array([0, 5, 10], dtype=np.int64)
    weights = {k: v.clone() for k, v in parts.encoder.state_dict().items()}
    with pytest.raises(MemoryError, match=r"GiB per batch"):
        fit(parts, config, items, offsets)
    for key, value in parts.encoder.state_dict().items():  # nothing was trained
        assert bool((value == weights[key]).all()), key
