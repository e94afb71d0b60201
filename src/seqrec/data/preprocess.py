"""Preprocessing: implicit feedback, duplicates, iterative k-core, stable chronology and dense ids.

Input is the raw interaction table every reader produces (polars): ``user`` and ``item`` (str, or integers),
``timestamp`` (int64 or float64; the line order when the source has none) and optionally ``rating`` (float64).
Steps, in order:

1. implicit conversion: with ``rating_threshold`` keep rows whose rating is ``>=`` the threshold;
2. stable chronological order: sort by (user, timestamp, file row) so interactions sharing a timestamp keep
   the order of the file (ML-100K has many such ties);
3. duplicates (``keep`` all, or the ``first`` / ``last`` occurrence of each (user, item) pair, in that order);
4. iterative k-core: drop users with fewer than ``min_user_interactions`` and items with fewer than
   ``min_item_interactions`` interactions, repeated until nothing changes (0 or 1 turns a side off);
5. dense ids. Users get ``0..num_users-1`` and items ``1..num_items`` (0 is padding), both assigned in sorted
   order of the original id: numerically when every id of that kind is an integer (so ML-100K item ``"7"``
   stays item 7 and SASRec's 1-based ids are unchanged when nothing is filtered), lexicographically otherwise.
   This order does not depend on the file order, so the same set of ids always gets the same dense ids.

:func:`preprocess` runs these steps on integer codes of the ids (:mod:`seqrec.data.codes`, about 3x faster on
20M rows); :func:`preprocess_reference` is the plain polars formulation it is tested against.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import polars as pl

from seqrec.data.codes import chronological_order, compact, group_order, hashed_codes, integer_codes, kcore_mask
from seqrec.errors import DataError

PAD = "<pad>"
_INT64_TEXT = r"^-?\d{1,18}$"  # decimal integers that fit int64: sorted numerically (see _sorted_ids)


@dataclass(frozen=True)
class Interactions:
    """Preprocessed interactions as flat arrays sorted by (dense user, timestamp, file row)."""

    users: np.ndarray  # (n,) int64 dense user id, non-decreasing
    items: np.ndarray  # (n,) int32 dense item id in 1..num_items
    times: np.ndarray  # (n,) int64 or float64 timestamps, non-decreasing within a user
    user_ids: np.ndarray  # (num_users,) original user ids (str)
    item_ids: np.ndarray  # (num_items + 1,) original item ids (str); [0] == "<pad>"
    stats: dict = field(default_factory=dict)

    @property
    def num_users(self) -> int:
        return len(self.user_ids)

    @property
    def num_items(self) -> int:
        return len(self.item_ids) - 1

    def offsets(self) -> np.ndarray:
        """(num_users + 1,) CSR offsets of each user's interactions."""
        counts = np.bincount(self.users, minlength=self.num_users)
        offsets = np.zeros(self.num_users + 1, dtype=np.int64)
        np.cumsum(counts, out=offsets[1:])
        return offsets


def _sorted_ids(values: pl.Series) -> pl.Series:
    """Unique ids sorted numerically when all are integers, lexicographically otherwise (see module doc)."""
    uniq = values.unique()
    if uniq.dtype.is_integer():
        return uniq.sort()
    if len(uniq) and bool(uniq.str.contains(_INT64_TEXT).all()):
        frame = pl.DataFrame({"id": uniq, "num": uniq.cast(pl.Int64)})
        return frame.sort(["num", "id"])["id"]
    if len(uniq) and bool(uniq.str.contains(r"^-?\d+$").all()):
        # integers beyond int64 (e.g. 2**64): they stay strings, ordered by their exact value in Python
        return pl.Series(uniq.name, sorted(uniq.to_list(), key=lambda v: (int(v), v)), dtype=pl.String)
    return uniq.sort()


def _check_timestamps(df: pl.DataFrame, source: str, uniques: bool = False) -> None:
    """Defensive (readers already refuse these): finite numeric timestamps, non-null ids without NUL characters
    (numpy str arrays drop trailing NULs, which would merge "a\\x00" into "a"). ``uniques``: look for NULs
    among the distinct ids first (far fewer strings); the row is only searched for when there is one."""
    for col in ("user", "item"):
        if df[col].null_count():
            row = int(df[col].is_null().arg_true()[0])
            raise DataError(f"{source}: interaction {row + 1}: missing {col} id")
        values = df[col].unique() if uniques and df[col].dtype == pl.String else df[col]
        if df[col].dtype == pl.String and bool(values.str.contains("\x00", literal=True).any()):
            row = int(df[col].str.contains("\x00", literal=True).arg_true()[0])
            raise DataError(f"{source}: interaction {row + 1}: {col} id contains a NUL character")
    ts = df["timestamp"]
    if not ts.dtype.is_numeric():
        raise DataError(f"{source}: timestamps must be numbers, got type {ts.dtype}")
    bad = ts.is_null() | ~ts.is_finite() if ts.dtype.is_float() else ts.is_null()
    if bool(bad.any()):
        row = int(bad.arg_true()[0])
        raise DataError(f"{source}: interaction {row + 1}: timestamp must be a finite number, got {ts[row]!r}")


def _counts(df: pl.DataFrame) -> dict:
    return {"users": df["user"].n_unique(), "items": df["item"].n_unique(), "interactions": df.height}


def kcore(df: pl.DataFrame, min_user: int, min_item: int) -> tuple[pl.DataFrame, int]:
    """Iterative k-core filter (order preserving); returns the filtered frame and the number of passes."""
    passes = 0
    if min_user <= 1 and min_item <= 1:
        return df, passes
    while True:
        passes += 1
        before = df.height
        if min_user > 1:
            df = df.filter(pl.len().over("user") >= min_user)
        if min_item > 1:
            df = df.filter(pl.len().over("item") >= min_item)
        if df.height == before:
            return df, passes


def kcore_reference(pairs: list[tuple[str, str]], min_user: int, min_item: int) -> list[tuple[str, str]]:
    """Plain-Python k-core used to test :func:`kcore`."""
    while True:
        before = len(pairs)
        if min_user > 1:
            cu: dict[str, int] = {}
            for u, _ in pairs:
                cu[u] = cu.get(u, 0) + 1
            pairs = [p for p in pairs if cu[p[0]] >= min_user]
        if min_item > 1:
            ci: dict[str, int] = {}
            for _, i in pairs:
                ci[i] = ci.get(i, 0) + 1
            pairs = [p for p in pairs if ci[p[1]] >= min_item]
        if len(pairs) == before:
            return pairs


def _check_table(df: pl.DataFrame, source: str) -> None:
    for col in ("user", "item", "timestamp"):
        if col not in df.columns:
            have = ", ".join(df.columns)
            raise DataError(f"{source}: interaction table lacks column '{col}' (has: {have})")
    if df.height == 0:
        raise DataError(f"{source}: no interactions found (empty file?)")


def preprocess(
    df: pl.DataFrame,
    *,
    rating_threshold: float | None = None,
    duplicates: str = "keep",
    min_user_interactions: int = 0,
    min_item_interactions: int = 0,
    source: str = "data",
) -> tuple[Interactions, pl.DataFrame]:
    """Raw interactions → :class:`Interactions`, plus the item map (columns ``item`` str, ``dense`` int32).

    ``source`` names the input in error messages. The steps of the module doc run on integer codes of the ids
    (:mod:`seqrec.data.codes`), with exactly the result of :func:`preprocess_reference`; that plain formulation
    also takes the inputs this path does not cover (a caller's own ``row`` column, non-numeric timestamps).
    ``stats["step_seconds"]`` times the steps.
    """
    # Over 80 lines on purpose: the steps of the module doc in order, each a few lines on the same three arrays
    # (users, items, times); split into helpers they would pass those arrays and the stats dict around.
    _check_table(df, source)
    ts = df["timestamp"].dtype
    if "row" in df.columns or not (ts.is_integer() or ts.is_float()):
        return preprocess_reference(
            df, rating_threshold=rating_threshold, duplicates=duplicates, source=source,
            min_user_interactions=min_user_interactions, min_item_interactions=min_item_interactions,
        )  # fmt: skip
    steps: dict[str, float] = {}
    clock = [time.perf_counter()]

    def lap(name: str) -> None:
        now = time.perf_counter()
        steps[name], clock[0] = round(now - clock[0], 4), now

    stats: dict = {"raw_interactions": df.height}
    _check_timestamps(df, source, uniques=True)
    lap("checks")
    for col in ("user", "item"):  # as in the reference: other id types are compared as strings
        if not (df[col].dtype == pl.String or df[col].dtype.is_integer()):
            df = df.with_columns(pl.col(col).cast(pl.String))
    user_ids, users = _codes(df["user"])  # (num raw users,) sorted ids; (n,) int64 position in them
    item_ids, items = _codes(df["item"])
    stats["raw_users"], stats["raw_items"] = len(user_ids), len(item_ids)
    # (n,) the column's own dtype, as in the reference, except integral floats: int64 now (the reference converts
    # at the end, and a subset of integral floats is integral, so the result is the same)
    times = _times_array(df["timestamp"].to_numpy())
    lap("codes")

    if rating_threshold is not None:
        if "rating" not in df.columns:
            raise DataError(
                f"{source}: data.rating_threshold={rating_threshold} needs a rating column "
                f"(set data.rating_col; columns: {', '.join(df.columns)})"
            )
        keep = (df["rating"] >= rating_threshold).fill_null(False).to_numpy()
        users, items, times = users[keep], items[keep], times[keep]
        stats["after_rating_threshold"] = len(users)
    if duplicates not in ("keep", "first", "last"):
        raise DataError(f"data.duplicates: expected keep, first or last, got {duplicates!r}")
    order = chronological_order(users, times)  # stable chronology: ties keep file order
    users, items, times = users[order], items[order], times[order]
    lap("sort")
    if duplicates != "keep":
        pair = pl.Series(users.astype(np.int64) * len(item_ids) + items)  # (n,) one int per (user, item)
        keep = (pair.is_first_distinct() if duplicates == "first" else pair.is_last_distinct()).to_numpy()
        users, items, times = users[keep], items[keep], times[keep]
        stats["after_duplicates"] = len(users)

    count_u = np.bincount(users, minlength=len(user_ids))  # (num raw users,) rows per user
    count_i = np.bincount(items, minlength=len(item_ids))
    before = _code_counts(count_u, count_i, len(users))
    keep, passes = kcore_mask(users, items, count_u, count_i, min_user_interactions, min_item_interactions)
    if not keep.all():
        users, items, times = users[keep], items[keep], times[keep]
    stats["kcore_passes"] = passes
    stats["kcore"] = {
        "min_user": min_user_interactions, "min_item": min_item_interactions, "passes": passes,
        "before": before, "after": _code_counts(count_u, count_i, len(users)),
    }  # fmt: skip
    if len(users) == 0:
        raise DataError(
            f"{source}: no interactions left after filtering (rating_threshold={rating_threshold}, "
            f"min_user_interactions={min_user_interactions}, min_item_interactions={min_item_interactions})"
        )
    lap("kcore")
    out = _densify_codes(users, items, times, (user_ids, count_u), (item_ids, count_i), stats)
    lap("dense_ids")
    stats["step_seconds"] = steps
    return out


def _codes(values: pl.Series) -> tuple[pl.Series, np.ndarray]:
    """(sorted unique ids as :func:`_sorted_ids` orders them, (n,) position of each value in them).

    Integer ids, and strings that are all decimal integers (files read as text) where no two spell the same
    number ("7" and "07"), take the lookup table of :func:`integer_codes`: their sorted order is the numeric one,
    so the numeric rank is the position. Other strings are hashed."""
    fast = integer_codes(values)
    if fast is not None:
        return fast
    ids = _sorted_ids(values)
    if values.dtype == pl.String and len(ids) and bool(ids.str.contains(_INT64_TEXT).all()):
        fast = integer_codes(values.cast(pl.Int64))
        if fast is not None and len(fast[0]) == len(ids):
            return ids, fast[1]
    return ids, hashed_codes(values, ids)


def _code_counts(count_u: np.ndarray, count_i: np.ndarray, rows: int) -> dict:
    return {"users": int(np.count_nonzero(count_u)), "items": int(np.count_nonzero(count_i)), "interactions": rows}


def _final_rank(kept: pl.Series) -> np.ndarray | None:
    """(m,) dense position of each kept id when the kept ids alone order differently (strings that are all
    integers once the others are filtered out: numeric instead of lexicographic); None when unchanged."""
    final = _sorted_ids(kept)
    return None if final.equals(kept) else hashed_codes(kept, final)


def _densify_codes(
    users: np.ndarray,
    items: np.ndarray,
    times: np.ndarray,
    user_side: tuple[pl.Series, np.ndarray],
    item_side: tuple[pl.Series, np.ndarray],
    stats: dict,
) -> tuple[Interactions, pl.DataFrame]:
    """Step 5 on codes: renumber the kept users / items in the order of their original ids (see the module doc);
    rows stay grouped by user in chronological order. ``*_side``: (raw sorted ids, kept rows per id)."""
    (user_ids, count_u), (item_ids, count_i) = user_side, item_side
    users, kept_u = compact(users, count_u)
    items, kept_i = compact(items, count_i)
    user_kept, item_kept = user_ids.gather(kept_u), item_ids.gather(kept_i)
    rank = _final_rank(user_kept)
    if rank is not None:
        perm = group_order(users, rank)
        users, items, times = rank[users][perm], items[perm], times[perm]
        user_kept = user_kept.gather(np.argsort(rank))
    rank = _final_rank(item_kept)
    if rank is not None:
        items = rank[items]
        item_kept = item_kept.gather(np.argsort(rank))
    item_dense = pl.Series("dense", np.arange(1, len(item_kept) + 1, dtype=np.int32))
    inter = Interactions(
        users=users.astype(np.int64, copy=False),
        items=(items + 1).astype(np.int32),
        times=_times_array(times),
        user_ids=np.asarray(user_kept.cast(pl.String).to_list(), dtype=str),
        item_ids=np.asarray([PAD, *item_kept.cast(pl.String).to_list()], dtype=str),
        stats=stats,
    )
    item_map = pl.DataFrame({"item": item_kept.cast(pl.String), "dense": item_dense})
    return inter, item_map


def preprocess_reference(
    df: pl.DataFrame,
    *,
    rating_threshold: float | None = None,
    duplicates: str = "keep",
    min_user_interactions: int = 0,
    min_item_interactions: int = 0,
    source: str = "data",
) -> tuple[Interactions, pl.DataFrame]:
    """The plain polars formulation of :func:`preprocess` (frames keyed by the original ids, two sorts): the
    reference the fast path is tested against, and the path for inputs it does not cover."""
    _check_table(df, source)
    stats: dict = {"raw_interactions": df.height}
    _check_timestamps(df, source)
    stats["raw_users"] = df["user"].n_unique()
    stats["raw_items"] = df["item"].n_unique()
    if "row" not in df.columns:
        df = df.with_row_index("row")
    for col in ("user", "item"):  # ids are strings; integer columns are kept as such until the end (faster)
        if not (df[col].dtype == pl.String or df[col].dtype.is_integer()):
            df = df.with_columns(pl.col(col).cast(pl.String))

    if rating_threshold is not None:
        if "rating" not in df.columns:
            raise DataError(
                f"{source}: data.rating_threshold={rating_threshold} needs a rating column "
                f"(set data.rating_col; columns: {', '.join(c for c in df.columns if c != 'row')})"
            )
        df = df.filter(pl.col("rating") >= rating_threshold)
        stats["after_rating_threshold"] = df.height

    df = df.sort(["user", "timestamp", "row"])  # stable chronology: ties keep file order
    if duplicates in ("first", "last"):
        df = df.unique(subset=["user", "item"], keep=duplicates, maintain_order=True)
        stats["after_duplicates"] = df.height
    elif duplicates != "keep":
        raise DataError(f"data.duplicates: expected keep, first or last, got {duplicates!r}")

    before = _counts(df)
    df, passes = kcore(df, min_user_interactions, min_item_interactions)
    stats["kcore_passes"] = passes
    stats["kcore"] = {
        "min_user": min_user_interactions, "min_item": min_item_interactions, "passes": passes,
        "before": before, "after": _counts(df),
    }  # fmt: skip
    if df.height == 0:
        raise DataError(
            f"{source}: no interactions left after filtering (rating_threshold={rating_threshold}, "
            f"min_user_interactions={min_user_interactions}, min_item_interactions={min_item_interactions})"
        )

    return _densify(df, stats)


def _densify(df: pl.DataFrame, stats: dict) -> tuple[Interactions, pl.DataFrame]:
    """Step 5: dense ids (sorted original ids, see the module doc) and the flat arrays, in (user, time, row)
    order."""
    user_ids = _sorted_ids(df["user"])
    item_ids = _sorted_ids(df["item"])
    user_dense = pl.Series("dense", np.arange(len(user_ids), dtype=np.int64))
    item_dense = pl.Series("dense", np.arange(1, len(item_ids) + 1, dtype=np.int32))
    df = df.with_columns(
        pl.col("user").replace_strict(user_ids, user_dense, return_dtype=pl.Int64).alias("uid"),
        pl.col("item").replace_strict(item_ids, item_dense, return_dtype=pl.Int32).alias("iid"),
    ).sort(["uid", "timestamp", "row"])

    inter = Interactions(
        users=df["uid"].to_numpy().astype(np.int64, copy=False),
        items=df["iid"].to_numpy().astype(np.int32, copy=False),
        times=_times_array(df["timestamp"].to_numpy()),
        user_ids=np.asarray(user_ids.cast(pl.String).to_list(), dtype=str),
        item_ids=np.asarray([PAD, *item_ids.cast(pl.String).to_list()], dtype=str),
        stats=stats,
    )
    item_map = pl.DataFrame({"item": item_ids.cast(pl.String), "dense": item_dense})
    return inter, item_map


def _times_array(times: np.ndarray) -> np.ndarray:
    if times.dtype.kind != "f":
        return times
    integral = len(times) and np.all(np.isfinite(times)) and np.all(times == np.round(times))
    if integral and np.abs(times).max() < 2**62:
        times = times.astype(np.int64)  # float columns holding whole seconds (RecBole "timestamp:float")
    return times


def remap_item_features(features: pl.DataFrame | None, item_map: pl.DataFrame) -> pl.DataFrame | None:
    """Side information keyed by original id → keyed by dense id (column ``item``, one row per retained item,
    sorted, nulls where the source has no entry); the original id is kept as column ``item_id``."""
    if features is None or "item" not in features.columns:
        return None
    features = features.with_columns(pl.col("item").cast(pl.String)).unique(
        subset=["item"], keep="first", maintain_order=True
    )
    out = item_map.join(features, on="item", how="left").sort("dense")
    out = out.rename({"item": "item_id"}).rename({"dense": "item"})
    rest = [c for c in out.columns if c not in ("item", "item_id")]
    return out.select(["item", "item_id", *rest])
