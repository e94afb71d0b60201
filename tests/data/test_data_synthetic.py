from __future__ import annotations

import hashlib
import time

import numpy as np
import pytest

from seqrec.config import DataConfig, SyntheticConfig
from seqrec.data import prepare_data, synthetic
from seqrec.data.synthetic import generate, generate_arrays

SMALL = SyntheticConfig(num_users=600, num_items=300, mean_length=20, num_topics=10)


def test_deterministic_by_seed():
    a_inter, a_feat = generate(SMALL, 7)
    b_inter, b_feat = generate(SMALL, 7)
    c_inter, _ = generate(SMALL, 8)
    assert a_inter.equals(b_inter) and a_feat.equals(b_feat)
    assert not a_inter.equals(c_inter)


def test_shape_distinct_items_and_increasing_time():
    users, items, times, _ = generate_arrays(SMALL, 3)
    assert items.min() >= 0 and items.max() < SMALL.num_items
    assert len(np.unique(users)) == SMALL.num_users
    order = np.argsort(users, kind="stable")
    u, i, t = users[order], items[order], times[order]
    same_user = u[1:] == u[:-1]
    assert np.all(t[1:][same_user] > t[:-1][same_user])
    pairs = u.astype(np.int64) * SMALL.num_items + i
    assert len(np.unique(pairs)) == len(pairs)  # no user repeats an item
    mean = len(items) / SMALL.num_users
    assert 0.8 * SMALL.mean_length < mean < 1.2 * SMALL.mean_length
    assert np.bincount(users).min() >= SMALL.min_length - 1


def test_item_text_attributes():
    _, feats = generate(SMALL, 0)
    assert feats.columns == ["item", "title", "category", "brand", "description"]
    assert feats.height == SMALL.num_items and feats["title"].null_count() == 0
    assert feats["category"].n_unique() == SMALL.num_topics


def test_popularity_is_skewed():
    _, items, _, info = generate_arrays(SyntheticConfig(num_users=2000, num_items=1000), 0)
    counts = np.sort(np.bincount(items, minlength=1000))[::-1]
    assert counts[:100].sum() > 0.3 * counts.sum()  # top 10% of items get well over 10% of interactions


def test_successor_heuristic_beats_popularity():
    cfg = DataConfig(name="synthetic", synthetic=SMALL, cache=False)
    data = prepare_data(cfg)
    succ: dict[int, dict[int, int]] = {}
    for u in range(data.num_users):
        s = data.train[u]
        for a, b in zip(s[:-1], s[1:], strict=True):
            succ.setdefault(int(a), {}).setdefault(int(b), 0)
            succ[int(a)][int(b)] += 1
    top_pop = np.argsort(-np.asarray(data.item_popularity), kind="stable")[:10]
    hits_seq = hits_pop = 0
    for i in range(len(data.test)):
        last, target = int(data.test.inputs[i][-1]), int(data.test.targets[i])
        cands = sorted(succ.get(last, {}).items(), key=lambda kv: -kv[1])[:10]
        hits_seq += target in [c for c, _ in cands]
        hits_pop += target in top_pop
    n = len(data.test)
    assert hits_seq / n > 2 * hits_pop / n, (hits_seq / n, hits_pop / n)


@pytest.mark.slow
def test_large_generation_is_fast():
    t0 = time.perf_counter()
    inter, _ = generate(SyntheticConfig(num_users=100_000, num_items=20_000, mean_length=50), 0)
    elapsed = time.perf_counter() - t0
    assert inter.height > 4_000_000 and elapsed < 15, elapsed


def _digest(cfg: SyntheticConfig, seed: int) -> str:
    """sha256 of the integer outputs (users, items, times, topics): pins the exact RNG call sequence."""
    users, items, times, info = generate_arrays(cfg, seed)
    h = hashlib.sha256()
    for a in (users, items, times, info["topic"]):
        a = np.ascontiguousarray(a, dtype=np.int64)
        h.update(a.tobytes())
    return h.hexdigest()


# Digests of the generator as it was before repeat_prob existed: repeat_prob=0 must keep producing exactly this.
PINNED = {
    "one_chunk": "743505ac27390f570e0b94d13ba4bd36da6f3d53cfbb164e60bdc591753486df",
    "many_chunks": "8a15c1c53daa8b0a62c72ec3040a9a1d5aab75178dc2f9935557dd88fcc95056",
}


def test_output_is_pinned(monkeypatch):
    cfg = SyntheticConfig(num_users=300, num_items=120, mean_length=15, num_topics=6)
    assert _digest(cfg, 5) == PINNED["one_chunk"]
    monkeypatch.setattr(synthetic, "SEEN_TABLE_BYTES", 120 * 37)  # 37 users per chunk: the chunked path
    cfg = SyntheticConfig(num_users=300, num_items=120, mean_length=15, num_topics=6, transition_strength=0.9)
    assert _digest(cfg, 11) == PINNED["many_chunks"]


def test_repeat_prob_reconsumes_recent_history():
    cfg = SyntheticConfig(num_users=600, num_items=300, mean_length=20, num_topics=10, repeat_prob=0.7)
    users, items, times, _ = generate_arrays(cfg, 3)
    order = np.argsort(users, kind="stable")
    u, i, t = users[order], items[order], times[order]
    same_user = u[1:] == u[:-1]
    assert np.all(t[1:][same_user] > t[:-1][same_user])
    consecutive = (i[1:] == i[:-1])[same_user].mean()
    # share of interactions whose item the user consumed before (vectorised: first occurrences are not repeats)
    pairs = u.astype(np.int64) * cfg.num_items + i
    _, first = np.unique(pairs, return_index=True)
    repeated = 1 - len(first) / len(pairs)
    per_user_first = len(np.unique(u))  # a user's first interaction can never be a repeat
    in_history = repeated * len(pairs) / (len(pairs) - per_user_first)
    assert 0.6 < in_history < 0.8, in_history  # ~repeat_prob of the non-first interactions
    assert 0.45 < consecutive < 0.7, consecutive  # the previous item with probability 0.6 (+ the window's share)
    assert generate_arrays(cfg, 3)[1].tolist() == items.tolist()  # still deterministic by seed


def test_repeat_prob_is_validated():
    with pytest.raises(ValueError):
        SyntheticConfig(repeat_prob=1.5)
