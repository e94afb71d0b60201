from __future__ import annotations

import numpy as np
import pytest

from seqrec.data.sequences import Sequences
from seqrec.data.split import (
    global_temporal,
    global_temporal_reference,
    leave_one_out,
    leave_one_out_reference,
    take_prefixes,
    take_prefixes_reference,
    temporal_cutoff,
)


def random_data(seed: int, n_users: int = 60, max_len: int = 12, n_items: int = 30):
    """CSR items with distinct (user, position) interactions and per-user sorted timestamps (with ties)."""
    rng = np.random.default_rng(seed)
    lengths = rng.integers(0, max_len, n_users)
    seqs = Sequences.from_lengths(lengths, rng.integers(1, n_items + 1, lengths.sum()).astype(np.int32))
    offsets = np.asarray(seqs.offsets)
    times = np.concatenate([np.sort(rng.integers(0, 50, n)) for n in lengths]).astype(np.int64)
    return offsets, np.asarray(seqs.values), times


def as_rows(ev) -> list[tuple]:
    return [
        (int(u), ev.inputs[i].tolist(), int(t))
        for i, (u, t) in enumerate(zip(ev.users, ev.targets, strict=True))
    ]


@pytest.mark.parametrize("seed", range(5))
def test_leave_one_out_matches_reference(seed):
    offsets, items, _ = random_data(seed)
    split = leave_one_out(offsets, items)
    seqs = Sequences(offsets, items).tolist()
    train, valid, test = leave_one_out_reference(seqs)
    assert split.train.tolist() == train
    assert as_rows(split.valid) == valid
    assert as_rows(split.test) == test


def test_leave_one_out_short_users_train_only():
    seqs = Sequences.from_lists([[1], [2, 3], [4, 5, 6], []])
    split = leave_one_out(np.asarray(seqs.offsets), np.asarray(seqs.values))
    assert split.train.tolist() == [[1], [2, 3], [4], []]
    assert split.valid.users.tolist() == [2] and split.valid.targets.tolist() == [5]
    assert split.test.inputs.tolist() == [[4, 5]] and split.test.targets.tolist() == [6]
    assert split.info["train_only_users"] == 3


def _assert_no_leak(offsets, ev):
    """Each input is a strict prefix of the user's chronology ending right before the target position."""
    for i, u in enumerate(ev.users):
        n_in = len(ev.inputs[i])
        assert n_in < offsets[u + 1] - offsets[u]


@pytest.mark.parametrize("seed", range(5))
def test_no_eval_input_contains_target_or_later_interactions(seed):
    offsets, items, times = random_data(seed)
    # make every interaction unique so "contains the target interaction" is checkable by value
    items = np.arange(1, len(items) + 1, dtype=np.int32)
    for split in (leave_one_out(offsets, items), global_temporal(offsets, items, times, 0.7, 0.3, seed)):
        for ev in (split.valid, split.test):
            _assert_no_leak(offsets, ev)
            for i, u in enumerate(ev.users):
                user_items = items[offsets[u] : offsets[u + 1]].tolist()
                pos_target = user_items.index(int(ev.targets[i]))
                inp = ev.inputs[i].tolist()
                assert int(ev.targets[i]) not in inp
                assert all(user_items.index(x) < pos_target for x in inp)


@pytest.mark.parametrize("seed", range(5))
def test_global_temporal_matches_reference(seed):
    offsets, items, times = random_data(seed)
    split = global_temporal(offsets, items, times, 0.8, 0.25, seed)
    cutoff = temporal_cutoff(times, 0.8)
    assert split.info["cutoff"] == cutoff
    seqs = Sequences(offsets, items).tolist()
    tms = Sequences(offsets, times).tolist()
    train, valid, test = global_temporal_reference(seqs, tms, cutoff, set(split.valid.users.tolist()))
    assert split.train.tolist() == train
    assert as_rows(split.valid) == valid
    assert as_rows(split.test) == test


@pytest.mark.parametrize("seed", range(5))
def test_global_temporal_inputs_never_after_cutoff(seed):
    offsets, items, times = random_data(seed, n_users=100)
    split = global_temporal(offsets, items, times, 0.6, 0.2, seed)
    cutoff = split.info["cutoff"]
    for ev in (split.valid, split.test):
        input_times = take_prefixes(offsets, times, ev.users, ev.inputs.lengths())
        assert np.all(input_times.values <= cutoff)
    train_times = take_prefixes(offsets, times, np.arange(len(offsets) - 1), split.train.lengths())
    assert np.all(train_times.values <= cutoff)
    # test targets are the last post-cutoff interaction
    last_t = times[offsets[split.test.users + 1] - 1]
    assert np.all(last_t > cutoff)


def test_global_temporal_validation_is_seeded_and_removed_from_train():
    offsets, items, times = random_data(0, n_users=200)
    a = global_temporal(offsets, items, times, 0.9, 0.1, seed=1)
    b = global_temporal(offsets, items, times, 0.9, 0.1, seed=1)
    c = global_temporal(offsets, items, times, 0.9, 0.1, seed=2)
    assert a.valid.users.tolist() == b.valid.users.tolist() != c.valid.users.tolist()
    lengths = np.diff(offsets)
    cutoff = a.info["cutoff"]
    pool = np.array([(times[offsets[u] : offsets[u + 1]] <= cutoff).sum() for u in range(len(lengths))])
    eligible = np.flatnonzero(pool >= 2)
    assert len(a.valid) == round(0.1 * len(eligible))
    for i, u in enumerate(a.valid.users):
        assert len(a.train[u]) == pool[u] - 1
        assert a.valid.inputs[i].tolist() == a.train[u].tolist()
        assert a.valid.targets[i] == items[offsets[u] + pool[u] - 1]


@pytest.mark.parametrize("seed", range(8))
def test_take_prefixes_masked_path_matches_the_gather_reference(seed):
    offsets, values, _ = random_data(seed)
    rng = np.random.default_rng(seed)
    lengths = np.diff(offsets)
    for rows in (np.arange(len(lengths)), np.flatnonzero(rng.random(len(lengths)) < 0.5), np.zeros(0, np.int64),
                 rng.permutation(len(lengths))[:10]):  # fmt: skip
        take = rng.integers(0, lengths[rows] + 1) if len(rows) else np.zeros(0, np.int64)
        got = take_prefixes(offsets, values, rows, take)
        ref = take_prefixes_reference(offsets, values, rows, take)
        np.testing.assert_array_equal(got.offsets, ref.offsets)
        np.testing.assert_array_equal(got.values, ref.values)
        assert got.values.dtype == ref.values.dtype
