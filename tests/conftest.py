"""Shared tiny fixtures: hand-sized CSR arrays and a synthetic catalogue with a deterministic pattern."""

import numpy as np
import pandas as pd
import pytest
import torch

from seqrec import build_dataset, leave_one_out, preset

# Each test process trains tiny models; one thread avoids oversubscribing the 2-core test machines.
torch.set_num_threads(1)


def csr(rows: list[list[int]]) -> tuple[np.ndarray, np.ndarray]:
    """``(items, offsets)`` int64 CSR arrays of hand-written rows."""
    lengths = np.array([len(r) for r in rows], dtype=np.int64)
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    return np.array([x for r in rows for x in r], dtype=np.int64), offsets


def pattern_interactions(n_users: int = 300, n_items: int = 50, seed: int = 0,
                         item_prefix: str | None = None) -> pd.DataFrame:
    """Each user walks the catalogue in order from a random start: i, i+1, i+2 ... (mod n_items).

    The next item is a deterministic function of the last one, so a sequential model can reach
    NDCG@10 close to 1, while popularity (nearly uniform) cannot.
    """
    rng = np.random.default_rng(seed)
    rows = []
    for user in range(n_users):
        start, length = rng.integers(n_items), rng.integers(8, 16)
        for t in range(length):
            item = int((start + t) % n_items + 1)
            rows.append((user, f"{item_prefix}{item}" if item_prefix else item, t))
    return pd.DataFrame(rows, columns=["user_id", "item_id", "timestamp"])


@pytest.fixture(scope="session")
def pattern():
    """``(dataset, split)`` of the deterministic pattern, 300 users × 50 items, leave-one-out."""
    dataset = build_dataset(pattern_interactions())
    return dataset, leave_one_out(dataset)


def small_config(name: str = "esasrec", **overrides):
    """A preset shrunk to run in about a second on one CPU thread."""
    settings = dict(dim=32, lr=5e-3, epochs=40, batch_size=32, max_seq_len=16, dropout=0.1,
                    patience=0, seed=0)
    if name in ("esasrec", "sasrec_ss", "gsasrec", "hstu", "fuxi_alpha"):
        settings["n_negatives"] = 16
    return preset(name, **{**settings, **overrides})
