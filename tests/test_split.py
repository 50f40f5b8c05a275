"""leave_one_out / time_split: hand-written expectations and the no-leak guarantees."""

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from seqrec.data import build_dataset, leave_one_out, time_split

DAY = 86_400


def _dataset(rows: list[tuple[int, int, int]]):
    frame = pd.DataFrame(rows, columns=["user_id", "item_id", "timestamp"])
    return build_dataset(frame)


def _lists(seqs):
    return [seqs.row(i).tolist() for i in range(seqs.n_sequences)]


# users 0..2; item ids equal indices (1..6 all present)
LOO_ROWS = [
    (0, 1, 1), (0, 2, 2), (0, 3, 3), (0, 4, 4),  # 4 events
    (1, 5, 1), (1, 6, 2),  # 2 events: train only
    (2, 1, 1), (2, 2, 2), (2, 1, 3),  # last item already seen
]  # fmt: skip


def test_leave_one_out_hand_written():
    split = leave_one_out(_dataset(LOO_ROWS))
    assert _lists(split.train) == [[1, 2], [5, 6], [1]]
    assert split.train.users.tolist() == [0, 1, 2]
    assert split.validation.targets.users.tolist() == [0, 2]
    assert _lists(split.validation.histories) == [[1, 2], [1]]
    assert _lists(split.validation.targets) == [[3], [2]]
    assert _lists(split.test.histories) == [[1, 2, 3], [1, 2]]
    assert _lists(split.test.targets) == [[4], [1]]
    assert split.report.n_short_users == 1
    assert split.report.test.n_users == 2


def test_leave_one_out_filter_already_seen_drops_and_counts():
    split = leave_one_out(_dataset(LOO_ROWS), filter_already_seen=True)
    assert split.test.targets.users.tolist() == [0]
    assert split.report.test.n_seen_targets == 1
    assert split.report.test.n_users_without_targets == 1
    assert split.report.validation.n_seen_targets == 0
    assert "short users" in str(split.report)


@settings(max_examples=50, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 5), st.integers(0, 8)), min_size=1, max_size=60))
def test_leave_one_out_train_never_holds_held_out_positions(pairs):
    rows = [(u, i, t) for t, (u, i) in enumerate(pairs)]
    dataset = _dataset(rows)
    split = leave_one_out(dataset)
    seqs = dataset.sequences
    for part, cut in ((split.validation, 2), (split.test, 1)):
        for row, user in enumerate(part.targets.users):
            full = seqs.row(user)
            # the train row is a strict prefix ending before the held-out position
            assert len(split.train.row(user)) == len(full) - 2
            assert part.targets.row(row).tolist() == [full[len(full) - cut]]
            assert part.histories.row(row).tolist() == full[: len(full) - cut].tolist()
    # train timestamps are all strictly before each evaluated user's validation event
    for user in split.validation.targets.users:
        held = seqs.timestamps[seqs.offsets[user] : seqs.offsets[user + 1]][-2:]
        train_ts = split.train.timestamps[split.train.offsets[user] : split.train.offsets[user + 1]]
        assert len(train_ts) == 0 or train_ts.max() <= held.min()


# times in days; cutoff at day 10 (last_days=3 with t_max = day 12 + 86399 s)
TIME_ROWS = [
    (0, 1, 1 * DAY), (0, 2, 5 * DAY), (0, 3, 8 * DAY), (0, 4, 11 * DAY), (0, 4, 12 * DAY),
    (0, 2, 12 * DAY),
    (1, 1, 2 * DAY), (1, 4, 3 * DAY), (1, 5, 11 * DAY),  # item 5 only after the cutoff: cold
    (2, 3, 11 * DAY),  # user 2 has nothing before the cutoff: cold user
    (3, 3, 0), (3, 2, 3 * DAY), (3, 1, 7 * DAY), (3, 6, 12 * DAY + 86_399),
]  # fmt: skip


def test_time_split_without_validation_hand_written():
    split = time_split(_dataset(TIME_ROWS), cutoff=10 * DAY, validation=False)
    assert split.validation is None
    assert split.train.users.tolist() == [0, 1, 3]
    assert _lists(split.train) == [[1, 2, 3], [1, 4], [3, 2, 1]]
    # user 0: targets 4, 2 (4 deduplicated); user 1: 5 is cold; user 2: cold user; user 3: 6 cold
    assert split.test.targets.users.tolist() == [0]
    assert _lists(split.test.targets) == [[4, 2]]
    assert _lists(split.test.histories) == [[1, 2, 3]]
    test = split.report.test
    assert (test.n_events, test.n_duplicate_targets, test.n_cold_item_targets) == (6, 1, 2)
    assert (test.n_cold_users, test.n_cold_user_targets, test.n_users_without_targets) == (1, 1, 2)
    assert split.report.cutoff == 10 * DAY


def test_time_split_keeps_cold_users_and_items_when_asked():
    split = time_split(
        _dataset(TIME_ROWS),
        cutoff=10 * DAY,
        validation=False,
        drop_cold_users=False,
        drop_cold_items=False,
        filter_already_seen=True,
    )
    assert split.test.targets.users.tolist() == [0, 1, 2, 3]
    assert _lists(split.test.targets) == [[4], [5], [3], [6]]  # user 0's item 2 already seen
    assert _lists(split.test.histories) == [[1, 2, 3], [1, 4], [], [3, 2, 1]]
    assert split.report.test.n_seen_targets == 1


def test_time_split_last_days_gives_the_same_cutoff():
    t_max = 12 * DAY + 86_399
    split = time_split(_dataset(TIME_ROWS), last_days=3, validation=False)
    assert split.report.cutoff == t_max + 1 - 3 * DAY == 10 * DAY


def test_time_split_validation_uses_an_inner_window_and_train_stops_before_it():
    split = time_split(_dataset(TIME_ROWS), cutoff=10 * DAY)
    # window = t_max + 1 - cutoff = 3 days, so the validation cutoff is day 7
    assert split.report.validation_cutoff == 7 * DAY
    assert _lists(split.train) == [[1, 2], [1, 4], [3, 2]]
    assert split.validation.targets.users.tolist() == [0, 3]
    assert _lists(split.validation.targets) == [[3], [1]]
    assert _lists(split.validation.histories) == [[1, 2], [3, 2]]
    # test histories hold the validation period (user 0's item 3); users 1 and 3 have only
    # cold targets (items 5 and 6 are not in train)
    assert _lists(split.test.histories) == [[1, 2, 3]]
    assert _lists(split.test.targets) == [[4, 2]]


def test_time_split_needs_exactly_one_window_parameter():
    dataset = _dataset(TIME_ROWS)
    with pytest.raises(ValueError, match="exactly one of cutoff, last_days, last_fraction"):
        time_split(dataset)
    with pytest.raises(ValueError, match="exactly one of"):
        time_split(dataset, cutoff=5, last_days=1.0)
    with pytest.raises(ValueError, match="last_fraction must be in"):
        time_split(dataset, last_fraction=1.5)
    with pytest.raises(ValueError, match="leaves train or test empty"):
        time_split(dataset, cutoff=0)


@settings(max_examples=50, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(0, 6), st.integers(0, 9), st.integers(0, 100)),
        min_size=2,
        max_size=80,
    ),
    st.floats(0.05, 0.45),
)
def test_time_split_model_never_sees_an_event_at_or_after_the_cutoff(rows, fraction):
    dataset = _dataset(rows)
    ts = dataset.sequences.timestamps
    if ts.min() == ts.max():
        return
    try:
        split = time_split(dataset, last_fraction=fraction, filter_already_seen=True)
    except ValueError:
        return  # a window that leaves a part empty is refused, not silently mis-split
    cutoff, validation_cutoff = split.report.cutoff, split.report.validation_cutoff
    assert split.train.timestamps.max() < validation_cutoff < cutoff
    assert split.test.histories.timestamps.max(initial=-1) < cutoff
    assert split.validation.histories.timestamps.max(initial=-1) < validation_cutoff
    assert (split.test.targets.timestamps >= cutoff).all()
    assert (split.validation.targets.timestamps >= validation_cutoff).all()
    assert (split.validation.targets.timestamps < cutoff).all()
    # every target is in train (cold items dropped) and not in the user's history
    train_items = set(split.train.items.tolist())
    for part in (split.validation, split.test):
        assert (part.targets.users == part.histories.users).all()
        for row in range(part.targets.n_sequences):
            targets = part.targets.row(row).tolist()
            assert len(targets) == len(set(targets)) > 0
            assert set(targets) <= train_items
            assert not set(targets) & set(part.histories.row(row).tolist())
    # nothing lost: evaluated + every counted removal = held-out events
    r = split.report.test
    removed = r.n_duplicate_targets + r.n_cold_item_targets + r.n_seen_targets
    assert r.n_targets + removed + r.n_cold_user_targets == r.n_events
    assert np.all(np.diff(split.test.targets.users) > 0)


def test_time_split_first_targets_keep_only_each_users_first_event_after_the_cutoff():
    split = time_split(_dataset(TIME_ROWS), cutoff=10 * DAY, validation=False, targets="first",
                       drop_cold_items=False, drop_cold_users=False)
    # user 0: 4 (day 11), not the later 4 and 2; user 1: 5; user 2: 3; user 3: 6
    assert _lists(split.test.targets) == [[4], [5], [3], [6]]
    with pytest.raises(ValueError, match="targets='next'"):
        time_split(_dataset(TIME_ROWS), cutoff=10 * DAY, targets="next")


def test_repeat_consumption_is_evaluated_consistently_or_warned_about():
    """A log where every event is repeated: with seen items filtered, every kept target is
    unreachable (warned, counted); the repeat mode keeps them reachable."""
    import warnings

    from seqrec import PopularRecommender, evaluate

    rows = [(u, i, 2 * t + r) for u in range(30) for t, i in enumerate([1 + u % 5, 6, 7])
            for r in (0, 1)]
    dataset = _dataset(rows)
    split = leave_one_out(dataset)  # keeps already-seen targets
    model = PopularRecommender()
    model.fit(dataset, split.train)
    with pytest.warns(UserWarning, match="30 of 30 targets are already in their user's history"):
        filtered = evaluate(model, split.test, metrics=("hit_rate",))
    assert filtered.means["hit_rate@10"] == 0.0
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        repeat = evaluate(model, split.test, metrics=("hit_rate",), filter_viewed=False)
    assert repeat.means["hit_rate@10"] == 1.0
