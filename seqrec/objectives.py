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
class Times:
    """Event times of a window, for layers whose attention uses them (HSTU, FuXi-α); other
    layers never see them.

    Attributes:
        inputs: ``(batch, seq_len)`` int64 seconds of each input position's event (0 at PAD).
        queries: ``(batch, seq_len)`` int64 seconds of the event each position predicts: the
            next event's time in training (as the HSTU reference does), and at inference the
            query time (default: the time of the history's last event).
    """

    inputs: Tensor
    queries: Tensor


@dataclass(frozen=True)
class Batch:
    """One training batch.

    Attributes:
        inputs: ``(batch, seq_len)`` int64 item indices, left-padded with PAD.
        targets: ``(batch, seq_len)`` int64 item each position must predict; PAD where nothing.
        is_target: ``(batch, seq_len)`` bool, True where the loss counts.
        times: event times of the window (only when asked for: time-aware layers), or None.
    """

    inputs: Tensor
    targets: Tensor
    is_target: Tensor
    times: Times | None = None


def default_query_times(last_event_times: np.ndarray) -> np.ndarray:
    """``(n,)`` int64 the time a recommendation is asked for when the caller gives none: one
    unit after each history's last event (``last_event_times``, ``(n,)``; 0 for an empty history).

    Training queries each position at its target's time, which comes after the position's own
    event; with the last event's own time as the default, every gap at inference would be one
    unit shorter than the same gap in training. In a log whose timestamps are positions (formats
    without times) the next event is exactly one unit later, so the default reproduces
    training's gaps; in seconds one unit is no gap at all (gaps of 0 and 1 share bucket 0)."""
    return np.asarray(last_event_times, dtype=np.int64) + 1


def _asked_at(query_times: np.ndarray | None, stamps: np.ndarray) -> np.ndarray:
    """The query time of each window row ``stamps`` ``(batch, width)``: given, or the default."""
    if query_times is not None:
        return np.asarray(query_times, dtype=np.int64)
    last = stamps[:, -1] if stamps.shape[1] else np.zeros(len(stamps), dtype=np.int64)
    return default_query_times(last)


class Objective(Protocol):
    """Builds inputs/targets from sequences and decides attention direction."""

    causal: bool
    min_length: int  # rows shorter than this give no training signal
    needs_mask_token: bool

    def training_batch(self, items: np.ndarray, offsets: np.ndarray, rows: np.ndarray,
                       rng: np.random.Generator, timestamps: np.ndarray | None = None) -> Batch:
        """Inputs, targets and ``is_target`` for the CSR rows ``rows``; with ``timestamps``
        (CSR-aligned seconds) also the window's :class:`Times`."""
        ...

    def inference_inputs(self, items: np.ndarray, offsets: np.ndarray, rows: np.ndarray) -> np.ndarray:
        """``(batch, seq_len)`` int64 model inputs for histories ``rows`` (left-padded)."""
        ...

    def mean_targets(self, lengths: np.ndarray) -> float:
        """Expected target positions per training row, over rows of ``lengths`` (items)."""
        ...

    def inference_times(self, timestamps: np.ndarray, offsets: np.ndarray, rows: np.ndarray,
                        width: int, query_times: np.ndarray | None = None) -> Times:
        """:class:`Times` aligned with :meth:`inference_inputs` of width ``width``; the last
        position queries ``query_times`` (default: one unit after the history's last event)."""
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
                       rng: np.random.Generator, timestamps: np.ndarray | None = None) -> Batch:
        """:class:`Batch` of ``(batch, seq_len)`` windows of the CSR rows ``rows``; ``seq_len`` is
        the longest kept row of this batch minus one (``rng`` unused: nothing is random here).
        Each position's query time is its target's time."""
        window = windows(items, offsets, rows, self.max_seq_len + 1)  # (batch, seq_len + 1)
        inputs, targets = window[:, :-1], window[:, 1:]
        batch = _to_batch(np.ascontiguousarray(inputs), np.ascontiguousarray(targets),
                          inputs != PAD)
        if timestamps is None:
            return batch
        stamps = windows(timestamps, offsets, rows, self.max_seq_len + 1, pad_to=window.shape[1])
        times = Times(torch.from_numpy(np.ascontiguousarray(stamps[:, :-1])),
                      torch.from_numpy(np.ascontiguousarray(stamps[:, 1:])))
        return Batch(batch.inputs, batch.targets, batch.is_target, times)

    def mean_targets(self, lengths: np.ndarray) -> float:
        """Mean of ``min(length, max_seq_len + 1) - 1`` over rows with at least 2 items."""
        kept = lengths[lengths >= self.min_length]
        return float(np.mean(np.minimum(kept, self.max_seq_len + 1) - 1)) if len(kept) else 1.0

    def inference_inputs(self, items: np.ndarray, offsets: np.ndarray, rows: np.ndarray) -> np.ndarray:
        """``(batch, <= max_seq_len)`` the most recent items of each history."""
        return windows(items, offsets, rows, self.max_seq_len)

    def inference_times(self, timestamps: np.ndarray, offsets: np.ndarray, rows: np.ndarray,
                        width: int, query_times: np.ndarray | None = None) -> Times:
        """Times of the most recent ``width`` events; position ``i`` queries event ``i + 1``'s
        time and the last position ``query_times``."""
        stamps = windows(timestamps, offsets, rows, width, pad_to=width)  # (batch, width)
        queries = np.concatenate([stamps[:, 1:], _asked_at(query_times, stamps)[:, None]], axis=1)
        return Times(torch.from_numpy(stamps), torch.from_numpy(queries))


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
                       rng: np.random.Generator, timestamps: np.ndarray | None = None) -> Batch:
        """:class:`Batch` of ``(batch, seq_len)`` windows with positions masked at random by
        ``rng``; a position's query time is its own event's time."""
        window = windows(items, offsets, rows, self.max_seq_len)  # (batch, seq_len)
        real = window != PAD
        masked = real & (rng.random(window.shape) < self.mask_prob)
        none = ~masked.any(axis=1)
        masked[none, -1] = True  # the last column is always a real item (left padding)
        inputs = np.where(masked, self.mask_token, window)
        targets = np.where(masked, window, PAD)
        batch = _to_batch(inputs, targets, masked)
        if timestamps is None:
            return batch
        stamps = torch.from_numpy(windows(timestamps, offsets, rows, self.max_seq_len,
                                          pad_to=window.shape[1]))
        return Batch(batch.inputs, batch.targets, batch.is_target, Times(stamps, stamps))

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

    def inference_times(self, timestamps: np.ndarray, offsets: np.ndarray, rows: np.ndarray,
                        width: int, query_times: np.ndarray | None = None) -> Times:
        """Times of the history part, then the query time at the MASK position."""
        stamps = windows(timestamps, offsets, rows, width - 1, pad_to=width - 1)
        times = np.concatenate([stamps, _asked_at(query_times, stamps)[:, None]], axis=1)
        tensor = torch.from_numpy(times)
        return Times(tensor, tensor)
