"""Training progress for people: a bar per epoch and/or one plain line per epoch, built on the
``on_batch`` / ``on_epoch`` callbacks of :func:`seqrec.train.fit` (the loop itself prints nothing).

Bars are for terminals; a log file gets the lines only, each a complete line (no carriage
returns), e.g. ``epoch  12/200  loss 1.8342  4.1s  5,210 seq/s  validation ndcg@10 0.0512 *``
(``*`` marks a new best epoch).
"""

from __future__ import annotations

import sys
from typing import TextIO

from seqrec.checkpoint import EpochRecord
from seqrec.train import BatchRecord, OnBatch, OnEpoch


def epoch_line(record: EpochRecord) -> str:
    """One plain line describing an epoch."""
    width = len(str(record.epochs or record.epoch))
    of = f"/{record.epochs}" if record.epochs else ""
    text = (f"epoch {record.epoch:>{width}}{of}  loss {record.loss:.4f}  {record.seconds:.1f}s  "
            f"{record.sequences_per_s:,.0f} seq/s")
    if record.validation_ndcg is not None:
        text += f"  validation ndcg@10 {record.validation_ndcg:.4f}"
        if record.best_epoch == record.epoch:
            text += " *"
    return text


class TrainingProgress:
    """``on_batch`` / ``on_epoch`` callbacks that draw a tqdm bar per epoch and/or write one
    line per epoch.

    Args:
        bars: draw a bar while an epoch runs (removed when it ends).
        lines: write :func:`epoch_line` after every epoch.
        stream: where both go (default: stderr).
    """

    def __init__(self, bars: bool, lines: bool, stream: TextIO | None = None) -> None:
        self.bars = bars
        self.lines = lines
        self.stream = stream
        self._bar = None
        self._loss_sum = 0.0

    def on_batch(self, record: BatchRecord) -> None:
        if not self.bars or record.rank != 0:
            return
        if self._bar is None:
            from tqdm.auto import tqdm

            self._bar = tqdm(total=record.n_batches, desc=f"epoch {record.epoch}", leave=False,
                             unit="batch", file=self.stream or sys.stderr)
            self._loss_sum = 0.0
        self._loss_sum += record.loss
        self._bar.update(1)
        if record.index % 20 == 0:
            self._bar.set_postfix(loss=f"{self._loss_sum / (record.index + 1):.4f}")

    def on_epoch(self, record: EpochRecord) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None
        if self.lines:
            stream = self.stream or sys.stderr
            stream.write(epoch_line(record) + "\n")
            stream.flush()

    def chain(self, on_epoch: OnEpoch | None, on_batch: OnBatch | None
              ) -> tuple[OnEpoch, OnBatch]:
        """This object's callbacks, each followed by the caller's own (when given)."""
        def epoch(record: EpochRecord) -> None:
            self.on_epoch(record)
            if on_epoch is not None:
                on_epoch(record)

        def batch(record: BatchRecord) -> None:
            self.on_batch(record)
            if on_batch is not None:
                on_batch(record)

        return epoch, batch
