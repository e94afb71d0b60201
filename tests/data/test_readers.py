from __future__ import annotations

import gzip
import json
from pathlib import Path

import polars as pl
import pytest

from seqrec.config import DataConfig
from seqrec.data import prepare_data
from seqrec.data.datasets import DATASETS
from seqrec.data.files import read_file
from seqrec.data.readers.amazon import read_amazon, read_amazon_reviews
from seqrec.data.readers.atomic import read_atomic
from seqrec.data.readers.delimited import read_delimited
from seqrec.data.readers.movielens import fast_ratings, ml100k_slow, ml_dat_slow, read_ml100k, read_ml_csv, read_ml_dat
from seqrec.data.readers.sasrec_text import read_sasrec_text
from seqrec.data.readers.steam import read_steam
from seqrec.errors import DataError


def one_line(err: pytest.ExceptionInfo) -> str:
    msg = str(err.value)
    assert "\n" not in msg, msg
    return msg


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_csv_with_configured_columns(tmp_path):
    p = write(tmp_path / "x.csv", "uid,iid,ts,r\nu1,i1,10,5\nu1,i2,5,3\nu2,i1,7,4\n")
    df = read_delimited(p, sep=",", user_col="uid", item_col="iid", time_col="ts", rating_col="r")
    assert df.columns == ["user", "item", "timestamp", "rating"]
    assert df["user"].to_list() == ["u1", "u1", "u2"] and df["timestamp"].to_list() == [10, 5, 7]


def test_tsv_without_time_column_uses_file_order(tmp_path):
    p = write(tmp_path / "x.tsv", "user_id\titem_id\nb\t1\na\t2\nb\t3\n")
    df = read_file(DataConfig(name="file", path=str(p), time_col=None))
    assert df[0]["timestamp"].to_list() == [0, 1, 2]


def test_missing_column_names_which_and_which_exist(tmp_path):
    p = write(tmp_path / "x.csv", "user_id,product,timestamp\n1,2,3\n")
    with pytest.raises(DataError) as err:
        read_file(DataConfig(name="file", path=str(p)))
    msg = one_line(err)
    assert "item_id" in msg and "product" in msg and str(p) in msg


@pytest.mark.parametrize("body", ["1,2,3\n4,5,6,7\n", "1,2,3\n4,5\n"])
def test_malformed_row_names_line(tmp_path, body):
    p = write(tmp_path / "x.csv", "user_id,item_id,timestamp\n" + body)
    with pytest.raises(DataError) as err:
        read_file(DataConfig(name="file", path=str(p)))
    msg = one_line(err)
    assert "line 3" in msg and str(p) in msg


def test_non_numeric_timestamp_names_line(tmp_path):
    p = write(tmp_path / "x.csv", "user_id,item_id,timestamp\n1,2,3\n4,5,yesterday\n")
    with pytest.raises(DataError) as err:
        read_file(DataConfig(name="file", path=str(p)))
    assert "line 3" in one_line(err) and "yesterday" in str(err.value)


@pytest.mark.parametrize("name", ["x.csv", "x.txt", "x.inter", "x.json"])
def test_empty_file(tmp_path, name):
    p = write(tmp_path / name, "")
    with pytest.raises(DataError) as err:
        read_file(DataConfig(name="file", path=str(p)))
    assert "empty" in one_line(err) and str(p) in str(err.value)


def test_parquet(tmp_path):
    p = tmp_path / "x.parquet"
    pl.DataFrame({"user_id": [1, 1], "item_id": ["a", "b"], "timestamp": [2.5, 1.0]}).write_parquet(p)
    df, feats = read_file(DataConfig(name="file", path=str(p)))
    assert df["user"].to_list() == [1, 1] and df["timestamp"].to_list() == [2.5, 1.0] and feats is None
    assert df["user"].dtype == pl.Int64 and df["item"].dtype == pl.String  # integer ids stay integers


def test_atomic_with_item_side_info(tmp_path):
    write(
        tmp_path / "d.inter",
        "user_id:token\titem_id:token\trating:float\ttimestamp:float\n1\t10\t4\t100\n1\t11\t2\t100\n",
    )
    write(
        tmp_path / "d.item",
        'item_id:token\tmovie_title:token_seq\tclass:token_seq\n10\tA "Quoted" Film\tDrama War\n',
    )
    inter, feats = read_atomic(tmp_path / "d.inter", tmp_path / "d.item")
    assert inter.columns == ["user", "item", "timestamp", "rating"]
    assert inter["rating"].to_list() == [4.0, 2.0]
    assert feats.to_dicts() == [{"item": "10", "title": 'A "Quoted" Film', "genres": "Drama War"}]


def test_atomic_untyped_header_is_rejected(tmp_path):
    p = write(tmp_path / "d.inter", "user_id\titem_id\n1\t2\n")
    with pytest.raises(DataError) as err:
        read_atomic(p)
    assert "typed header" in one_line(err)


def test_sasrec_text(tmp_path):
    p = write(tmp_path / "v.txt", "1 5\n1 3\n2 5\n\n")
    df = read_sasrec_text(p)
    assert df["user"].to_list() == [1, 1, 2] and df["timestamp"].to_list() == [0, 1, 2]


@pytest.mark.parametrize(("body", "line"), [("1 5\n1 x\n", 2), ("1 5\n2 3 4\n", 2), ("a b\n", 1)])
def test_sasrec_text_errors_name_the_line(tmp_path, body, line):
    p = write(tmp_path / "v.txt", body)
    with pytest.raises(DataError) as err:
        read_sasrec_text(p)
    assert f"line {line}" in one_line(err) and str(p) in str(err.value)


def test_movielens_raw_layouts(tmp_path):
    write(tmp_path / "u.data", "1\t10\t5\t881250949\n2\t10\t3\t881250950\n")
    (tmp_path / "u.item").write_bytes(
        "10|Café (1995)|01-Jan-1995||http://x|0|0|0|1|0|1|0|0|0|0|0|0|0|0|0|0|0|0|0\n".encode("latin-1")
    )
    inter, feats = read_ml100k(tmp_path / "u.data", tmp_path / "u.item")
    assert inter.height == 2 and feats.to_dicts() == [
        {"item": "10", "title": "Café", "year": "1995", "genres": "Animation Comedy"}
    ]
    write(tmp_path / "ratings.dat", "1::1193::5::978300760\n1::661::3::978302109\n")
    write(
        tmp_path / "movies.dat",
        "1193::One Flew Over the Cuckoo's Nest (1975)::Drama\n661::A: B (1996)::Animation|Musical\n",
    )
    inter, feats = read_ml_dat(tmp_path / "ratings.dat", tmp_path / "movies.dat")
    assert inter["item"].cast(pl.String).to_list() == ["1193", "661"] and inter["rating"].to_list() == [
        5.0,
        3.0,
    ]
    assert feats["title"].to_list() == ["One Flew Over the Cuckoo's Nest", "A: B"]
    write(tmp_path / "ratings.csv", "userId,movieId,rating,timestamp\n1,2,3.5,1112486027\n")
    write(tmp_path / "movies.csv", 'movieId,title,genres\n2,"Jumanji, The (1995)",Adventure|Children\n')
    inter, feats = read_ml_csv(tmp_path / "ratings.csv", tmp_path / "movies.csv")
    assert inter.height == 1 and feats["title"].to_list() == ["Jumanji, The"]


def test_ml_dat_malformed_row(tmp_path):
    p = write(tmp_path / "ratings.dat", "1::1193::5::978300760\n1::661::3\n")
    with pytest.raises(DataError) as err:
        read_ml_dat(p)
    assert "line 2" in one_line(err)


def _gz_lines(path: Path, lines: list[str]) -> Path:
    with gzip.open(path, "wt") as f:
        f.write("\n".join(lines) + "\n")
    return path


def test_amazon_2018_reviews_and_meta(tmp_path):
    reviews = [
        {"overall": 5.0, "reviewerID": "U1", "asin": "A1", "unixReviewTime": 100, "reviewText": "x"},
        {"overall": 3.0, "reviewerID": "U1", "asin": "A2", "unixReviewTime": 50, "style": {"Format:": "x"}},
    ]
    meta = [
        {"asin": "A1", "title": '<span class="a-size-medium">', "brand": "Acme",
         "category": ["Books", "Kids"], "description": ["Nice &amp; short.", "More."]},
        {"asin": "ZZ", "title": "not reviewed"},
    ]  # fmt: skip
    rp = _gz_lines(tmp_path / "Cat_5.json.gz", [json.dumps(r) for r in reviews])
    mp = _gz_lines(tmp_path / "meta_Cat.json.gz", [json.dumps(m) for m in meta])
    inter, feats = read_amazon(rp, mp)
    assert inter["user"].to_list() == ["U1", "U1"] and inter["rating"].to_list() == [5.0, 3.0]
    assert feats.height == 1
    row = feats.to_dicts()[0]
    assert row["title"] is None and row["brand"] == "Acme" and row["category"] == "Books > Kids"
    assert row["description"] == "Nice & short. More."
    # file mode finds the meta file next to the reviews
    inter2, feats2 = read_file(DataConfig(name="file", path=str(rp)))
    assert inter2.equals(inter) and feats2.equals(feats)


def test_amazon_2014_python_literal_meta(tmp_path):
    rp = write(tmp_path / "reviews_Toys_5.json", json.dumps(
        {"reviewerID": "U", "asin": "B1", "overall": 4.0, "unixReviewTime": 1}) + "\n")  # fmt: skip
    mp = write(
        tmp_path / "meta_Toys.json",
        str({"asin": "B1", "title": "Toy", "categories": [["Toys", "Cars"]]}) + "\n",
    )
    inter, feats = read_file(DataConfig(name="file", path=str(rp)))
    assert feats.to_dicts()[0]["category"] == "Toys > Cars" and feats["title"].to_list() == ["Toy"]
    assert mp.exists()


def test_amazon_literal_meta_is_never_evaluated(tmp_path):
    rp = write(
        tmp_path / "X_5.json", json.dumps({"reviewerID": "U", "asin": "B1", "unixReviewTime": 1}) + "\n"
    )
    write(tmp_path / "meta_X.json", "{'asin': __import__('os').getcwd()}\n")
    with pytest.raises(DataError) as err:
        read_file(DataConfig(name="file", path=str(rp)))
    assert "line 1" in one_line(err)


@pytest.mark.parametrize(
    ("line", "expect"),
    [("{not json", "line 2"), (json.dumps({"asin": "A", "unixReviewTime": 1}), "reviewerID")],
)
def test_amazon_bad_lines(tmp_path, line, expect):
    first = json.dumps({"reviewerID": "U", "asin": "A", "unixReviewTime": 1})
    p = write(tmp_path / "r.json", first + "\n" + line + "\n")
    with pytest.raises(DataError) as err:
        read_amazon_reviews(p)
    assert expect in one_line(err)


def test_unknown_extension_asks_for_format(tmp_path):
    p = write(tmp_path / "x.weird", "1 2\n")
    with pytest.raises(DataError) as err:
        read_file(DataConfig(name="file", path=str(p)))
    assert "data.format" in one_line(err)
    df, _ = read_file(DataConfig(name="file", path=str(p), format="sasrec"))
    assert df.height == 1


def test_dataset_registry_has_required_names():
    required = {"synthetic", "ml-100k", "ml-1m", "ml-10m", "ml-20m", "steam", "amazon-video-games-sasrec"} | {
        f"amazon-{c}" for c in ("Arts_Crafts_and_Sewing", "Industrial_and_Scientific", "Musical_Instruments",
                                "Office_Products", "Pet_Supplies", "Video_Games", "Magazine_Subscriptions")
    }  # fmt: skip
    assert required <= set(DATASETS)
    no_download = {"synthetic", "amazon-scientific-2018", "amazon-office-2014"}  # not distributed in this layout
    for name, recipe in DATASETS.items():
        assert recipe.name == name
        if name not in no_download:
            assert recipe.downloads and all(u.startswith("http") for d in recipe.downloads for u in d.urls)
        assert all(callable(layout.reader) and layout.name.startswith("read_") for layout in recipe.layouts)


def test_fast_typed_ratings_match_the_diagnosing_reader(tmp_path):
    rows = "".join(
        f"{u}\t{i}\t{(u * i) % 5 + 1}\t{880000000 + u * 31 + i}\n" for u in range(1, 30) for i in (3, 1, 7)
    )
    p = write(tmp_path / "u.data", rows)
    fast = fast_ratings(p, sep="\t", has_header=False, width=4, cols=(0, 1, 2, 3))
    slow = ml100k_slow(p)
    assert fast is not None and fast["user"].dtype == pl.Int64
    cast = fast.with_columns(pl.col("user", "item").cast(pl.String), pl.col("timestamp").cast(pl.Float64))
    assert cast.equals(slow.select(cast.columns))
    dat = write(tmp_path / "ratings.dat", rows.replace("\t", "::"))
    fast_dat = fast_ratings(dat, sep=":", has_header=False, width=7, cols=(0, 2, 4, 6))
    assert fast_dat.equals(fast)
    assert ml_dat_slow(dat).select(cast.columns).equals(cast)
    # malformed input: the fast path declines and the slow path names the line
    bad = write(tmp_path / "bad.data", rows + "5\t6\n")
    assert fast_ratings(bad, sep="\t", has_header=False, width=4, cols=(0, 1, 2, 3)) is None
    with pytest.raises(DataError, match="line 88"):
        read_ml100k(bad)


def test_ml20m_ratings_csv_takes_the_typed_path_and_matches_the_diagnosing_reader(tmp_path):
    """The header'd ML-20M ratings.csv is read typed (integer ids); polars once refused that schema against the
    header, so the slow string path ran silently every time."""
    rows = "".join(f"{u},{i},{(u + i) % 10 / 2 + 0.5},{1112486027 + 7 * u - i}\n" for u in (1, 2, 30) for i in (29, 7))
    p = write(tmp_path / "ratings.csv", "userId,movieId,rating,timestamp\n" + rows)
    fast, _ = read_ml_csv(p)
    assert fast["user"].dtype == pl.Int64 and fast["timestamp"].dtype == pl.Int64 and fast.height == 6
    slow = read_delimited(p, sep=",", user_col="userId", item_col="movieId", time_col="timestamp",
                          rating_col="rating")  # fmt: skip
    cast = fast.with_columns(pl.col("user", "item").cast(pl.String), pl.col("timestamp").cast(pl.Float64))
    assert cast.equals(slow.select(cast.columns))


def test_steam_python_literal_reviews_and_games(tmp_path):
    reviews = [
        {"username": "ann", "product_id": "620", "date": "2014-01-02", "text": "great"},
        {"username": "bob", "product_id": "10", "date": "2013-12-31"},
    ]
    games = [{"id": "620", "app_name": "Portal 2", "genres": ["Action", "Adventure"], "developer": "Valve"}]
    rp = _gz_lines(tmp_path / "steam_reviews.json.gz", [str(r) for r in reviews])
    gp = _gz_lines(tmp_path / "steam_games.json.gz", [str(g) for g in games])
    inter, feats = read_steam(rp, gp)
    assert inter["user"].to_list() == ["ann", "bob"] and inter["timestamp"].to_list() == [16072, 16070]
    assert feats.to_dicts()[0]["title"] == "Portal 2" and feats.to_dicts()[0]["genres"] == "Action Adventure"


def test_ml10m_official_layout_with_half_star_ratings(tmp_path):
    """ML-10M as extracted from ml-10m.zip: ml-10M100K/ratings.dat (``::``, half stars) + movies.dat (UTF-8)."""
    folder = tmp_path / "ml-10M100K"
    folder.mkdir()
    movies = (122, 185, 231, 292, 316, 329)
    rows = [f"{u}::{i}::{((u + i) % 10 + 1) / 2}::{838985046 + 97 * u + i}" for u in range(1, 9) for i in movies]
    write(folder / "ratings.dat", "\n".join(rows) + "\n")
    titles = ["Boomerang (1992)::Comedy|Romance", "Net, The (1995)::Action|Crime", "Dumb & Dumber (1994)::Comedy",
              "Outbreak (1995)::Action|Drama", "Stargate (1994)::Action|Sci-Fi",
              "Star Trek: Generations (1994)::Sci-Fi"]  # fmt: skip
    text = "".join(f"{i}::{t}\n" for i, t in zip(movies, titles, strict=True))
    (folder / "movies.dat").write_text(text, encoding="utf-8")
    inter, feats = read_ml_dat(folder / "ratings.dat", folder / "movies.dat")
    assert inter.height == 48 and sorted(set(inter["rating"].to_list()))[:2] == [0.5, 1.0]
    assert feats["title"].to_list()[-1] == "Star Trek: Generations"
    d = prepare_data(DataConfig(name="ml-10m", rating_threshold=3.0, min_user_interactions=0,
                                min_item_interactions=0), tmp_path)  # fmt: skip
    assert d.stats["raw_interactions"] == 48 and d.stats["interactions"] == int((inter["rating"] >= 3.0).sum())
    assert d.item_features["title"].to_list()[0] == "Boomerang"


def test_ml10m_ratings_dat_bad_rating_names_line(tmp_path):
    p = write(tmp_path / "ratings.dat", "1::122::5::838985046\n1::185::nan::838983525\n")
    with pytest.raises(DataError) as err:
        read_ml_dat(p)
    assert "line 2" in one_line(err) and "finite" in str(err.value)


def test_steam_named_dataset(tmp_path):
    folder = tmp_path / "steam"
    folder.mkdir()
    reviews = [{"username": f"u{u}", "product_id": str(600 + i), "date": f"2014-01-{i + 1:02d}"}
               for u in range(3) for i in range(4)]  # fmt: skip
    _gz_lines(folder / "steam_reviews.json.gz", [str(r) for r in reviews])
    d = prepare_data(DataConfig(name="steam", download=False, min_user_interactions=0, min_item_interactions=0),
                     tmp_path)  # fmt: skip
    assert (d.num_users, d.num_items) == (3, 4) and d.stats["timestamps"] is True
