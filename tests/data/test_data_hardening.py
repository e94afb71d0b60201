"""Bad input at the reader boundary (issue #10 rows 2, 4, 8, 11): one-line DataError naming the file, exit 2,
nothing cached; and the k-core defaults of the named datasets.

Written against the public entry points only (``prepare_data`` and the CLI), so each test also ran against
the code before the fix, where it failed (see the report of the data branch)."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from seqrec.cli import app
from seqrec.config import DataConfig
from seqrec.data import prepare_data
from seqrec.errors import DataError

runner = CliRunner()
ROWS = [(f"u{u}", f"i{(u + k) % 9}", 100 * u + k) for u in range(8) for k in range(7)]


def csv_text(rows=ROWS, extra: str = "") -> str:
    return "user_id,item_id,timestamp\n" + "".join(f"{u},{i},{t}\n" for u, i, t in rows) + extra


def cache_dir() -> Path:
    import os

    return Path(os.environ["SEQREC_CACHE_DIR"])


def cache_entries() -> list[str]:
    root = cache_dir()
    return sorted(p.name for p in root.iterdir()) if root.exists() else []


def prepare_error(cfg: DataConfig, data_dir: Path) -> str:
    with pytest.raises(DataError) as err:
        prepare_data(cfg, data_dir)
    msg = str(err.value)
    assert "\n" not in msg, msg
    return msg


def cli_prepare(*sets: str, data_dir: Path) -> tuple[int, str]:
    args = ["data", "prepare", "--data-dir", str(data_dir)]
    for s in sets:
        args += ["--set", s]
    res = runner.invoke(app, args, env={"COLUMNS": "250"})
    return res.exit_code, res.output


def file_cfg(path: Path, **kw) -> DataConfig:
    return DataConfig(name="file", path=str(path), min_user_interactions=0, min_item_interactions=0, **kw)


# ------------------------------------------------------------------------------------------------- row 2


@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "NaN", "1e400"])
@pytest.mark.parametrize("split", ["leave_one_out", "global_temporal"])
def test_nonfinite_timestamp_is_one_line_error_exit_2_nothing_cached(tmp_path, value, split):
    p = tmp_path / "events.csv"
    p.write_text(csv_text(extra=f"u1,i3,{value}\n"))
    bad_line = len(ROWS) + 2  # header + rows + the bad one
    msg = prepare_error(file_cfg(p, split=split), tmp_path)
    assert str(p) in msg and f"line {bad_line}" in msg and "column 3" in msg and "timestamp" in msg, msg
    code, out = cli_prepare("data.name=file", f"data.path={p}", f"data.split={split}", data_dir=tmp_path)
    assert code == 2 and "error:" in out and "Traceback" not in out, out
    assert cache_entries() == []


def test_nonfinite_rating_is_refused(tmp_path):
    p = tmp_path / "r.csv"
    p.write_text("user_id,item_id,timestamp,rating\n1,2,3,4\n1,3,4,nan\n")
    msg = prepare_error(file_cfg(p, rating_col="rating", rating_threshold=3.0), tmp_path)
    assert "line 3" in msg and "rating" in msg


def test_nonfinite_parquet_timestamp_is_refused(tmp_path):
    import polars as pl

    p = tmp_path / "x.parquet"
    pl.DataFrame({"user_id": ["a", "a", "b"], "item_id": ["1", "2", "1"], "timestamp": [1.0, float("nan"), 2.0]}
                 ).write_parquet(p)  # fmt: skip
    msg = prepare_error(file_cfg(p), tmp_path)
    assert str(p) in msg and "line 2" in msg and "finite" in msg


def test_preprocess_refuses_nonfinite_timestamps_defensively():
    import polars as pl

    from seqrec.data.preprocess import preprocess

    df = pl.DataFrame({"user": ["a", "a"], "item": ["x", "y"], "timestamp": [1.0, float("inf")]})
    with pytest.raises(DataError, match="finite"):
        preprocess(df, source="frame")


# ------------------------------------------------------------------------------------------------- row 4


def _reviews_gz() -> bytes:
    lines = [json.dumps({"reviewerID": f"U{u}", "asin": f"A{i}", "unixReviewTime": 10 * u + i, "overall": 5.0})
             for u in range(20) for i in range(8)]  # fmt: skip
    return gzip.compress(("\n".join(lines) + "\n").encode())


@pytest.mark.parametrize(
    ("name", "payload"),
    [
        ("Cat_5.json.gz", lambda: _reviews_gz()[: len(_reviews_gz()) // 2]),  # truncated
        ("Cat_5.json.gz", lambda: _reviews_gz()[:-6]),  # truncated in the trailer
        ("Cat_5.json.gz", lambda: b"plain text, not gzip\n"),
        ("events.csv.gz", lambda: gzip.compress(csv_text().encode())[:40]),
        ("events.csv.gz", lambda: csv_text().encode()),  # a plain CSV named .gz
        ("v.txt.gz", lambda: gzip.compress(b"1 2\n1 3\n" * 50)[:30]),
        # gzip magic under a plain name: polars decompresses by magic bytes, so these are gzip too (fuzzer find)
        ("v.txt", lambda: b"\x1f\x8b1\n1 1\n1 1\n"),
        ("events.csv", lambda: gzip.compress(csv_text().encode())[:40]),
    ],
    ids=["json-half", "json-no-trailer", "json-not-gzip", "csv-truncated", "csv-not-gzip", "txt-truncated",
         "txt-magic", "csv-magic-truncated"],
)
def test_bad_gzip_is_one_line_error_naming_the_file(tmp_path, name, payload):
    p = tmp_path / name
    p.write_bytes(payload())
    msg = prepare_error(file_cfg(p), tmp_path)
    assert str(p) in msg and "truncated or not gzip" in msg, msg
    code, out = cli_prepare("data.name=file", f"data.path={p}", data_dir=tmp_path)
    assert code == 2 and "error:" in out and "Aborted" not in out and "Traceback" not in out, out
    assert cache_entries() == []


def test_truncated_amazon_meta_names_the_meta_file(tmp_path):
    folder = tmp_path / "amazon-Software"
    folder.mkdir()
    (folder / "Software_5.json.gz").write_bytes(_reviews_gz())
    meta = gzip.compress(b"".join(json.dumps({"asin": f"A{i}", "title": "t"}).encode() + b"\n" for i in range(99)))
    (folder / "meta_Software.json.gz").write_bytes(meta[: len(meta) // 2])
    msg = prepare_error(DataConfig(name="amazon-Software"), tmp_path)
    assert str(folder / "meta_Software.json.gz") in msg and "truncated or not gzip" in msg


def test_truncated_steam_reviews_names_the_file(tmp_path):
    folder = tmp_path / "steam"
    folder.mkdir()
    lines = "".join(str({"username": f"u{u}", "product_id": str(i), "date": "2014-01-02"}) + "\n"
                    for u in range(30) for i in range(6))  # fmt: skip
    data = gzip.compress(lines.encode())
    (folder / "steam_reviews.json.gz").write_bytes(data[: len(data) // 2])
    msg = prepare_error(DataConfig(name="steam", download=False), tmp_path)
    assert str(folder / "steam_reviews.json.gz") in msg and "truncated or not gzip" in msg


@pytest.mark.parametrize("name", ["events.csv.gz", "events.csv"])
def test_gzip_csv_reads(tmp_path, name):
    p = tmp_path / name
    p.write_bytes(gzip.compress(csv_text().encode()))
    d = prepare_data(file_cfg(p), tmp_path)
    assert d.num_users == 8 and d.stats["interactions"] == len(ROWS)


# ------------------------------------------------------------------------------------------------- row 8

HUGE = str(2**64)  # 18446744073709551616: beyond int64 and uint64


@pytest.mark.parametrize(
    ("name", "body"),
    [
        ("e.csv", csv_text(extra=f"u1,{HUGE},5\n")),
        ("e.csv", "user_id,item_id,timestamp\n" + "".join(f"{u},{2**64 + i},{u + i}\n" for u in range(5)
                                                          for i in range(4))),  # fmt: skip
        ("v.txt", "".join(f"{u} {i}\n" for u in range(1, 6) for i in range(1, 5)) + f"1 {HUGE}\n"),
        ("v.txt", "".join(f"{u} {i}\n" for u in range(1, 6) for i in range(1, 5)) + f"{HUGE} 1\n"),
    ],
)
def test_ids_beyond_int64_stay_strings(tmp_path, name, body):
    p = tmp_path / name
    p.write_text(body)
    d = prepare_data(file_cfg(p), tmp_path)
    ids = set(d.item_ids[1:]) | set(d.user_ids)
    assert any(x.startswith("1844674407370955161") for x in ids)
    assert list(d.item_ids[1:]) == sorted(d.item_ids[1:], key=lambda s: (not s.lstrip("-").isdigit(),
                                                                            int(s) if s.lstrip("-").isdigit() else 0,
                                                                            s))  # fmt: skip


def test_review_time_beyond_int64_is_one_line_error(tmp_path):
    p = tmp_path / "r_5.json"
    good = [json.dumps({"reviewerID": "U", "asin": f"A{i}", "unixReviewTime": i}) for i in range(3)]
    p.write_text("\n".join([*good, json.dumps({"reviewerID": "U", "asin": "B", "unixReviewTime": 2**64})]) + "\n")
    msg = prepare_error(file_cfg(p), tmp_path)
    assert str(p) in msg and "line 4" in msg and "unixReviewTime" in msg


# ------------------------------------------------------------------------------------------------- row 11


def _u_data(data_dir: Path) -> None:
    """8 users x 7 items plus one item rated once: 5-core would drop it, the ML-100K default keeps it."""
    (data_dir / "ml-100k").mkdir(parents=True)
    rows = [f"{u}\t{i}\t3\t{1000 + 10 * u + i}\n" for u in range(1, 9) for i in range(1, 8)] + ["1\t99\t4\t5000\n"]
    (data_dir / "ml-100k" / "u.data").write_text("".join(rows))


def test_ml100k_defaults_to_no_kcore_and_reports_it(tmp_path):
    _u_data(tmp_path)
    d = prepare_data(DataConfig(name="ml-100k"), tmp_path)
    assert (d.num_users, d.num_items) == (8, 8)
    code, out = cli_prepare("data.name=ml-100k", data_dir=tmp_path)
    assert code == 0 and "k-core" in out and "items 8 → 8" in out, out
    five = prepare_data(DataConfig(name="ml-100k", min_user_interactions=5, min_item_interactions=5), tmp_path)
    assert five.num_items == 7 and five.stats["kcore"]["before"]["items"] == 8


def test_sasrec_text_dataset_defaults_to_no_kcore(tmp_path):
    (tmp_path / "amazon-video-games").mkdir()
    lines = [f"{u} {i}\n" for u in range(1, 6) for i in range(1, 4)] + ["6 1\n", "6 2\n"]  # user 6: 2 items
    (tmp_path / "amazon-video-games" / "Video.txt").write_text("".join(lines))
    d = prepare_data(DataConfig(name="amazon-video-games-sasrec"), tmp_path)
    assert d.num_users == 6 and d.stats["kcore"]["min_user"] == 0


def test_file_and_synthetic_keep_five_core(tmp_path):
    p = tmp_path / "e.csv"
    p.write_text(csv_text(extra="u9,i1,1\n"))  # user u9 has one interaction
    d = prepare_data(DataConfig(name="file", path=str(p)), tmp_path)
    assert "u9" not in set(d.user_ids) and d.stats["kcore"]["min_user"] == 5


# ------------------------------------------------------------------------------------------------- more cases

DEEP = b"[" * 50_000 + b"]" * 50_000


BAD_INPUTS = [
        ("dup.csv", b"user_id,user_id,item_id,timestamp\n1,1,2,3\n", "duplicate column name 'user_id'"),
        ("dup.inter", b"user_id:token\tuser_id:token\n1\t2\n", "duplicate column name 'user_id'"),
        ("latin1.csv", b"user_id,item_id,timestamp\n1,caf\xe9,3\n1,caf\xe8,4\n", "line 2: not valid utf-8"),
        ("latin1.inter", b"user_id:token\titem_id:token\ttimestamp:float\n1\tcaf\xe9\t3\n", "line 2: not valid utf-8"),
        ("latin1.txt", b"1 2\n\xe9 3\n", "line 2: not valid utf-8"),
        ("latin1_5.json", b'{"reviewerID": "a", "asin": "\xe9", "unixReviewTime": 1}\n', "line 1: not valid utf-8"),
        ("deep_5.json", DEEP + b"\n", "line 1: not a valid JSON object"),
        ("deep.inter.json", DEEP, "not valid JSON"),
        ("list_5.json", b'{"reviewerID": ["a"], "asin": "b", "unixReviewTime": 1}\n', "reviewerID"),
        ("nan_5.json", b'{"reviewerID": "a", "asin": "b", "unixReviewTime": NaN}\n', "unixReviewTime"),
        ("inf_5.json", b'{"reviewerID": "a", "asin": "b", "unixReviewTime": Infinity}\n', "unixReviewTime"),
        ("bad.parquet", b"PAR1 not parquet PAR1", "not a readable Parquet file"),
        # numpy str arrays drop trailing NULs: "a\x00" and "a" would become one item (found by the fuzzer)
        ("nul.inter", b"user_id:token\titem_id:token\ttimestamp:float\n1\ta\x00\t0\n1\ta\t1\n", "NUL character"),
        ("nul.tsv", b"user_id\titem_id\ttimestamp\nu\x00\t1\t0\n", "line 2: user id"),
        ("nul_5.json", b'{"reviewerID": "a", "asin": "b\\u0000", "unixReviewTime": 1}\n', "NUL character"),
        ("nul.inter.json", b'{"u": ["a\\u0000"]}', "NUL character"),
]  # fmt: skip


@pytest.mark.parametrize(("name", "data", "expect"), BAD_INPUTS, ids=[c[0] for c in BAD_INPUTS])
def test_more_bad_inputs_are_one_line_errors(tmp_path, name, data, expect):
    p = tmp_path / name
    p.write_bytes(data)
    msg = prepare_error(file_cfg(p), tmp_path)
    assert str(p) in msg and expect in msg, msg


def test_parquet_column_types(tmp_path):
    import datetime

    import polars as pl

    p = tmp_path / "x.parquet"
    pl.DataFrame({"user_id": [[1], [2]], "item_id": ["a", "b"], "timestamp": [1, 2]}).write_parquet(p)
    assert "must hold user ids" in prepare_error(file_cfg(p), tmp_path)
    pl.DataFrame({"user_id": ["u", "u"], "item_id": ["a", "b"], "timestamp": [True, False]}).write_parquet(p)
    assert "must hold numbers" in prepare_error(file_cfg(p), tmp_path)
    stamps = [datetime.datetime(2020, 1, 2, 0, 0, 1), datetime.datetime(2020, 1, 2), datetime.datetime(2020, 1, 3)]
    pl.DataFrame({"user_id": ["u"] * 3, "item_id": ["a", "b", "c"], "timestamp": stamps}).write_parquet(p)
    d = prepare_data(file_cfg(p), tmp_path)  # datetimes order the sequence: b (00:00:00), a (00:00:01), c
    assert [d.item_ids[i] for i in d.test.inputs[0]] == ["b", "a"] and d.item_ids[d.test.targets[0]] == "c"
