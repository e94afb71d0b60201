"""Loads of the real datasets in ../shared/data (skipped cleanly when that folder is absent)."""

from __future__ import annotations

import time

import numpy as np

from seqrec.config import DataConfig
from seqrec.data import prepare_data
from seqrec.data.preprocess import preprocess
from seqrec.data.readers.atomic import read_atomic
from seqrec.data.readers.sasrec_text import read_sasrec_text


def no_filter(name: str, **kw) -> DataConfig:
    return DataConfig(name=name, min_user_interactions=0, min_item_interactions=0, **kw)


def test_ml100k_counts_before_filtering(shared_data):
    inter, feats = read_atomic(
        shared_data / "ml-100k" / "ml-100k.inter", shared_data / "ml-100k" / "ml-100k.item"
    )
    assert inter.height == 100_000
    assert inter["user"].n_unique() == 943 and inter["item"].n_unique() == 1682
    assert feats.height == 1682 and "title" in feats.columns
    d = prepare_data(no_filter("ml-100k"), shared_data)
    assert (d.num_users, d.num_items) == (943, 1682)
    assert d.stats["raw_interactions"] == 100_000 and d.stats["interactions"] == 100_000
    assert d.train.nnz + len(d.test) + len(d.valid) == 100_000
    assert d.item_features["title"][0] == "Toy Story"


def test_ml100k_ties_keep_file_order(shared_data):
    path = shared_data / "ml-100k" / "ml-100k.inter"
    rows = [line.rstrip("\n").split("\t") for line in path.read_text().splitlines()[1:]]
    expected: dict[str, list[str]] = {}
    for user, item, _, _ts in sorted(rows, key=lambda r: (r[0], float(r[3]))):  # Python's sort is stable
        expected.setdefault(user, []).append(item)
    ties = sum(len(set(t)) < len(t) for t in _times_per_user(rows).values())
    assert ties > 100  # the dataset really has ties, so this test means something
    inter, _ = read_atomic(path)
    prepared, _ = preprocess(inter)
    offsets = prepared.offsets()
    for u, uid in enumerate(prepared.user_ids):
        got = [prepared.item_ids[i] for i in prepared.items[offsets[u] : offsets[u + 1]]]
        assert got == expected[uid]


def _times_per_user(rows):
    out: dict[str, list[str]] = {}
    for user, _, _, ts in rows:
        out.setdefault(user, []).append(ts)
    return out


def test_video_sasrec_text_loads(shared_data):
    df = read_sasrec_text(shared_data / "amazon-video-games" / "Video.txt")
    assert df.height == 287_107 and df["user"].n_unique() == 31_013 and df["item"].n_unique() == 23_715
    d = prepare_data(no_filter("amazon-video-games-sasrec"), shared_data)
    assert d.num_items == 23_715 and d.stats["timestamps"] is False
    assert all(d.item_ids[i] == str(i) for i in (1, 2, 100, d.num_items))  # 1-based ids are kept
    # line order is the chronology: user 1's sequence is its lines in order
    lines = (shared_data / "amazon-video-games" / "Video.txt").read_text().splitlines()
    first = [int(line.split()[1]) for line in lines if line.split()[0] == "1"]
    u = list(d.user_ids).index("1")
    assert (
        d.test.inputs[list(d.test.users).index(u)].tolist() + [d.test.targets[list(d.test.users).index(u)]]
        == first
    )


def test_magazine_2018_reviews_and_meta_load(shared_data):
    d = prepare_data(no_filter("amazon-Magazine_Subscriptions"), shared_data)
    assert d.stats["raw_interactions"] == 2375 and (d.num_users, d.num_items) == (348, 157)
    feats = d.item_features
    assert feats is not None and feats.height == 157
    assert {"title", "brand", "category", "description"} <= set(feats.columns)
    assert feats["category"].null_count() < 157
    assert not any("<span" in (t or "") for t in feats["title"].to_list())


def test_ml100k_prepare_timing(shared_data):
    cfg = DataConfig(name="ml-100k")
    t0 = time.perf_counter()
    miss = prepare_data(cfg, shared_data)
    t_miss = time.perf_counter() - t0
    t0 = time.perf_counter()
    hit = prepare_data(cfg, shared_data)
    t_hit = time.perf_counter() - t0
    assert miss.stats["cache"]["hit"] is False and hit.stats["cache"]["hit"] is True
    assert t_miss < 2.0 and t_hit < 0.2, (t_miss, t_hit)
    assert np.array_equal(np.asarray(hit.test.targets), miss.test.targets)


def _need(shared_data, *relative: str) -> None:
    import pytest

    missing = [r for r in relative if not (shared_data / r).is_file()]
    if missing:
        pytest.skip(f"shared data lacks {', '.join(missing)}")


def test_ml1m_sasrec_file_with_titles(shared_data):
    _need(shared_data, "ml-1m/ml-1m.txt", "ml-1m/sas_to_original_items.txt", "ml-1m/movies.dat")
    d = prepare_data(DataConfig(name="ml-1m"), shared_data)  # dataset defaults: no k-core
    assert (d.num_users, d.num_items, d.stats["interactions"]) == (6040, 3416, 999_611)
    assert d.stats["timestamps"] is False and d.stats["kcore"]["before"] == d.stats["kcore"]["after"]
    feats = d.item_features
    assert feats["title"].null_count() == 0 and feats["year"].null_count() == 0
    # sas item 1 is MovieLens movie 1198 (sas_to_original_items.txt line 1)
    assert feats.row(0, named=True)["title"] == "Raiders of the Lost Ark" and feats["year"][0] == "1981"
    assert any("é" in t for t in feats["title"].to_list())  # Latin-1 decoded, not mangled


def test_lcrec_scientific_and_office(shared_data):
    _need(shared_data, "amazon-scientific-2018/Scientific.inter.json", "amazon-office-2014/Office.inter.json")
    expectations = {"amazon-scientific-2018": (8317, 4344, 58_492), "amazon-office-2014": (4905, 2420, 53_258)}
    for name, expected in expectations.items():
        d = prepare_data(DataConfig(name=name), shared_data)
        assert (d.num_users, d.num_items, d.stats["interactions"]) == expected
        feats = d.item_features
        assert feats.height == expected[1] and feats["title"].null_count() <= 3  # Office: 3 items have no title
        texts = feats["title"].drop_nulls().to_list() + feats["description"].drop_nulls().to_list()
        assert not any("&amp;" in t or "&quot;" in t or "<br" in t or "</" in t for t in texts)


def test_named_defaults_keep_the_published_counts(shared_data):
    d = prepare_data(DataConfig(name="ml-100k"), shared_data)
    assert (d.num_users, d.num_items) == (943, 1682)  # was 1,349 items with the old 5-core default
    v = prepare_data(DataConfig(name="amazon-video-games-sasrec"), shared_data)
    assert (v.num_users, v.num_items) == (31_013, 23_715)  # was 24,303 users
