"""Train / validation / test splits over chronologically ordered per-user interactions.

Both splits are vectorised over CSR arrays; the ``*_reference`` functions are the plain-Python references
used by the tests. Every evaluation input is a *prefix* of the user's chronology that ends strictly before
the target, so no model input ever contains the target interaction or anything after it.

``leave_one_out`` (SASRec, Kang & McAuley 2018; BERT4Rec): per user the last interaction is the test target
(input: everything before it), the second-to-last the validation target (input: everything before it), and
training uses all but the last two. Users with fewer than 3 interactions cannot give both targets; they are
kept in training only (with their whole sequence) and are not evaluated.

``global_temporal`` (Gusak et al. 2025, as used in section 4.2 of "Faster and Memory-Efficient Training of
Sequential Recommendation Models for Large Catalogs"): ``cutoff = quantile(all timestamps,
temporal_quantile)`` (numpy's linear interpolation). Interactions with ``t <= cutoff`` form the
training/validation pool, later ones are test material. Test users are those with interactions on both
sides; the target is their LAST interaction after the cutoff and the input is their pool interactions only,
so every input timestamp is ``<= cutoff`` (deviation: the paper passes "all previous" interactions; this
project's spec wins and drops post-cutoff history). Validation: a seeded random ``valid_user_fraction`` (at
least one user) of the users with at least 2 pool interactions hold out their last pool interaction as
target, the rest of their pool is the input, and the held-out interaction is removed from their training
sequence. Training = pool sequences minus those targets.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from seqrec.data.sequences import EvalSet, Sequences


@dataclass(frozen=True)
class Split:
    train: Sequences  # num_users rows
    valid: EvalSet
    test: EvalSet
    info: dict = field(default_factory=dict)  # e.g. the temporal cutoff


def take_prefixes(
    offsets: np.ndarray, values: np.ndarray, rows: np.ndarray, lengths: np.ndarray
) -> Sequences:
    """Sequences made of ``values[offsets[r] : offsets[r] + n]`` for each (r, n) in zip(rows, lengths).

    When ``rows`` is strictly increasing (every split's case) the output is ``values`` minus what is left out,
    in place: a boolean mask cleared at the left-out positions (usually a few per row), then one masked copy,
    instead of an index per output value. Otherwise (and as the test reference) :func:`take_prefixes_reference`.
    """
    rows = np.asarray(rows, dtype=np.int64)
    lengths = np.asarray(lengths, dtype=np.int64)
    if len(rows) > 1 and not bool(np.all(rows[1:] > rows[:-1])):
        return take_prefixes_reference(offsets, values, rows, lengths)
    offsets = np.asarray(offsets, dtype=np.int64)
    n_rows = len(offsets) - 1
    kept = np.zeros(n_rows, dtype=np.int64)  # (n_rows,) prefix length kept of every row (0: not taken)
    kept[rows] = lengths
    drop_start = offsets[:-1] + kept  # each row's left-out tail: [drop_start, offsets[r + 1])
    drop_len = offsets[1:] - drop_start
    if len(drop_len) and int(drop_len.min()) < 0:  # a "prefix" longer than its row: only the reference reads on
        return take_prefixes_reference(offsets, values, rows, lengths)
    drop_offsets = np.zeros(n_rows + 1, dtype=np.int64)
    np.cumsum(drop_len, out=drop_offsets[1:])
    dropped = np.arange(int(drop_offsets[-1]), dtype=np.int64) + np.repeat(drop_start - drop_offsets[:-1], drop_len)
    mask = np.ones(len(values), dtype=bool)
    mask[dropped] = False
    out_offsets = np.zeros(len(rows) + 1, dtype=np.int64)
    np.cumsum(lengths, out=out_offsets[1:])
    return Sequences(out_offsets, np.asarray(values)[mask])


def take_prefixes_reference(
    offsets: np.ndarray, values: np.ndarray, rows: np.ndarray, lengths: np.ndarray
) -> Sequences:
    """:func:`take_prefixes` by one gather index per output value (any row order)."""
    rows = np.asarray(rows, dtype=np.int64)
    lengths = np.asarray(lengths, dtype=np.int64)
    out_offsets = np.zeros(len(rows) + 1, dtype=np.int64)
    np.cumsum(lengths, out=out_offsets[1:])
    total = int(out_offsets[-1])
    # position k of the output comes from offsets[row] + (k - out_offsets[row's slot])
    shift = np.repeat(offsets[rows] - out_offsets[:-1], lengths)
    idx = np.arange(total, dtype=np.int64) + shift
    return Sequences(out_offsets, np.asarray(values)[idx])


def _eval_set(offsets: np.ndarray, items: np.ndarray, users: np.ndarray, input_len: np.ndarray) -> EvalSet:
    users = np.asarray(users, dtype=np.int64)
    targets = np.asarray(items)[offsets[users] + input_len].astype(np.int64)
    return EvalSet(users=users, inputs=take_prefixes(offsets, items, users, input_len), targets=targets)


def leave_one_out(offsets: np.ndarray, items: np.ndarray) -> Split:
    """Leave-one-out split of CSR per-user chronological item sequences (see module doc)."""
    n_users = len(offsets) - 1
    lengths = np.diff(offsets)
    evaluated = np.flatnonzero(lengths >= 3)
    train_len = np.where(lengths >= 3, lengths - 2, lengths)
    train = take_prefixes(offsets, items, np.arange(n_users), train_len)
    valid = _eval_set(offsets, items, evaluated, lengths[evaluated] - 2)
    test = _eval_set(offsets, items, evaluated, lengths[evaluated] - 1)
    info = {"train_only_users": int(n_users - len(evaluated))}
    return Split(train, valid, test, info)


def leave_one_out_reference(seqs: list[list[int]]) -> tuple[list[list[int]], list[tuple], list[tuple]]:
    """Plain-Python leave-one-out: (train, [(user, input, target)] valid, [(user, input, target)] test)."""
    train, valid, test = [], [], []
    for u, s in enumerate(seqs):
        if len(s) < 3:
            train.append(list(s))
            continue
        train.append(list(s[:-2]))
        valid.append((u, list(s[:-2]), s[-2]))
        test.append((u, list(s[:-1]), s[-1]))
    return train, valid, test


def temporal_cutoff(times: np.ndarray, quantile: float) -> float:
    return float(np.quantile(np.asarray(times, dtype=np.float64), quantile))


def global_temporal(
    offsets: np.ndarray,
    items: np.ndarray,
    times: np.ndarray,
    quantile: float,
    valid_user_fraction: float,
    seed: int,
) -> Split:
    """Global temporal split (see module doc). ``times`` must be non-decreasing within each user."""
    n_users = len(offsets) - 1
    lengths = np.diff(offsets)
    cutoff = temporal_cutoff(times, quantile)
    times = np.asarray(times)
    # numpy compares integer times with the float cutoff in float64, as an explicit conversion would (no copy)
    in_pool = (times <= cutoff) if times.dtype.kind in "iuf" else (np.asarray(times, dtype=np.float64) <= cutoff)
    # within a user times are sorted, so the pool is a prefix of each sequence: its length is the count
    pooled = np.zeros(len(in_pool) + 1, dtype=np.int64)  # (nnz + 1,) pool interactions before each position
    np.cumsum(in_pool, out=pooled[1:])
    pool_len = pooled[offsets[1:]] - pooled[offsets[:-1]]
    post_len = lengths - pool_len

    test_users = np.flatnonzero((pool_len >= 1) & (post_len >= 1))
    test_targets = np.asarray(items)[offsets[test_users + 1] - 1].astype(np.int64)
    test = EvalSet(
        users=test_users.astype(np.int64),
        inputs=take_prefixes(offsets, items, test_users, pool_len[test_users]),
        targets=test_targets,
    )

    candidates = np.flatnonzero(pool_len >= 2)
    n_valid = 0
    if len(candidates):
        n_valid = min(len(candidates), max(1, int(round(valid_user_fraction * len(candidates)))))
    rng = np.random.default_rng(seed)
    valid_users = np.sort(rng.choice(candidates, size=n_valid, replace=False)) if n_valid else candidates[:0]
    valid = _eval_set(offsets, items, valid_users, pool_len[valid_users] - 1)

    train_len = pool_len.copy()
    train_len[valid_users] -= 1
    train = take_prefixes(offsets, items, np.arange(n_users), train_len)
    info = {
        "cutoff": cutoff,
        "pool_interactions": int(pool_len.sum()),
        "post_cutoff_interactions": int(post_len.sum()),
    }
    return Split(train, valid, test, info)


def global_temporal_reference(
    seqs: list[list[int]], times: list[list[float]], cutoff: float, valid_users: set[int]
) -> tuple[list[list[int]], list[tuple], list[tuple]]:
    """Plain-Python global temporal split for a given cutoff and validation user set."""
    train, valid, test = [], [], []
    for u, (s, t) in enumerate(zip(seqs, times, strict=True)):
        pool = [x for x, ts in zip(s, t, strict=True) if ts <= cutoff]
        post = [x for x, ts in zip(s, t, strict=True) if ts > cutoff]
        if pool and post:
            test.append((u, pool, post[-1]))
        if u in valid_users:
            valid.append((u, pool[:-1], pool[-1]))
            train.append(pool[:-1])
        else:
            train.append(pool)
    return train, valid, test
