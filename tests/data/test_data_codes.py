"""The vectorised preprocessing path (seqrec.data.codes) against its plain references."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from seqrec.data.codes import chronological_order, compact, group_order, hashed_codes, integer_codes, kcore_mask
from seqrec.data.preprocess import _sorted_ids, kcore, preprocess, preprocess_reference
from seqrec.errors import DataError


def assert_same(df: pl.DataFrame, **kw) -> None:
    """preprocess == preprocess_reference: every array (values and dtype), the item map and the stats."""
    try:
        ref, ref_map = preprocess_reference(df, **kw)
    except DataError as err:
        with pytest.raises(DataError) as fast_err:
            preprocess(df, **kw)
        assert str(fast_err.value) == str(err)
        return
    got, got_map = preprocess(df, **kw)
    for name in ("users", "items", "times", "user_ids", "item_ids"):
        a, b = getattr(got, name), getattr(ref, name)
        assert a.dtype == b.dtype, name
        np.testing.assert_array_equal(a, b, err_msg=name)
    assert got_map.equals(ref_map)
    stats = {k: v for k, v in got.stats.items() if k != "step_seconds"}
    assert stats == ref.stats


ID_KINDS = ["str", "str_numeric", "str_padded", "int64", "int32", "wide_int", "negative_int"]
TIME_KINDS = ["int64", "int32", "int8", "float_integral", "float", "signed_zero", "uint64_huge"]


def ids(kind: str, values: np.ndarray) -> pl.Series:
    if kind == "str":
        return pl.Series([f"x{v}" if v % 3 else str(v) for v in values], dtype=pl.String)  # mixed: lexicographic
    if kind == "str_numeric":
        return pl.Series([str(v - 3) for v in values], dtype=pl.String)  # "-3" .. : numeric order, lookup table
    if kind == "str_padded":  # "07" beside "7" (and "-0" beside "0"): the same number spelled twice, hashed
        spell = {0: "-0", 1: "0"}
        return pl.Series([spell.get(v, f"{v // 2:02d}" if v % 2 else str(v // 2)) for v in values], dtype=pl.String)
    if kind == "int32":
        return pl.Series(values, dtype=pl.Int32)
    if kind == "wide_int":  # beyond the lookup-table range: the hashed path
        return pl.Series(values.astype(np.int64) * 10**15, dtype=pl.Int64)
    if kind == "negative_int":
        return pl.Series(values.astype(np.int64) - 5, dtype=pl.Int64)
    return pl.Series(values, dtype=pl.Int64)


def times(kind: str, values: np.ndarray) -> pl.Series:
    if kind == "int32":
        return pl.Series(values, dtype=pl.Int32)
    if kind == "int8":
        return pl.Series(values % 200 - 100, dtype=pl.Int8)
    if kind == "float_integral":
        return pl.Series(values.astype(np.float64))
    if kind == "float":
        return pl.Series(values / 4.0)
    if kind == "signed_zero":
        return pl.Series(np.where(values % 2 == 0, 0.0, -0.0))
    if kind == "uint64_huge":
        return pl.Series(values.astype(np.uint64) + np.uint64(2**63), dtype=pl.UInt64)
    return pl.Series(values, dtype=pl.Int64)


@settings(max_examples=150, deadline=None)
@given(
    n=st.integers(1, 60),
    n_users=st.integers(1, 8),
    n_items=st.integers(1, 10),
    n_times=st.integers(1, 6),  # few distinct times: many ties
    user_kind=st.sampled_from(ID_KINDS),
    item_kind=st.sampled_from(ID_KINDS),
    time_kind=st.sampled_from(TIME_KINDS),
    duplicates=st.sampled_from(["keep", "first", "last"]),
    k=st.tuples(st.integers(0, 4), st.integers(0, 4)),
    threshold=st.sampled_from([None, 3.0]),
    seed=st.integers(0, 2**16),
)
def test_fast_path_matches_reference(n, n_users, n_items, n_times, user_kind, item_kind, time_kind, duplicates, k,
                                     threshold, seed):  # fmt: skip
    rng = np.random.default_rng(seed)
    df = pl.DataFrame({
        "user": ids(user_kind, rng.integers(0, n_users, n)),
        "item": ids(item_kind, rng.integers(0, n_items, n)),
        "timestamp": times(time_kind, rng.integers(0, n_times, n)),
        "rating": rng.integers(1, 6, n).astype(np.float64),
    })  # fmt: skip
    assert_same(df, duplicates=duplicates, min_user_interactions=k[0], min_item_interactions=k[1],
                rating_threshold=threshold)  # fmt: skip


def test_ids_that_become_all_integers_after_the_kcore_are_renumbered_numerically():
    # "a" (the only non-integer id) is filtered out: the kept ids 10, 9 order numerically, as in the reference
    rows = [("10", "i", 1), ("10", "j", 2), ("9", "i", 3), ("9", "j", 4), ("a", "k", 5)]
    df = pl.DataFrame(rows, schema=["user", "item", "timestamp"], orient="row")
    assert_same(df, min_user_interactions=2, min_item_interactions=2)
    inter, _ = preprocess(df, min_user_interactions=2, min_item_interactions=2)
    assert inter.user_ids.tolist() == ["9", "10"] and inter.users.tolist() == [0, 0, 1, 1]


def test_errors_match_reference():
    base = {"user": ["u", "v"], "item": ["a", "b"], "timestamp": [1, 2]}
    assert_same(pl.DataFrame({**base, "user": ["u", "v\x00"]}))  # NUL in an id: same row named
    assert_same(pl.DataFrame({**base, "item": ["a", None]}))
    assert_same(pl.DataFrame(base), rating_threshold=3.0)  # no rating column
    assert_same(pl.DataFrame(base), duplicates="bogus")
    assert_same(pl.DataFrame(base), min_user_interactions=5)  # nothing left
    assert_same(pl.DataFrame({**base, "timestamp": [1.0, float("nan")]}))
    assert_same(pl.DataFrame({**base, "timestamp": ["1", "2"]}))  # non-numeric: the reference path
    assert_same(pl.DataFrame(base).with_row_index("row").with_columns(pl.col("row").reverse()))  # caller's order


@pytest.mark.parametrize("kind", ["int64", "int32", "negative_int", "wide_int"])
def test_integer_codes_match_sorted_ids_and_replace(kind):
    rng = np.random.default_rng(3)
    values = ids(kind, rng.integers(0, 50, 500))
    expected_ids = _sorted_ids(values)
    fast = integer_codes(values)
    if kind == "wide_int":
        assert fast is None
        return
    got_ids, got_codes = fast
    assert got_ids.dtype == values.dtype and got_ids.equals(expected_ids)
    np.testing.assert_array_equal(got_codes, hashed_codes(values, expected_ids))


@pytest.mark.parametrize("kind", TIME_KINDS)
def test_chronological_order_is_the_stable_sort(kind):
    rng = np.random.default_rng(5)
    codes = rng.integers(0, 30, 2000)
    t = times(kind, rng.integers(0, 7, 2000))
    frame = pl.DataFrame({"u": codes, "t": t}).with_row_index("row")
    expected = frame.sort(["u", "t", "row"])["row"].to_numpy()
    np.testing.assert_array_equal(chronological_order(codes, t.to_numpy()), expected)


def test_kcore_mask_matches_kcore():
    rng = np.random.default_rng(7)
    users, items = rng.integers(0, 200, 3000), rng.zipf(1.6, 3000) % 300
    frame = pl.DataFrame({"user": users, "item": items}).with_row_index("row")
    for k in [(0, 0), (3, 0), (0, 4), (5, 5), (2, 9)]:
        kept, passes = kcore(frame, *k)
        count_u, count_i = np.bincount(users, minlength=200), np.bincount(items, minlength=300)
        mask, fast_passes = kcore_mask(users, items, count_u, count_i, *k)
        assert fast_passes == passes
        np.testing.assert_array_equal(np.flatnonzero(mask), kept["row"].to_numpy())
        np.testing.assert_array_equal(count_u, np.bincount(users[mask], minlength=200))  # updated in place
        np.testing.assert_array_equal(count_i, np.bincount(items[mask], minlength=300))


def test_compact_and_group_order():
    users = np.array([0, 0, 2, 2, 2, 5])
    new, old = compact(users, np.bincount(users, minlength=6))
    assert new.tolist() == [0, 0, 1, 1, 1, 2] and old.tolist() == [0, 2, 5]
    perm = group_order(new, np.array([2, 0, 1]))  # user 1 first, then 2, then 0; rows keep their order
    assert perm.tolist() == [2, 3, 4, 5, 0, 1]


@settings(max_examples=60, deadline=None)
@given(values=st.lists(st.integers(-(2**63), 2**63 - 1) | st.integers(-3, 40), min_size=1, max_size=40),
       seed=st.integers(0, 2**16))  # fmt: skip
def test_integer_ids_give_what_their_decimal_strings_give(values, seed):
    """Readers keep integer id columns (Parquet) as Int64 instead of decimal strings: the same result."""
    rng = np.random.default_rng(seed)
    n = len(values)
    df = pl.DataFrame({"user": pl.Series(values, dtype=pl.Int64), "item": pl.Series(values[::-1], dtype=pl.Int64),
                       "timestamp": rng.integers(0, 3, n)})  # fmt: skip
    as_text = df.with_columns(pl.col("user", "item").cast(pl.String))
    df = pl.concat([df, df])  # every user twice, so the 2-core keeps something
    as_text = pl.concat([as_text, as_text])
    got, got_map = preprocess(df, min_user_interactions=2)
    ref, ref_map = preprocess_reference(as_text, min_user_interactions=2)
    for name in ("users", "items", "times", "user_ids", "item_ids"):
        np.testing.assert_array_equal(getattr(got, name), getattr(ref, name), err_msg=name)
    assert got_map.equals(ref_map)
