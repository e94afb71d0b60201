"""Reader fuzzing: random bytes, truncation, column permutations and NaN / inf / huge values in every format.

Every outcome must be either a parsed frame whose preprocessing satisfies the invariants (finite timestamps,
stable chronological order with ties in file order, dense users 0..m-1 and items 1..n in the documented id
order, splits that run) or a :class:`DataError` with a one-line message naming the file; never another
exception. The default run is bounded (``FAST`` examples per format); ``-m slow`` runs ``LONG``.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import re
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from seqrec.config import DataConfig
from seqrec.data.files import read_file
from seqrec.data.prepare import make_split
from seqrec.data.preprocess import preprocess
from seqrec.data.readers.movielens import read_ml100k, read_ml_dat
from seqrec.data.readers.steam import read_steam
from seqrec.errors import DataError

FAST, LONG = 40, 500

# --------------------------------------------------------------------------------------------------- values

IDS = st.one_of(
    st.sampled_from(["1", "2", "3", "007", "7", "-3", "0", str(2**63), str(2**64), "a", "b", "é", "x y", '"q"',
                     "", " ", "1.5", "nan", "9" * 25, "a\x00", "\x00"]),
    st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=4),
)  # fmt: skip
TIMES = st.one_of(
    st.integers(-(2**70), 2**70),
    st.integers(0, 30),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from(["nan", "inf", "-inf", "1e400", "", "abc", "1e3", " 5 ", "NaN", str(2**64)]),
)
CLEAN_IDS = st.one_of(st.integers(0, 12).map(str), st.sampled_from(["a", "b", "c", "é", "007", str(2**64)]))
CLEAN_TIMES = st.one_of(st.integers(0, 6), st.integers(-(2**40), 2**40), st.floats(-1e9, 1e9, allow_nan=False))
CLEAN_ROWS = st.lists(st.tuples(CLEAN_IDS, CLEAN_IDS, CLEAN_TIMES), min_size=1, max_size=30)
DIRTY_ROWS = st.lists(st.tuples(IDS, IDS, TIMES), max_size=25)
ROWS = st.one_of(CLEAN_ROWS, CLEAN_ROWS, DIRTY_ROWS)  # two thirds well formed, so parsing is exercised too


@st.composite
def mutated(draw, data: bytes) -> bytes:
    """The bytes unchanged, truncated, with a byte replaced / inserted, or replaced by random bytes."""
    kind = draw(st.sampled_from(["none", "none", "none", "truncate", "replace", "insert", "random"]))
    if kind == "random":
        return draw(st.binary(max_size=200))
    if not data or kind == "none":
        return data
    k = draw(st.integers(0, len(data)))
    if kind == "truncate":
        return data[:k]
    blob = draw(st.binary(min_size=1, max_size=4))
    if kind == "replace":
        return data[:k] + blob + data[k + len(blob) :]
    return data[:k] + blob + data[k:]


def _text(value) -> str:
    return value if isinstance(value, str) else repr(value) if isinstance(value, float) else str(value)


# --------------------------------------------------------------------------------------------------- formats


@st.composite
def delimited(draw, sep: str) -> tuple[str, bytes, dict]:
    rows = draw(ROWS)
    names = draw(st.permutations(["user_id", "item_id", "timestamp", "rating"]))
    buf = io.StringIO()
    writer = csv.writer(buf, delimiter=sep, lineterminator="\n") if draw(st.booleans()) else None
    lines = [names]
    for u, i, t in rows:
        values = {"user_id": u, "item_id": i, "timestamp": _text(t), "rating": _text(draw(CLEAN_TIMES | TIMES))}
        lines.append([values[n] for n in names])
    for line in lines:
        if writer is not None:
            writer.writerow(line)
        else:
            buf.write(sep.join(line) + "\n")
    data = draw(mutated(buf.getvalue().encode()))
    gz = draw(st.booleans())
    ext = ".csv" if sep == "," else ".tsv"
    extra = {"rating_col": draw(st.sampled_from([None, "rating"])),
             "time_col": draw(st.sampled_from(["timestamp", None]))}  # fmt: skip
    return (ext + ".gz", gzip.compress(data) if draw(st.booleans()) else data, extra) if gz else (ext, data, extra)


@st.composite
def parquet(draw) -> tuple[str, bytes, dict]:
    rows = draw(ROWS)
    names = draw(st.permutations(["user_id", "item_id", "timestamp"]))
    kinds = {n: draw(st.sampled_from(["str", "int", "float"])) for n in names}
    cols = {}
    columns = list(zip(*rows, strict=True)) if rows else [[], [], []]
    for n, values in zip(("user_id", "item_id", "timestamp"), columns, strict=True):
        if kinds[n] == "int":
            cols[n] = pl.Series(n, [draw(st.integers(-(2**63), 2**63 - 1)) for _ in values], dtype=pl.Int64)
        elif kinds[n] == "float":
            cols[n] = pl.Series(n, [draw(st.floats(allow_nan=True, allow_infinity=True)) for _ in values],
                                dtype=pl.Float64)  # fmt: skip
        else:
            cols[n] = pl.Series(n, [_text(v) for v in values], dtype=pl.String)
    frame = pl.DataFrame([cols[n] for n in names]) if rows else pl.DataFrame({n: [] for n in names})
    buf = io.BytesIO()
    frame.write_parquet(buf)
    return ".parquet", draw(mutated(buf.getvalue())), {}


@st.composite
def atomic(draw) -> tuple[str, bytes, dict]:
    rows = draw(ROWS)
    header = {"user_id": "user_id:token", "item_id": "item_id:token", "timestamp": "timestamp:float"}
    names = draw(st.permutations(list(header)))
    lines = ["\t".join(header[n] for n in names)]
    for u, i, t in rows:
        values = {"user_id": u, "item_id": i, "timestamp": _text(t)}
        lines.append("\t".join(values[n] for n in names))
    return ".inter", draw(mutated(("\n".join(lines) + "\n").encode())), {}


SAS_IDS = st.one_of(st.integers(-5, 40), st.integers(-(2**70), 2**70), st.sampled_from(["x", "1.0", "", "+3", "1_0"]))


@st.composite
def sasrec(draw) -> tuple[str, bytes, dict]:
    ids = st.integers(1, 12) | SAS_IDS if draw(st.booleans()) else st.integers(1, 12)
    rows = draw(st.lists(st.tuples(ids, ids), max_size=30))
    seps = st.sampled_from([" ", " ", "  ", "\t"])
    text = "".join(f"{u}{draw(seps)}{i}\n" for u, i in rows)
    return ".txt", draw(mutated(text.encode())), {}


JSON_VALUES = st.one_of(IDS, st.integers(-(2**70), 2**70), st.floats(allow_nan=True, allow_infinity=True),
                        st.none(), st.booleans(), st.lists(st.integers(), max_size=2))  # fmt: skip
CLEAN_JSON_IDS = st.one_of(CLEAN_IDS, st.integers(0, 12))
CLEAN_JSON_TIMES = st.one_of(st.integers(0, 6), st.integers(0, 2**40))


@st.composite
def amazon(draw, gz: bool) -> tuple[str, bytes, dict]:
    lines = []
    clean = draw(st.integers(0, 2)) > 0
    ids, times = (CLEAN_JSON_IDS, CLEAN_JSON_TIMES) if clean else (JSON_VALUES, JSON_VALUES)
    for _ in range(draw(st.integers(0, 20))):
        obj = {"reviewerID": draw(ids), "asin": draw(ids), "unixReviewTime": draw(times),
               "overall": draw(JSON_VALUES)}  # fmt: skip
        for key in draw(st.lists(st.sampled_from(list(obj)), max_size=0 if clean else 1)):
            del obj[key]
        lines.append(json.dumps(obj) if draw(st.integers(0, 9)) else str(obj))  # sometimes a Python literal
    data = ("\n".join(lines) + "\n").encode()
    if gz:
        return "_5.json.gz", draw(mutated(gzip.compress(data))), {}
    return "_5.json", draw(mutated(data)), {}


@st.composite
def lcrec(draw) -> tuple[str, bytes, dict]:
    kind = draw(st.sampled_from(["clean", "clean", "dict", "list", "scalar"]))
    if kind == "clean":
        obj = {_text(draw(CLEAN_JSON_IDS)): draw(st.lists(CLEAN_JSON_IDS, max_size=6))
               for _ in range(draw(st.integers(1, 8)))}  # fmt: skip
    elif kind == "dict":
        obj = {_text(draw(IDS)): draw(st.one_of(st.lists(JSON_VALUES, max_size=6), JSON_VALUES))
               for _ in range(draw(st.integers(0, 8)))}  # fmt: skip
    elif kind == "list":
        obj = draw(st.lists(st.lists(st.integers(0, 5), max_size=3), max_size=3))
    else:
        obj = draw(JSON_VALUES)
    return ".inter.json", draw(mutated(json.dumps(obj).encode())), {}


FORMATS: dict[str, Callable[[], st.SearchStrategy]] = {
    "csv": lambda: delimited(","),
    "tsv": lambda: delimited("\t"),
    "parquet": parquet,
    "atomic": atomic,
    "sasrec": sasrec,
    "amazon": lambda: amazon(False),
    "amazon-gz": lambda: amazon(True),
    "lcrec": lcrec,
}
FORMAT_OF = {"csv": "csv", "tsv": "tsv", "parquet": "parquet", "atomic": "atomic", "sasrec": "sasrec",
             "amazon": "amazon", "amazon-gz": "amazon", "lcrec": "lcrec"}  # fmt: skip

# --------------------------------------------------------------------------------------------------- checks

_INT = re.compile(r"^-?\d+$")


def id_order_key(ids: list[str]):
    if all(_INT.match(x) for x in ids):
        return lambda s: (int(s), s)
    return lambda s: s


def check_frame(raw: pl.DataFrame, features: pl.DataFrame | None) -> None:
    """Preprocess without filtering and check every invariant against a plain-Python reference."""
    assert {"user", "item", "timestamp"} <= set(raw.columns)
    assert raw["timestamp"].dtype.is_numeric()
    ts = raw["timestamp"].cast(pl.Float64)
    assert ts.null_count() == 0 and bool(ts.is_finite().all()), "a reader let a non-finite timestamp through"
    try:
        inter, _ = preprocess(raw, min_user_interactions=0, min_item_interactions=0, source="fuzz")
    except DataError as err:
        assert "\n" not in str(err)
        return
    n = raw.height
    assert len(inter.items) == n and np.all(np.isfinite(inter.times.astype(np.float64)))
    assert np.all(np.diff(inter.users) >= 0)
    assert set(inter.users.tolist()) == set(range(inter.num_users))
    assert set(inter.items.tolist()) == set(range(1, inter.num_items + 1))
    users, items = [str(u) for u in inter.user_ids], [str(i) for i in inter.item_ids[1:]]
    assert users == sorted(users, key=id_order_key(users)) and items == sorted(items, key=id_order_key(items))
    # stable chronology: a stable sort of the file rows by timestamp, grouped by user
    rows = list(zip(raw["user"].cast(pl.String).to_list(), raw["item"].cast(pl.String).to_list(),
                    raw["timestamp"].to_list(), strict=True))  # fmt: skip
    expected: dict[str, list[str]] = {}
    for u, i, _ in sorted(rows, key=lambda r: r[2]):
        expected.setdefault(u, []).append(i)
    offsets = inter.offsets()
    got = {
        str(inter.user_ids[u]): [str(inter.item_ids[i]) for i in inter.items[offsets[u] : offsets[u + 1]]]
        for u in range(inter.num_users)
    }
    assert got == expected
    for split in ("leave_one_out", "global_temporal"):
        s = make_split(DataConfig(split=split), inter)
        assert s.train.nnz + len(s.valid) + len(s.test) <= n or split == "global_temporal"
        if "cutoff" in s.info:
            assert np.isfinite(s.info["cutoff"])
    if features is not None:
        assert "item" in features.columns


def run_case(fmt: str, suffix: str, data: bytes, extra: dict) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"fuzz{suffix}"
        path.write_bytes(data)
        cfg = DataConfig(name="file", path=str(path), format=FORMAT_OF[fmt], **extra)
        try:
            raw, features = read_file(cfg)
        except DataError as err:
            msg = str(err)
            assert "\n" not in msg and str(path) in msg, msg
            return
        check_frame(raw, features)


def profile(examples: int):
    """Bounded and reproducible in the default run (derandomized); random in the long profile."""
    return settings(
        max_examples=examples, deadline=None, suppress_health_check=list(HealthCheck), derandomize=examples == FAST
    )


def _fuzz(fmt: str, examples: int):
    @profile(examples)
    @given(case=FORMATS[fmt]())
    def body(case):
        suffix, data, extra = case
        run_case(fmt, suffix, data, extra)

    return body


@pytest.mark.parametrize("fmt", list(FORMATS))
def test_reader_fuzz(fmt):
    _fuzz(fmt, FAST)()


@pytest.mark.slow
@pytest.mark.parametrize("fmt", list(FORMATS))
def test_reader_fuzz_long(fmt):
    _fuzz(fmt, LONG)()


# --------------------------------------------------------------------------------------------------- MovieLens, Steam


@st.composite
def ratings(draw, sep: str) -> bytes:
    values = st.tuples(SAS_IDS, SAS_IDS, TIMES, TIMES)
    if draw(st.booleans()):
        values = st.tuples(st.integers(1, 9), st.integers(1, 9), st.integers(1, 5), st.integers(0, 9))
    rows = draw(st.lists(values, max_size=20))
    return draw(mutated("".join(sep.join(_text(v) for v in r) + "\n" for r in rows).encode()))


@st.composite
def steam(draw) -> bytes:
    lines = [str({"username": draw(JSON_VALUES), "product_id": draw(JSON_VALUES),
                  "date": draw(st.one_of(st.dates().map(str), JSON_VALUES))})
             for _ in range(draw(st.integers(0, 10)))]  # fmt: skip
    return draw(mutated(gzip.compress(("\n".join(lines) + "\n").encode())))


OTHER: dict[str, tuple[Callable[[], st.SearchStrategy], str, Callable]] = {
    "u.data": (lambda: ratings("\t"), "u.data", read_ml100k),
    "ratings.dat": (lambda: ratings("::"), "ratings.dat", read_ml_dat),
    "steam": (steam, "steam_reviews.json.gz", read_steam),
}


def _fuzz_other(name: str, examples: int):
    strategy, filename, reader = OTHER[name]

    @profile(examples)
    @given(data=strategy())
    def body(data):
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / filename
            path.write_bytes(data)
            try:
                raw, features = reader(path, None)
            except DataError as err:
                assert "\n" not in str(err) and str(path) in str(err), str(err)
                return
            check_frame(raw, features)

    return body


@pytest.mark.parametrize("name", list(OTHER))
def test_other_reader_fuzz(name):
    _fuzz_other(name, FAST)()


@pytest.mark.slow
@pytest.mark.parametrize("name", list(OTHER))
def test_other_reader_fuzz_long(name):
    _fuzz_other(name, LONG)()
