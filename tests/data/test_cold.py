"""Cold-start split (data.cold_item_fraction): held-out items never reach training, their test users form the
cold set, the rest of the split is untouched, and the option off changes nothing (config dumps, cache keys)."""

from __future__ import annotations

import numpy as np
import pytest

from seqrec.config import build_config, config_to_dict
from seqrec.data import prepare_data
from seqrec.data.cold import cold_items, hold_out_cold_items, hold_out_reference
from seqrec.data.prepare import cache_key, resolve_data_dir, resolve_source
from seqrec.data.sequences import Sequences
from seqrec.data.split import leave_one_out, leave_one_out_reference


def _seqs(seed: int = 0, users: int = 40, items: int = 30) -> list[list[int]]:
    rng = np.random.default_rng(seed)
    return [list(rng.choice(np.arange(1, items + 1), size=int(rng.integers(1, 12)), replace=False))
            for _ in range(users)]


def test_matches_the_plain_reference() -> None:
    seqs = _seqs()
    csr = Sequences.from_lists(seqs, dtype=np.int64)
    split, cold = hold_out_cold_items(leave_one_out(csr.offsets, csr.values), 30, 0.2, seed=3)
    held = set(cold_items(30, 0.2, 3).tolist())
    assert len(held) == 6
    train, valid, test = leave_one_out_reference(seqs)
    r_train, r_valid, r_test, r_cold = hold_out_reference(train, valid, test, held)
    assert split.train.tolist() == r_train
    for ev, ref in ((split.valid, r_valid), (split.test, r_test), (cold, r_cold)):
        assert [(int(u), ev.inputs[i].tolist(), int(t)) for i, (u, t) in enumerate(zip(ev.users, ev.targets,
                                                                                       strict=True))] == ref
    assert split.info["cold_items"] == 6 and split.info["cold_test_users"] == len(r_cold)


def test_cold_items_are_seeded_and_never_empty() -> None:
    assert np.array_equal(cold_items(100, 0.1, 1), cold_items(100, 0.1, 1))
    assert not np.array_equal(cold_items(100, 0.1, 1), cold_items(100, 0.1, 2))
    assert len(cold_items(5, 0.01, 0)) == 1
    with pytest.raises(ValueError):
        cold_items(10, 0.0, 0)


def test_prepared_data_with_and_without_the_option() -> None:
    base = ["data.synthetic.num_users=120", "data.synthetic.num_items=50", "data.synthetic.mean_length=10"]
    off, on = build_config({}, base).data, build_config({}, [*base, "data.cold_item_fraction=0.2"]).data
    plain, cold = prepare_data(off), prepare_data(on)
    assert plain.cold is None and cold.cold is not None and len(cold.cold) > 0
    held = set(cold_items(cold.num_items, 0.2, on.seed).tolist())
    assert not held & set(np.asarray(cold.train.values).tolist())  # never a training input or target
    assert set(np.asarray(cold.cold.targets).tolist()) <= held
    assert not held & set(np.asarray(cold.test.targets).tolist()) and not held & set(
        np.asarray(cold.valid.targets).tolist())
    assert (np.asarray(cold.item_popularity)[sorted(held)] == 0).all()
    assert len(cold.test) + len(cold.cold) == len(plain.test)
    again = prepare_data(on)  # from the cache
    assert again.stats["cache"]["hit"] and np.array_equal(again.cold.targets, cold.cold.targets)
    # off: left out of config dumps (bench cell ids, config.yaml) and of the data cache key
    assert "cold_item_fraction" not in config_to_dict(build_config({}))["data"]
    assert config_to_dict(build_config({}, ["data.cold_item_fraction=0.2"]))["data"]["cold_item_fraction"] == 0.2
    src = resolve_source(off, resolve_data_dir())
    assert cache_key(off, src) != cache_key(on, src)


def test_default_cache_key_is_the_one_before_the_option_existed() -> None:
    cfg = build_config({}, ["data.synthetic.num_users=120"]).data
    key = cache_key(cfg, resolve_source(cfg, resolve_data_dir()))
    assert key == "b207ab8ce78c1025e1adb01b2579c72a37f3a0a0768b94b2df789ffc51b37f2e"  # computed on main before
