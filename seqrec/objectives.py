"""Training objectives: what the model reads, what it must predict, and the attention direction.

* :class:`NextItem` — SASRec's shifted sequence (Kang & McAuley 2018): causal attention, every
  position predicts the item that follows it.
* :class:`MaskedItem` — BERT4Rec's cloze task (Sun et al., CIKM 2019): bidirectional attention,
  a share of positions replaced by MASK and predicted; at inference a MASK is appended.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np
import torch
from torch import Tensor

from seqrec.batches import windows
from seqrec.data.catalogue import PAD


@dataclass(frozen=True)
class Batch:
    """One training batch.

    Attributes:
        inputs: ``(batch, seq_len)`` int64 item indices, left-padded with PAD.
        targets: ``(batch, seq_len)`` int64 item each position must predict; PAD where nothing.
        is_target: ``(batch, seq_len)`` bool, True where the loss counts.
    """

    inputs: Tensor
    targets: Tensor
    is_target: Tensor


class Objective(Protocol):
    """Builds inputs/targets from sequences and decides attention direction."""

    causal: bool
    min_length: int  # rows shorter than this give no training signal
    needs_mask_token: bool

    def training_batch(self, items: np.ndarray, offsets: np.ndarray, rows: np.ndarray,
                       rng: np.random.Generator) -> Batch:
        """Inputs, targets and ``is_target`` for the CSR rows ``rows``."""
        ...

    def inference_inputs(self, items: np.ndarray, offsets: np.ndarray, rows: np.ndarray) -> np.ndarray:
        """``(batch, seq_len)`` int64 model inputs for histories ``rows`` (left-padded)."""
        ...

    def mean_targets(self, lengths: np.ndarray) -> float:
        """Expected target positions per training row, over rows of ``lengths`` (items)."""
        ...


def _to_batch(inputs: np.ndarray, targets: np.ndarray, is_target: np.ndarray) -> Batch:
    return Batch(torch.from_numpy(inputs), torch.from_numpy(targets), torch.from_numpy(is_target))


@dataclass(frozen=True)
class NextItem:
    """Shifted-sequence objective (SASRec). Window = the last ``max_seq_len + 1`` items of a
    row; inputs are its first ``max_seq_len``, targets the last ``max_seq_len``."""

    max_seq_len: int
    causal: bool = True
    min_length: int = 2
    needs_mask_token: bool = False

    def training_batch(self, items: np.ndarray, offsets: np.ndarray, rows: np.ndarray,
                       rng: np.random.Generator) -> Batch:
        """:class:`Batch` of ``(batch, seq_len)`` windows of the CSR rows ``rows``; ``seq_len`` is
        the longest kept row of this batch minus one (``rng`` unused: nothing is random here)."""
        window = windows(items, offsets, rows, self.max_seq_len + 1)  # (batch, seq_len + 1)
        inputs, targets = window[:, :-1], window[:, 1:]
        return _to_batch(np.ascontiguousarray(inputs), np.ascontiguousarray(targets), inputs != PAD)

    def mean_targets(self, lengths: np.ndarray) -> float:
        """Mean of ``min(length, max_seq_len + 1) - 1`` over rows with at least 2 items."""
        kept = lengths[lengths >= self.min_length]
        return float(np.mean(np.minimum(kept, self.max_seq_len + 1) - 1)) if len(kept) else 1.0

    def inference_inputs(self, items: np.ndarray, offsets: np.ndarray, rows: np.ndarray) -> np.ndarray:
        """``(batch, <= max_seq_len)`` the most recent items of each history."""
        return windows(items, offsets, rows, self.max_seq_len)


@dataclass(frozen=True)
class MaskedItem:
    """Masked-item objective (BERT4Rec). Each real position is masked with probability
    ``mask_prob``; a row with no masked position gets its last item masked, so every row trains.

    Attributes:
        mask_token: index of MASK (``n_items + 1``).
    """

    max_seq_len: int
    mask_token: int
    mask_prob: float = 0.2
    causal: bool = False
    min_length: int = 1
    needs_mask_token: bool = True

    def training_batch(self, items: np.ndarray, offsets: np.ndarray, rows: np.ndarray,
                       rng: np.random.Generator) -> Batch:
        """:class:`Batch` of ``(batch, seq_len)`` windows with positions masked at random by ``rng``."""
        window = windows(items, offsets, rows, self.max_seq_len)  # (batch, seq_len)
        real = window != PAD
        masked = real & (rng.random(window.shape) < self.mask_prob)
        none = ~masked.any(axis=1)
        masked[none, -1] = True  # the last column is always a real item (left padding)
        inputs = np.where(masked, self.mask_token, window)
        targets = np.where(masked, window, PAD)
        return _to_batch(inputs, targets, masked)

    def mean_targets(self, lengths: np.ndarray) -> float:
        """Expected masked positions per row: ``mask_prob × min(length, max_seq_len)``, at least 1."""
        kept = lengths[lengths >= self.min_length]
        if not len(kept):
            return 1.0
        return float(np.mean(np.maximum(self.mask_prob * np.minimum(kept, self.max_seq_len), 1.0)))

    def inference_inputs(self, items: np.ndarray, offsets: np.ndarray, rows: np.ndarray) -> np.ndarray:
        """``(batch, <= max_seq_len)``: the most recent ``max_seq_len - 1`` items, then MASK."""
        history = windows(items, offsets, rows, self.max_seq_len - 1)
        mask_col = np.full((len(rows), 1), self.mask_token, dtype=np.int64)
        return np.concatenate([history, mask_col], axis=1)
