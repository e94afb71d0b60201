"""item_attributes: ordered (key, value) text pairs per dense item id, per source."""

from __future__ import annotations

import gzip
import json

import numpy as np
import polars as pl

from seqrec.config import DataConfig
from seqrec.data import prepare_data
from seqrec.data.attributes import attribute_keys, item_attributes
from seqrec.data.sequences import EvalSet, PreparedData, Sequences

NO_KCORE = {"min_user_interactions": 0, "min_item_interactions": 0}


def _prepared(features: pl.DataFrame | None, num_items: int) -> PreparedData:
    empty = EvalSet(np.zeros(0, np.int64), Sequences.from_lists([]), np.zeros(0, np.int64))
    return PreparedData(
        name="x", num_users=1, num_items=num_items, train=Sequences.from_lists([list(range(1, num_items + 1))]),
        valid=empty, test=empty, item_ids=np.asarray(["<pad>"] + [str(i) for i in range(num_items)]),
        user_ids=np.asarray(["u"]), item_popularity=np.ones(num_items + 1, np.int64), item_features=features,
    )  # fmt: skip


def test_movielens_order_title_year_genres(tmp_path):
    (tmp_path / "ml-100k").mkdir()
    rows = "".join(f"{u}\t{i}\t3\t{u * 10 + i}\n" for u in (1, 2, 3) for i in (1, 2))
    (tmp_path / "ml-100k" / "u.data").write_text(rows)
    (tmp_path / "ml-100k" / "u.item").write_bytes(
        "1|Toy Story (1995)|01-Jan-1995||x|0|0|0|1|1|1|0|0|0|0|0|0|0|0|0|0|0|0|0\n"
        "2|GoldenEye (1995)|01-Jan-1995||x|0|1|1|0|0|0|0|0|0|0|0|0|0|0|0|0|1|0|0\n".encode("latin-1")
    )
    d = prepare_data(DataConfig(name="ml-100k"), tmp_path)
    attrs = item_attributes(d)
    assert attrs[0] == [] and len(attrs) == d.num_items + 1
    assert attrs[1] == [("title", "Toy Story"), ("year", "1995"), ("genres", "Animation Children's Comedy")]
    assert [k for k, _ in attrs[2]] == ["title", "year", "genres"]


def test_amazon_order_title_brand_category_html_stripped_nulls_dropped(tmp_path):
    reviews = [{"reviewerID": f"U{u}", "asin": a, "unixReviewTime": u * 10 + k}
               for u in range(3) for k, a in enumerate(("A1", "A2", "A3"))]  # fmt: skip
    meta = [
        {"asin": "A1", "title": "Ben &amp; Jerry <b>Mag</b>", "brand": "", "category": ["Books", "Food"],
         "description": ["long text"]},
        {"asin": "A2", "title": '<span class="a-size-medium">', "brand": "Acme", "category": []},
    ]  # fmt: skip
    for name, rows in (("X_5.json.gz", reviews), ("meta_X.json.gz", meta)):
        with gzip.open(tmp_path / name, "wt") as f:
            f.write("".join(json.dumps(r) + "\n" for r in rows))
    d = prepare_data(DataConfig(name="file", path=str(tmp_path / "X_5.json.gz"), **NO_KCORE), tmp_path)
    attrs = item_attributes(d)
    index = d.item_index()
    assert attrs[index["A1"]] == [("title", "Ben & Jerry Mag"), ("category", "Books > Food")]  # no description
    assert attrs[index["A2"]] == [("brand", "Acme")]
    assert attrs[index["A3"]] == []  # not in the meta file


def test_lcrec_and_steam_and_fallback_key_orders():
    lcrec = pl.DataFrame({"item": [1], "item_id": ["0"], "title": ["t"], "description": ["d"], "brand": ["b"],
                          "categories": ["c"]})  # fmt: skip
    assert attribute_keys(lcrec) == ("title", "brand", "categories", "description")
    steam = pl.DataFrame({"item": [1], "item_id": ["9"], "title": ["t"], "developer": ["v"], "genres": ["g"],
                          "tags": ["x"]})  # fmt: skip
    assert attribute_keys(steam) == ("title", "developer", "genres", "tags")
    other = pl.DataFrame({"item": [1, 2], "item_id": ["a", "b"], "colour": ["red", " "], "size": [3.0, None]})
    assert attribute_keys(other) == ("colour", "size")
    attrs = item_attributes(_prepared(other, 2))
    assert attrs == [[], [("colour", "red"), ("size", "3")], []]


def test_no_features_and_key_override():
    assert item_attributes(_prepared(None, 3)) == [[], [], [], []]
    feats = pl.DataFrame({"item": [1], "item_id": ["0"], "title": ["T"], "year": [1999.0], "genres": ["Drama"]})
    assert item_attributes(_prepared(feats, 1), keys=("genres", "title", "missing")) == [
        [], [("genres", "Drama"), ("title", "T")]
    ]
    assert item_attributes(_prepared(feats, 1))[1][1] == ("year", "1999")
