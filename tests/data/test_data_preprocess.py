from __future__ import annotations

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from seqrec.data.preprocess import PAD, kcore, kcore_reference, preprocess, remap_item_features
from seqrec.errors import DataError


def frame(rows: list[tuple], rating: bool = False) -> pl.DataFrame:
    cols = ["user", "item", "timestamp"] + (["rating"] if rating else [])
    return pl.DataFrame(rows, schema=cols, orient="row")


def sequences(inter) -> dict[str, list[str]]:
    """Original user id -> chronological original item ids."""
    out: dict[str, list[str]] = {}
    for u, i in zip(inter.users, inter.items, strict=True):
        out.setdefault(str(inter.user_ids[u]), []).append(str(inter.item_ids[i]))
    return out


def test_stable_chronology_keeps_file_order_for_ties():
    df = frame([("a", "x", 5), ("a", "y", 3), ("a", "z", 5), ("a", "w", 3), ("b", "x", 1)])
    inter, _ = preprocess(df)
    assert sequences(inter) == {"a": ["y", "w", "x", "z"], "b": ["x"]}


def test_dense_ids_numeric_order_and_padding():
    df = frame([("10", "7", 1), ("2", "12", 2), ("10", "100", 3), ("2", "7", 4)])
    inter, item_map = preprocess(df)
    assert inter.item_ids.tolist() == [PAD, "7", "12", "100"]
    assert inter.user_ids.tolist() == ["2", "10"]
    assert inter.items.min() == 1 and inter.items.max() == 3
    assert item_map["dense"].to_list() == [1, 2, 3]


def test_dense_ids_lexicographic_when_not_all_integers():
    inter, _ = preprocess(frame([("u", "b", 1), ("u", "a1", 2), ("u", "10", 3)]))
    assert inter.item_ids.tolist() == [PAD, "10", "a1", "b"]


@pytest.mark.parametrize(
    ("mode", "expected"),
    [("keep", ["x", "y", "x", "x"]), ("first", ["x", "y"]), ("last", ["y", "x"])],
)
def test_duplicates(mode, expected):
    df = frame([("u", "x", 1), ("u", "y", 2), ("u", "x", 3), ("u", "x", 4)])
    inter, _ = preprocess(df, duplicates=mode)
    assert sequences(inter)["u"] == expected


def test_rating_threshold_and_missing_rating_column():
    df = frame([("u", "x", 1, 5.0), ("u", "y", 2, 2.0), ("u", "z", 3, 4.0)], rating=True)
    inter, _ = preprocess(df, rating_threshold=4.0)
    assert sequences(inter)["u"] == ["x", "z"]
    with pytest.raises(DataError, match="rating"):
        preprocess(frame([("u", "x", 1)]), rating_threshold=4.0)


def test_nothing_left_after_filtering_is_one_line_error():
    with pytest.raises(DataError) as err:
        preprocess(frame([("u", "x", 1), ("v", "y", 2)]), min_user_interactions=5, source="tiny.csv")
    msg = str(err.value)
    assert "\n" not in msg and "tiny.csv" in msg and "no interactions left" in msg


def test_kcore_is_iterative():
    # removing item "r" (1 interaction) drops user "b" below 2, which drops item "s" below 2
    rows = [("a", "p", 1), ("a", "q", 2), ("b", "r", 1), ("b", "s", 2), ("c", "s", 3), ("c", "p", 4),
            ("c", "q", 5)]  # fmt: skip
    out, passes = kcore(frame(rows), 2, 2)
    got = sorted(zip(out["user"].to_list(), out["item"].to_list(), strict=True))
    assert got == sorted(kcore_reference([(u, i) for u, i, _ in rows], 2, 2))
    assert ("b", "s") not in got and passes >= 2


@settings(max_examples=40, deadline=None)
@given(
    pairs=st.lists(st.tuples(st.integers(0, 8), st.integers(0, 8)), min_size=1, max_size=80),
    mu=st.integers(0, 4),
    mi=st.integers(0, 4),
)
def test_kcore_matches_reference(pairs, mu, mi):
    df = pl.DataFrame({"user": [str(u) for u, _ in pairs], "item": [str(i) for _, i in pairs]})
    out, _ = kcore(df, mu, mi)
    expected = kcore_reference([(str(u), str(i)) for u, i in pairs], mu, mi)
    assert list(zip(out["user"].to_list(), out["item"].to_list(), strict=True)) == expected


def test_integer_id_columns_are_accepted():
    df = pl.DataFrame({"user": [3, 3, 1], "item": [9, 2, 9], "timestamp": [0, 1, 2]})
    inter, _ = preprocess(df)
    assert inter.user_ids.tolist() == ["1", "3"] and inter.item_ids.tolist() == [PAD, "2", "9"]
    assert inter.item_ids.dtype.kind == "U"


def test_float_whole_second_timestamps_become_int64():
    inter, _ = preprocess(frame([("u", "x", 1.0), ("u", "y", 2.0)]))
    assert inter.times.dtype == np.int64


def test_item_features_remapped_to_dense_ids():
    inter, item_map = preprocess(frame([("u", "b", 1), ("u", "a", 2), ("u", "c", 3)]))
    feats = pl.DataFrame({"item": ["a", "b", "zz", "a"], "title": ["A", "B", "Z", "dup"]})
    out = remap_item_features(feats, item_map)
    assert out["item"].to_list() == [1, 2, 3]
    assert out["item_id"].to_list() == ["a", "b", "c"]
    assert out["title"].to_list() == ["A", "B", None]  # retained items only, first duplicate wins
