"""Held-out parts of a split: targets deduplicated and filtered, every drop counted, and the
records a split returns (:class:`Split`, :class:`SplitReport`, :class:`HeldOutReport`)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from seqrec.data.sequences import HeldOut, Sequences


@dataclass(frozen=True)
class HeldOutReport:
    """Counts for one held-out part (validation or test), in the order the filters apply.

    Attributes:
        n_events: held-out events before any filtering (time split: events in the window).
        n_duplicate_targets: repeats of an item already held out for the same user (removed:
            a held-out item counts once).
        n_cold_item_targets: targets whose item is absent from ``Split.train`` (removed when
            ``drop_cold_items``).
        n_seen_targets: targets the user already has in their history (counted always;
            removed when ``seen_targets_removed``).
        n_cold_users: users with held-out events but an empty history (removed when
            ``drop_cold_users``, else kept with an empty history row).
        n_cold_user_targets: targets removed with those cold users.
        n_users_without_targets: users left with no target after the filters (removed).
        n_users: users (rows) evaluated.
        n_targets: targets evaluated.
    """

    n_events: int
    n_duplicate_targets: int
    n_cold_item_targets: int
    n_seen_targets: int
    n_cold_users: int
    n_cold_user_targets: int
    n_users_without_targets: int
    n_users: int
    n_targets: int
    seen_targets_removed: bool = False

    def __str__(self) -> str:
        seen = (f"{self.n_seen_targets:,} already-seen targets removed" if self.seen_targets_removed
                else f"{self.n_seen_targets:,} already-seen targets kept (unreachable when seen "
                     "items are filtered)")
        return (
            f"{self.n_users:,} users / {self.n_targets:,} targets from {self.n_events:,} events; "
            f"removed: {self.n_duplicate_targets:,} duplicate and "
            f"{self.n_cold_item_targets:,} cold-item targets, {self.n_cold_users:,} cold users "
            f"with {self.n_cold_user_targets:,} targets, {self.n_users_without_targets:,} users "
            f"left without targets; {seen}"
        )


@dataclass(frozen=True)
class SplitReport:
    """What a split kept and dropped.

    Attributes:
        method: ``"leave_one_out"`` or ``"time_split"``.
        n_users, n_interactions: size of the input dataset.
        n_train_users, n_train_interactions: size of ``Split.train``.
        n_short_users: leave-one-out only: users with fewer than 3 interactions, kept in
            ``Split.train`` with their whole sequence and not evaluated (0 for time splits).
        cutoff: time split: test cutoff in seconds (test = events at/after it); None for LOO.
        validation_cutoff: time split with validation: validation cutoff in seconds.
        validation: counts of the validation part (None without validation).
        test: counts of the test part.
    """

    method: str
    n_users: int
    n_interactions: int
    n_train_users: int
    n_train_interactions: int
    n_short_users: int
    cutoff: int | None
    validation_cutoff: int | None
    validation: HeldOutReport | None
    test: HeldOutReport

    def summary(self) -> str:
        """A few readable lines (also what ``str(report)`` gives)."""
        lines = [
            f"{self.method}: {self.n_users:,} users, {self.n_interactions:,} interactions",
            f"  train: {self.n_train_users:,} users, {self.n_train_interactions:,} interactions",
        ]
        if self.method == "leave_one_out":
            lines.append(f"  short users (< 3 interactions, train only): {self.n_short_users:,}")
        if self.cutoff is not None:
            lines.append(f"  cutoff: {self.cutoff} (validation cutoff: {self.validation_cutoff})")
        if self.validation is not None:
            lines.append(f"  validation: {self.validation}")
        lines.append(f"  test: {self.test}")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.summary()


@dataclass(frozen=True)
class Split:
    """Train sequences plus held-out parts.

    Attributes:
        train: sequences to fit the model on (never contains a validation/test target or, for
            time splits, any event at/after the validation cutoff — or the test cutoff when
            ``validation=False``).
        validation: validation inputs and targets, or None.
        test: test inputs and targets.
        report: counts of everything kept and dropped.
    """

    train: Sequences
    validation: HeldOut | None
    test: HeldOut
    report: SplitReport


def held_out_part(
    histories: Sequences,
    targets: Sequences,
    *,
    n_items: int,
    train_items: np.ndarray | None,
    drop_cold_users: bool,
    filter_already_seen: bool,
) -> tuple[HeldOut, HeldOutReport]:
    """Dedupe and filter targets, drop rows as asked, count everything."""
    n_events = len(targets.items)
    row_of = np.repeat(np.arange(targets.n_sequences), targets.lengths)
    key = row_of * (n_items + 1) + targets.items
    # first occurrence of each (row, item), kept in time order
    _, first = np.unique(key, return_index=True)
    keep = np.zeros(n_events, dtype=bool)
    keep[first] = True
    n_duplicates = n_events - len(first)
    n_cold_items = 0
    if train_items is not None:
        cold = keep & ~np.isin(targets.items, train_items)
        n_cold_items = int(cold.sum())
        keep &= ~cold
    history_rows = np.repeat(np.arange(histories.n_sequences), histories.lengths)
    history_key = history_rows * (n_items + 1) + histories.items
    seen = keep & np.isin(key, history_key)
    n_seen = int(seen.sum())
    if filter_already_seen:
        keep &= ~seen
    targets = _compress(targets, keep)
    cold_users = histories.lengths == 0
    n_cold_users = int(cold_users.sum())
    n_cold_user_targets = 0
    rows = np.ones(targets.n_sequences, dtype=bool)
    if drop_cold_users:
        n_cold_user_targets = int(targets.lengths[cold_users].sum())
        rows &= ~cold_users
    without_targets = rows & (targets.lengths == 0)
    rows &= ~without_targets
    rows = np.flatnonzero(rows)
    held_out = HeldOut(histories.select(rows), targets.select(rows))
    report = HeldOutReport(
        n_events=n_events,
        n_duplicate_targets=n_duplicates,
        n_cold_item_targets=n_cold_items,
        n_seen_targets=n_seen,
        n_cold_users=n_cold_users,
        n_cold_user_targets=n_cold_user_targets,
        n_users_without_targets=int(without_targets.sum()),
        n_users=len(rows),
        n_targets=len(held_out.targets.items),
        seen_targets_removed=filter_already_seen,
    )
    return held_out, report


def _compress(seqs: Sequences, keep: np.ndarray) -> Sequences:
    """Keep the flagged entries, preserving rows (which may become empty)."""
    row_of = np.repeat(np.arange(seqs.n_sequences), seqs.lengths)
    counts = np.bincount(row_of[keep], minlength=seqs.n_sequences)
    offsets = np.zeros(seqs.n_sequences + 1, dtype=np.int64)
    np.cumsum(counts, out=offsets[1:])
    return Sequences(seqs.items[keep], offsets, seqs.users, seqs.timestamps[keep])
