"""The pre-training corpus: prepared datasets side by side (ids renumbered, no sequence mixing parts) and their
item tokens in the same order."""

from __future__ import annotations

import numpy as np
import pytest

from seqrec.config import build_config
from seqrec.data import prepare_data
from seqrec.data.corpus import concat_prepared
from seqrec.data.text import KEY, VALUE, ItemTokens, concat_item_tokens


def _part(seed: int, items: int):
    cfg = build_config({}, [f"data.seed={seed}", "data.synthetic.num_users=40", f"data.synthetic.num_items={items}",
                            "data.synthetic.mean_length=8"]).data
    return prepare_data(cfg)


def _tokens(n: int, seed: int) -> ItemTokens:
    rng = np.random.default_rng(seed)
    lens = np.concatenate([[0], rng.integers(0, 5, n)])
    offsets = np.concatenate([[0], np.cumsum(lens)]).astype(np.int64)
    toks = rng.integers(1000, 2000, int(lens.sum())).astype(np.int32)
    return ItemTokens(offsets, toks, np.where(toks % 2, KEY, VALUE).astype(np.int8))


def test_parts_side_by_side() -> None:
    a, b = _part(1, 30), _part(2, 25)
    c = concat_prepared([a, b], ["a", "b"])
    assert c.num_items == a.num_items + b.num_items and c.num_users == a.num_users + b.num_users
    assert list(c.item_ids[1 : a.num_items + 1]) == [f"a:{x}" for x in a.item_ids[1:]]
    assert c.item_ids[a.num_items + 1] == f"b:{b.item_ids[1]}" and c.item_ids[0] == "<pad>"
    for u in range(c.num_users):  # a sequence stays in its part's id range
        s = c.train[u]
        if len(s):
            first_part = u < a.num_users
            assert (s <= a.num_items).all() if first_part else (s > a.num_items).all()
    assert np.array_equal(c.train[a.num_users + 3], b.train[3] + a.num_items)
    assert np.array_equal(c.test.targets[len(a.test):], b.test.targets + a.num_items)
    assert np.array_equal(c.valid.users[len(a.valid):], b.valid.users + a.num_users)
    assert c.item_popularity[0] == 0 and c.item_popularity[a.num_items + 1] == b.item_popularity[1]
    with pytest.raises(ValueError):
        concat_prepared([a], ["a", "b"])


def test_item_tokens_in_the_same_order() -> None:
    x, y = _tokens(6, 0), _tokens(4, 1)
    z = concat_item_tokens([x, y])
    assert z.num_items == 10 and len(z.item(0)[0]) == 0
    for i in range(1, 7):
        assert np.array_equal(z.item(i)[0], x.item(i)[0]) and np.array_equal(z.item(i)[1], x.item(i)[1])
    for i in range(1, 5):
        assert np.array_equal(z.item(6 + i)[0], y.item(i)[0])
