from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np

from seqrec.config import DataConfig, SyntheticConfig
from seqrec.data import describe, prepare_data, resolve_cache_root, resolve_data_dir
from seqrec.data.prepare import cache_key, resolve_source

SMALL = SyntheticConfig(num_users=300, num_items=150, mean_length=15, num_topics=6)


def small(**kw) -> DataConfig:
    return DataConfig(name="synthetic", synthetic=SMALL, **kw)


def check_invariants(d) -> None:
    assert d.item_ids[0] == "<pad>" and len(d.item_ids) == d.num_items + 1
    assert len(d.user_ids) == d.num_users and len(d.train) == d.num_users
    assert d.item_popularity[0] == 0
    assert np.array_equal(
        np.asarray(d.item_popularity), np.bincount(d.train.values, minlength=d.num_items + 1)
    )
    for ev in (d.valid, d.test):
        assert len(ev.users) == len(ev.targets) == len(ev.inputs)
        assert ev.targets.min() >= 1 and ev.targets.max() <= d.num_items
        if ev.inputs.nnz:
            assert ev.inputs.values.min() >= 1 and ev.inputs.values.max() <= d.num_items
    if d.item_features is not None:
        assert d.item_features["item"].to_list() == list(range(1, d.num_items + 1))
        assert d.item_features["item_id"].to_list() == [str(x) for x in d.item_ids[1:]]


def tree_digest(path: Path) -> dict[str, str]:
    return {
        str(p.relative_to(path)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(path.rglob("*"))
        if p.is_file()
    }


def same_data(a, b) -> bool:
    return (
        a.train.tolist() == b.train.tolist()
        and a.test.inputs.tolist() == b.test.inputs.tolist()
        and np.array_equal(a.test.targets, b.test.targets)
        and np.array_equal(a.valid.targets, b.valid.targets)
        and list(a.item_ids) == list(b.item_ids)
        and list(a.user_ids) == list(b.user_ids)
    )


def test_cache_miss_then_memory_mapped_hit(tmp_path):
    first = prepare_data(small(), tmp_path)
    assert first.stats["cache"]["hit"] is False
    entry = Path(first.stats["cache"]["path"])
    assert entry.parent == resolve_cache_root() and entry.name.startswith("synthetic-")
    second = prepare_data(small(), tmp_path)
    assert second.stats["cache"]["hit"] is True
    assert isinstance(second.train.values, np.memmap)
    assert same_data(first, second)
    assert second.item_features.equals(first.item_features)
    check_invariants(second)
    assert not [p for p in entry.parent.iterdir() if p.name.startswith(".")]  # no temp folders left


def test_cache_key_tracks_parameters_not_max_len(tmp_path):
    src = resolve_source(small(), tmp_path)
    base = cache_key(small(), src)
    assert cache_key(small(max_len=200, cache=False), src) == base
    assert cache_key(small(min_user_interactions=3), src) != base
    assert cache_key(small(split="global_temporal"), src) != base
    assert cache_key(small(seed=1), resolve_source(small(seed=1), tmp_path)) != base


def test_cache_key_uses_the_resolved_kcore(tmp_path):
    """None means the dataset's default: the same prepared data, hence the same cache entry."""
    src = resolve_source(small(), tmp_path)
    assert src.default_kcore == 5
    assert cache_key(small(), src) == cache_key(small(min_user_interactions=5, min_item_interactions=5), src)
    assert cache_key(small(min_item_interactions=0), src) != cache_key(small(), src)
    (tmp_path / "ml-100k").mkdir()
    (tmp_path / "ml-100k" / "u.data").write_text("1\t2\t3\t4\n")
    cfg = DataConfig(name="ml-100k")
    ml = resolve_source(cfg, tmp_path)
    assert ml.default_kcore == 0 and cache_key(cfg, ml) == cache_key(
        DataConfig(name="ml-100k", min_user_interactions=0, min_item_interactions=0), ml
    )


def test_file_source_key_changes_when_file_changes(tmp_path):
    p = tmp_path / "x.csv"
    p.write_text(
        "user_id,item_id,timestamp\n" + "".join(f"{u},{i},{i}\n" for u in range(6) for i in range(6))
    )
    cfg = DataConfig(name="file", path=str(p))
    a = prepare_data(cfg, tmp_path)
    p.write_text(
        "user_id,item_id,timestamp\n" + "".join(f"{u},{i},{i}\n" for u in range(7) for i in range(6))
    )
    os.utime(p, ns=(1, 1))
    b = prepare_data(cfg, tmp_path)
    assert a.num_users == 6 and b.num_users == 7 and b.stats["cache"]["hit"] is False


def test_failing_cache_load_leaves_entry_untouched(tmp_path, caplog):
    good = prepare_data(small(), tmp_path)
    entry = Path(good.stats["cache"]["path"])
    (entry / "train.values.npy").write_bytes(b"garbage")
    before = tree_digest(entry)
    again = prepare_data(small(), tmp_path)
    assert again.stats["cache"].get("unreadable") is True
    assert same_data(good, again)
    assert tree_digest(entry) == before
    assert "unreadable" in caplog.text


def test_cache_disabled_writes_nothing(tmp_path):
    d = prepare_data(small(cache=False), tmp_path)
    root = resolve_cache_root()
    assert d.stats["cache"]["path"] is None and (not root.exists() or not any(root.iterdir()))


def test_temporal_split_through_prepare(tmp_path):
    d = prepare_data(small(split="global_temporal", temporal_quantile=0.8, valid_user_fraction=0.1), tmp_path)
    assert d.split == "global_temporal" and "cutoff" in d.stats
    assert 0 < len(d.valid) and 0 < len(d.test) < d.num_users
    check_invariants(d)


def test_file_mode_csv_end_to_end_with_original_ids(tmp_path):
    p = tmp_path / "events.csv"
    rows = [f"u{u},item{(u * 3 + k) % 9},{k}" for u in range(8) for k in range(6)]
    p.write_text("user_id,item_id,timestamp\n" + "\n".join(rows) + "\n")
    d = prepare_data(
        DataConfig(name="file", path=str(p), min_user_interactions=0, min_item_interactions=0), tmp_path
    )
    check_invariants(d)
    assert d.name == "file-events"
    idx = d.item_index()
    u = list(d.user_ids).index("u2")
    test_row = list(d.test.users).index(u)
    assert d.item_ids[d.test.targets[test_row]] == "item" + str((2 * 3 + 5) % 9)
    assert [d.item_ids[i] for i in d.test.inputs[test_row]] == [f"item{(6 + k) % 9}" for k in range(5)]
    assert idx["item0"] >= 1


def test_describe_and_stats(tmp_path):
    d = prepare_data(small(), tmp_path)
    desc = describe(d)
    for key in ("users", "items", "interactions", "avg_length", "density", "valid_users", "test_users"):
        assert key in desc
    assert desc["users"] == d.num_users and desc["interactions"] == d.stats["interactions"]


def test_resolve_data_dir(monkeypatch, tmp_path):
    monkeypatch.setenv("SEQREC_DATA_DIR", str(tmp_path / "env"))
    assert resolve_data_dir("/x/y") == Path("/x/y")
    assert resolve_data_dir(None) == tmp_path / "env"
    monkeypatch.delenv("SEQREC_DATA_DIR")
    assert resolve_data_dir(None) == Path("~/.cache/seqrec").expanduser()


def test_cache_root_is_env_or_home_never_the_data_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("SEQREC_CACHE_DIR", str(tmp_path / "c"))
    assert resolve_cache_root() == tmp_path / "c"
    monkeypatch.delenv("SEQREC_CACHE_DIR")
    assert resolve_cache_root() == Path("~/.cache/seqrec/cache").expanduser()


def test_prepare_never_writes_into_a_writable_data_dir(tmp_path, monkeypatch):
    """A named dataset read from a writable data dir without $SEQREC_CACHE_DIR: the cache goes to
    ~/.cache/seqrec/cache, the data dir is left exactly as it was (it is only ever written by downloads)."""
    data_dir = tmp_path / "data"
    (data_dir / "ml-100k").mkdir(parents=True)
    (data_dir / "ml-100k" / "u.data").write_text(
        "".join(f"{u}\t{i}\t3\t{1000 + u * 10 + i}\n" for u in range(1, 7) for i in range(1, 7))
    )
    before = tree_digest(data_dir)
    monkeypatch.delenv("SEQREC_CACHE_DIR")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    d = prepare_data(DataConfig(name="ml-100k"), data_dir)
    assert Path(d.stats["cache"]["path"]).parent == tmp_path / "home" / ".cache" / "seqrec" / "cache"
    assert tree_digest(data_dir) == before and sorted(p.name for p in data_dir.iterdir()) == ["ml-100k"]


def test_temporal_inputs_end_to_end_never_after_cutoff(tmp_path):
    """Each item id encodes its own timestamp, so inputs can be checked against the cutoff after remapping."""
    rng = np.random.default_rng(0)
    lines, t = [], 0
    for u in range(40):
        for _ in range(int(rng.integers(2, 9))):
            t_u = int(rng.integers(0, 1000))
            lines.append(f"u{u},t{t_u}_{t},{t_u}")
            t += 1
    p = tmp_path / "events.csv"
    p.write_text("user_id,item_id,timestamp\n" + "\n".join(lines) + "\n")
    cfg = DataConfig(
        name="file", path=str(p), split="global_temporal", min_user_interactions=0, min_item_interactions=0,
        temporal_quantile=0.75, valid_user_fraction=0.3,
    )  # fmt: skip
    d = prepare_data(cfg, tmp_path)
    cutoff = d.stats["cutoff"]
    ts = np.array([-1] + [int(str(x).split("_")[0][1:]) for x in d.item_ids[1:]])
    for ev in (d.valid, d.test):
        assert len(ev) > 0
        assert np.all(ts[ev.inputs.values] <= cutoff)
        for i in range(len(ev)):
            assert int(ev.targets[i]) not in ev.inputs[i].tolist()
            if len(ev.inputs[i]):
                assert ts[ev.inputs[i]].max() <= ts[ev.targets[i]]
    assert np.all(ts[d.test.targets] > cutoff)
    assert np.all(ts[d.train.values] <= cutoff)
