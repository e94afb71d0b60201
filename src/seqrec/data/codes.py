"""Vectorised kernels of :func:`seqrec.data.preprocess.preprocess` over integer codes of the ids.

The plain polars formulation (:func:`~seqrec.data.preprocess.preprocess_reference`) sorts and filters frames
keyed by the original ids (often strings) and sorts twice; at 20M rows that is most of a minute. Here every id
becomes an integer code once, and the rest is numpy on flat arrays: one stable sort on a combined
``code * span + time`` key, the k-core as bincounts over a mask, dense ids by compaction. Each kernel has a plain
counterpart it must agree with exactly (tests/data/test_data_codes.py).
"""

from __future__ import annotations

import numpy as np
import polars as pl

INT64_MAX = 2**63 - 1
LUT_FACTOR = 8  # integer ids whose range is at most 8x the number of rows (or 2**22) use a lookup table
_LUT_MIN = 1 << 22
_LUT_DTYPES = (pl.Int8, pl.Int16, pl.Int32, pl.Int64, pl.UInt8, pl.UInt16, pl.UInt32)


def integer_codes(values: pl.Series) -> tuple[pl.Series, np.ndarray] | None:
    """Integer ids with a bounded range: (sorted unique ids, (n,) int32/int64 position of each value in them),
    by a presence table over ``min..max`` (O(n), no hashing). None when the ids do not qualify."""
    if values.dtype not in _LUT_DTYPES or len(values) == 0:
        return None
    lo, hi = int(values.min()), int(values.max())  # type: ignore[arg-type]
    if hi - lo + 1 > max(LUT_FACTOR * len(values), _LUT_MIN):
        return None
    shifted = values.to_numpy().astype(np.int64, copy=False) - lo  # (n,) in 0..hi-lo
    present = np.zeros(hi - lo + 1, dtype=bool)
    present[shifted] = True
    rank = np.cumsum(present, dtype=np.int64) - 1  # (hi-lo+1,) position among the present ids
    rank = rank.astype(np.int32) if len(rank) < 2**31 else rank  # half the bytes to gather
    ids = pl.Series(values.name, np.flatnonzero(present) + lo).cast(values.dtype)
    return ids, rank[shifted]


def hashed_codes(values: pl.Series, ids: pl.Series) -> np.ndarray:
    """(n,) int64 position of each value in ``ids`` (which holds every value once): the plain formulation."""
    positions = pl.Series("code", np.arange(len(ids), dtype=np.int64))
    return values.replace_strict(ids, positions, return_dtype=pl.Int64).to_numpy()


def chronological_order(codes: np.ndarray, times: np.ndarray) -> np.ndarray:
    """(n,) permutation sorting rows by (code, time), rows with equal keys in input order (file order).

    One stable argsort of ``code * (span + 1) + (time - min)`` when the times are integers (or integral floats)
    and that key fits in int64; otherwise numpy's stable two-key ``lexsort`` (slower, same order)."""
    if len(times) == 0:
        return np.zeros(0, dtype=np.int64)
    t = times
    if t.dtype.kind == "f":
        if not (np.abs(t).max() < 2**62 and np.array_equal(t, np.round(t))):
            return np.lexsort((times, codes))
        t = t.astype(np.int64)  # exact for integral floats below 2**62; -0.0 and 0.0 both become 0 (equal)
    lo, hi = int(t.min()), int(t.max())
    n_codes = int(codes.max()) + 1
    if n_codes * (hi - lo + 1) > INT64_MAX:
        return np.lexsort((times, codes))
    key = codes.astype(np.int64)  # (n,) code * (span + 1) + (time - min), built in place
    key *= hi - lo + 1
    if t.dtype == np.uint64:  # values may exceed int64: subtract in uint64 first (the difference fits)
        key += (t - np.uint64(lo)).astype(np.int64)
    else:
        key += t  # cast to int64 by numpy (every integer dtype but uint64 fits)
        key -= lo
    return np.argsort(key, kind="stable")


def kcore_mask(
    users: np.ndarray, items: np.ndarray, count_u: np.ndarray, count_i: np.ndarray, min_user: int, min_item: int
) -> tuple[np.ndarray, int]:
    """Iterative k-core over code arrays: (n,) bool rows kept, and the number of passes.

    ``count_u`` / ``count_i`` are the rows per user / item (bincounts of ``users`` / ``items``); they are
    updated IN PLACE to the counts of the kept rows. The same loop as :func:`seqrec.data.preprocess.kcore`
    (users then items each pass, until a pass removes nothing), so the passes agree; the counts are kept up to
    date by subtracting the rows each step removes (few) instead of being recounted from all rows."""
    keep = np.ones(len(users), dtype=bool)
    passes = 0
    if min_user <= 1 and min_item <= 1:
        return keep, passes
    sides = [(users, count_u, min_user), (items, count_i, min_item)]
    while True:
        passes += 1
        removed = 0
        for k, (codes, counts, least) in enumerate(sides):
            if least <= 1:
                continue
            bad = (counts > 0) & (counts < least)  # ids below the threshold that still have rows
            if not bad.any():
                continue
            drop = bad[codes] & keep  # (n,) rows removed by this step
            keep &= ~drop
            removed += 1
            counts[bad] = 0
            other_codes, other_counts, _ = sides[1 - k]
            other_counts -= np.bincount(other_codes[drop], minlength=len(other_counts))
        if removed == 0:
            return keep, passes


def compact(codes: np.ndarray, counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Codes of the rows kept, with ``counts`` rows per code → (codes renumbered 0..m-1 in the same order,
    (m,) old code of each new one)."""
    present = counts > 0
    kept = np.flatnonzero(present)
    if len(kept) == len(counts):  # nothing to renumber
        return codes, kept
    new = np.cumsum(present, dtype=np.int64) - 1
    return new[codes], kept


def group_order(users: np.ndarray, rank: np.ndarray) -> np.ndarray:
    """Rows grouped by user (contiguous, ascending code) → the permutation that orders the groups by
    ``rank[user]`` while keeping each group's rows in place (a block permutation, O(n))."""
    counts = np.bincount(users, minlength=len(rank))
    starts = np.zeros(len(rank), dtype=np.int64)
    np.cumsum(counts[:-1], out=starts[1:])
    by_rank = np.argsort(rank, kind="stable")  # (m,) code of the user at each dense position
    lengths = counts[by_rank]
    out_starts = np.zeros(len(rank), dtype=np.int64)
    np.cumsum(lengths[:-1], out=out_starts[1:])
    return np.repeat(starts[by_rank] - out_starts, lengths) + np.arange(len(users), dtype=np.int64)
