"""Leakage-proof train / validation / test splits of a :class:`Dataset`, with reports.

Both splits return a :class:`Split` with the same meaning, so one training recipe fits both:

* ``Split.train`` is everything the model may be **fit** on while ``Split.validation`` is used
  for early stopping: it never holds a validation or test target (nor, for the time split,
  any event at or after the validation cutoff).
* ``Split.validation.histories`` are model inputs for validation (only training-time data);
  ``Split.test.histories`` additionally hold the validation-period events (leave-one-out: the
  validation item), which the model sees as input at test time without being refit on them —
  the standard SASRec protocol.

Every row or target that is dropped is counted in :class:`SplitReport`; nothing disappears
silently. All work is vectorised over the CSR arrays (no per-user Python loop).
"""

from __future__ import annotations

import logging
import math
from typing import Literal

import numpy as np

from seqrec.data.held_out import HeldOutReport, Split, SplitReport, held_out_part
from seqrec.data.sequences import Dataset, Sequences

logger = logging.getLogger(__name__)

SECONDS_PER_DAY = 86_400


def leave_one_out(dataset: Dataset, *, filter_already_seen: bool = False) -> Split:
    """Hold out each user's last interaction for test and the one before for validation.

    For a user with sequence ``x_1 .. x_n`` (``n >= 3``):

    * train row: ``x_1 .. x_{n-2}``;
    * validation: history ``x_1 .. x_{n-2}``, target ``x_{n-1}``;
    * test: history ``x_1 .. x_{n-1}`` (the model sees the validation item), target ``x_n``.

    Users with ``n < 3`` keep their whole sequence in train and are not evaluated (counted in
    ``report.n_short_users``). Every evaluated history therefore has at least one item: there
    are no cold users in leave-one-out. ``Split.train`` has one row per user, row ``u`` = user
    ``u``.

    Args:
        dataset: the dataset (rows chronological).
        filter_already_seen: drop a validation/test target when the item already occurs in
            that user's history (the user is then not evaluated in that part; counted).

    Returns:
        The :class:`Split`; ``validation`` and ``test`` rows are ordered by user index.
    """
    seqs = dataset.sequences
    lengths = seqs.lengths
    evaluated = lengths >= 3
    train = _slice(seqs, np.zeros_like(lengths), np.where(evaluated, lengths - 2, lengths))
    rows = np.flatnonzero(evaluated)
    sub = seqs.select(rows)
    sub_lengths = sub.lengths
    zero = np.zeros_like(sub_lengths)
    validation, validation_report = held_out_part(
        _slice(sub, zero, sub_lengths - 2),
        _slice(sub, sub_lengths - 2, sub_lengths - 1),
        n_items=dataset.n_items,
        train_items=None,
        drop_cold_users=True,
        filter_already_seen=filter_already_seen,
    )
    test, test_report = held_out_part(
        _slice(sub, zero, sub_lengths - 1),
        _slice(sub, sub_lengths - 1, sub_lengths),
        n_items=dataset.n_items,
        train_items=None,
        drop_cold_users=True,
        filter_already_seen=filter_already_seen,
    )
    report = SplitReport(
        method="leave_one_out",
        n_users=seqs.n_sequences,
        n_interactions=len(seqs.items),
        n_train_users=train.n_sequences,
        n_train_interactions=len(train.items),
        n_short_users=int((~evaluated).sum()),
        cutoff=None,
        validation_cutoff=None,
        validation=validation_report,
        test=test_report,
    )
    logger.info("%s", report)
    return Split(train, validation, test, report)


def time_split(
    dataset: Dataset,
    *,
    cutoff: int | None = None,
    last_days: float | None = None,
    last_fraction: float | None = None,
    drop_cold_users: bool = True,
    drop_cold_items: bool = True,
    filter_already_seen: bool = False,
    validation: bool = True,
    targets: Literal["all", "first"] = "all",
) -> Split:
    """Split at a point in time: the model never sees an event at or after the cutoff.

    The test window is ``[cutoff, t_max]`` where ``t_max`` is the largest timestamp. Give exactly
    one of: ``cutoff`` (seconds); ``last_days`` (window of ``round(last_days * 86400)`` seconds
    ending at ``t_max``, i.e. ``cutoff = t_max + 1 - window``); ``last_fraction`` (window of that
    fraction of ``t_max + 1 - t_min``).

    With ``validation=True`` the same split is applied once more to the pre-cutoff part: the
    validation cutoff is ``cutoff - window`` (same window length in seconds, for ``cutoff`` and
    ``last_days``) or the same fraction of the pre-cutoff time range (``last_fraction``). Then:

    * ``Split.train`` = events before the **validation** cutoff (fit on this; early-stop on
      validation);
    * validation: histories = events before the validation cutoff, targets = events in
      ``[validation_cutoff, cutoff)``;
    * test: histories = all events before ``cutoff`` (the validation-period events are model
      input only, as the validation item is in leave-one-out), targets = events at/after
      ``cutoff``.

    To train the final model on everything before ``cutoff`` (e.g. with the epoch count found
    with validation), call again with ``validation=False``: then ``Split.train`` = events before
    ``cutoff``. Either way no model input or training row holds an event at/after ``cutoff``.

    Targets are each user's distinct items in the window, in order of first occurrence
    (``targets="all"``), or only the user's first event in the window (``targets="first"``: the
    eSASRec paper's time-split protocol, one next item per test user after the cutoff). Cold
    items are items absent from ``Split.train``; cold users have no event before the part's
    cutoff (empty history). ``Split.train`` holds only users with at least one training event
    (``train.users`` gives their indices).

    Args:
        dataset: the dataset.
        cutoff: test cutoff, int seconds.
        last_days: test window length in days before the last timestamp.
        last_fraction: test window as a fraction (0, 1) of the whole time range.
        drop_cold_users: drop users with an empty history from validation/test (else keep them
            with an empty history row).
        drop_cold_items: drop targets whose item is not in ``Split.train``.
        filter_already_seen: drop targets the user already has in their history.
        validation: also build a validation part (see above).
        targets: ``"all"`` events of the window, or the ``"first"`` one (see above).

    Returns:
        The :class:`Split`; held-out rows are ordered by user index.

    Raises:
        ValueError: not exactly one of ``cutoff``, ``last_days``, ``last_fraction``; a value out
            of range; or a cutoff that leaves the train, test or validation part empty.
    """
    if targets not in ("all", "first"):
        raise ValueError(f"time_split: targets={targets!r}, expected 'all' or 'first'")
    given = [name for name, value in [("cutoff", cutoff), ("last_days", last_days),
             ("last_fraction", last_fraction)] if value is not None]  # fmt: skip
    if len(given) != 1:
        raise ValueError(
            f"time_split: give exactly one of cutoff, last_days, last_fraction; got {given or 'none'}"
        )
    seqs = dataset.sequences
    t_min, t_max = int(seqs.timestamps.min()), int(seqs.timestamps.max())
    if last_days is not None:
        if not last_days > 0:
            raise ValueError(f"time_split: last_days must be > 0, got {last_days}")
        window = int(round(last_days * SECONDS_PER_DAY))
        cutoff = t_max + 1 - window
    elif last_fraction is not None:
        if not 0 < last_fraction < 1:
            raise ValueError(f"time_split: last_fraction must be in (0, 1), got {last_fraction}")
        cutoff = t_max + 1 - _fraction_window(t_min, t_max, last_fraction)
    assert cutoff is not None
    cutoff = int(cutoff)
    if not t_min < cutoff <= t_max:
        raise ValueError(
            f"time_split: cutoff {cutoff} leaves train or test empty; timestamps span "
            f"[{t_min}, {t_max}]"
        )
    before_cutoff = _prefix_before(seqs, cutoff)
    validation_cutoff = None
    if validation:
        if last_fraction is not None:
            last_train = int(before_cutoff.timestamps.max())
            window = _fraction_window(t_min, last_train, last_fraction)
            validation_cutoff = last_train + 1 - window
        else:
            validation_cutoff = cutoff - (t_max + 1 - cutoff)
        if not t_min < validation_cutoff:
            raise ValueError(
                f"time_split: validation cutoff {validation_cutoff} leaves nothing to train on "
                f"(first timestamp {t_min}); use a shorter window or validation=False"
            )
        train = _drop_empty(_prefix_before(seqs, validation_cutoff))
    else:
        train = _drop_empty(before_cutoff)
    train_items = np.unique(train.items) if drop_cold_items else None

    validation_part = validation_report = None
    if validation:
        inner = _prefix_before(seqs, validation_cutoff)
        window_rows = _slice(seqs, inner.lengths, _window_end(inner, before_cutoff, targets))
        validation_part, validation_report = held_out_part(
            *_rows_with_events(inner, window_rows),
            n_items=dataset.n_items,
            train_items=train_items,
            drop_cold_users=drop_cold_users,
            filter_already_seen=filter_already_seen,
        )
    test_rows = _slice(seqs, before_cutoff.lengths, _window_end(before_cutoff, seqs, targets))
    test, test_report = held_out_part(
        *_rows_with_events(before_cutoff, test_rows),
        n_items=dataset.n_items,
        train_items=train_items,
        drop_cold_users=drop_cold_users,
        filter_already_seen=filter_already_seen,
    )
    report = SplitReport(
        method="time_split",
        n_users=seqs.n_sequences,
        n_interactions=len(seqs.items),
        n_train_users=train.n_sequences,
        n_train_interactions=len(train.items),
        n_short_users=0,
        cutoff=cutoff,
        validation_cutoff=validation_cutoff,
        validation=validation_report,
        test=test_report,
    )
    logger.info("%s", report)
    return Split(train, validation_part, test, report)


def _fraction_window(t_min: int, t_max: int, fraction: float) -> int:
    return max(1, int(math.floor(fraction * (t_max + 1 - t_min))))


def _slice(seqs: Sequences, starts: np.ndarray, ends: np.ndarray) -> Sequences:
    """Row ``i`` becomes ``row(i)[starts[i]:ends[i]]`` (positions within the row)."""
    lengths = np.maximum(ends - starts, 0).astype(np.int64)
    offsets = np.zeros(len(lengths) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    gather = np.repeat(seqs.offsets[:-1] + starts - offsets[:-1], lengths) + np.arange(offsets[-1])
    return Sequences(seqs.items[gather], offsets, seqs.users.copy(), seqs.timestamps[gather])


def _window_end(before: Sequences, upto: Sequences, targets: str) -> np.ndarray:
    """Where each row's target window ends: all of it, or just after its first event."""
    if targets == "first":
        return np.minimum(before.lengths + 1, upto.lengths)
    return upto.lengths


def _prefix_before(seqs: Sequences, cutoff: int) -> Sequences:
    """Each row's events with timestamp < cutoff (a prefix, since rows are time-ordered)."""
    row_of = np.repeat(np.arange(seqs.n_sequences), seqs.lengths)
    counts = np.bincount(row_of[seqs.timestamps < cutoff], minlength=seqs.n_sequences)
    return _slice(seqs, np.zeros_like(counts), counts)


def _drop_empty(seqs: Sequences) -> Sequences:
    return seqs.select(np.flatnonzero(seqs.lengths > 0))


def _rows_with_events(histories: Sequences, windows: Sequences) -> tuple[Sequences, Sequences]:
    rows = np.flatnonzero(windows.lengths > 0)
    return histories.select(rows), windows.select(rows)


__all__ = ["HeldOutReport", "Split", "SplitReport", "leave_one_out", "time_split"]
