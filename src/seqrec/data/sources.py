"""Readers for interaction files, and the named datasets (:data:`DATASETS`) with where to find or fetch them.

Every reader returns ``(interactions, item_features)``: ``interactions`` is a polars DataFrame with
columns ``user`` and ``item`` (str, or integers for formats whose ids are integers), ``timestamp``
(int64/float64; the file line order when the source has no time) and optionally ``rating`` (float64), in
file order; ``item_features`` is ``None`` or a DataFrame keyed by the original item id (column ``item``,
str).

Formats: CSV/TSV/Parquet with configurable columns, RecBole atomic files (``.inter`` + ``.item``, typed
headers such as ``user_id:token``), the raw MovieLens layouts (``u.data``/``u.item``,
``ratings.dat``/``movies.dat``, ``ratings.csv``/``movies.csv``), SASRec-style ``user item`` text (line
order = time), Amazon review JSON (2014 and 2018; one object per line) with ``meta_*.json(.gz)`` side info
(2014 meta lines are Python literals and are parsed with :func:`ast.literal_eval`, never ``eval``), and
the Steam reviews of Kang & McAuley (Python-literal lines). Every malformed input raises a one-line
:class:`~seqrec.errors.DataError` naming the file, the line or field, and what was expected.
"""

from __future__ import annotations

import ast
import csv
import gzip
import html
import io
import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import polars as pl

from seqrec.config import DataConfig
from seqrec.errors import DataError

Frames = tuple[pl.DataFrame, pl.DataFrame | None]


# --------------------------------------------------------------------------------------------------
# helpers


def _open_text(path: Path) -> io.TextIOBase:
    if path.suffix == ".gz":
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8", errors="replace")
    return open(path, encoding="utf-8", errors="replace")


def _first_line(path: Path) -> str:
    with open(path, encoding="utf-8", errors="replace") as f:
        return f.readline()


def _check_nonempty(path: Path) -> None:
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    if path.stat().st_size == 0:
        raise DataError(f"{path}: file is empty")


def _first_bad_line(path: Path, sep: str, n_fields: int, quoted: bool, header: bool = True) -> str:
    """Locate the first row whose field count differs from ``n_fields`` (1-based line, plain scan)."""
    with open(path, encoding="utf-8", errors="replace", newline="") as f:
        if quoted:
            reader = csv.reader(f, delimiter=sep)
            for row in reader:
                line = reader.line_num
                if (header and line == 1) or not row:
                    continue
                if len(row) != n_fields:
                    return f"line {line}: expected {n_fields} fields, found {len(row)}"
        else:
            for line, text in enumerate(f, start=1):
                text = text.rstrip("\r\n")
                if (header and line == 1) or not text:
                    continue
                count = len(text.split(sep))
                if count != n_fields:
                    return f"line {line}: expected {n_fields} fields, found {count}"
    return "malformed row"


def _numeric(df: pl.DataFrame, col: str, path: Path, header_lines: int, what: str) -> pl.Series:
    """Cast a string column to float64, naming the first bad line on failure."""
    series = df[col]
    if series.dtype.is_numeric():
        bad = series.is_null()
    else:
        cast = series.str.strip_chars().cast(pl.Float64, strict=False)
        bad = cast.is_null()
        series = cast
    if bool(bad.any()):
        row = int(bad.arg_true()[0])
        value = df[col][row]
        raise DataError(
            f"{path}: line {row + 1 + header_lines}: field '{what}' must be a number, got {value!r}"
        )
    return series.cast(pl.Float64)


def _require_columns(path: Path, columns: list[str], wanted: dict[str, str | None]) -> None:
    for role, name in wanted.items():
        if name is not None and name not in columns:
            raise DataError(
                f"{path}: missing {role} column '{name}' (columns: {', '.join(columns)}; set data.{role}_col)"
            )


def _finish(
    path: Path,
    raw: pl.DataFrame,
    user: str,
    item: str,
    time: str | None,
    rating: str | None,
    header_lines: int,
) -> pl.DataFrame:
    """Raw string/numeric table → the standard interaction frame (timestamps: column or line order)."""
    for role, col in (("user", user), ("item", item)):
        nulls = raw[col].is_null()
        if bool(nulls.any()):
            row = int(nulls.arg_true()[0])
            raise DataError(f"{path}: line {row + 1 + header_lines}: empty {role} id in column '{col}'")
    cols = [pl.col(user).cast(pl.String).alias("user"), pl.col(item).cast(pl.String).alias("item")]
    out = raw.select(cols)
    if time is not None:
        out = out.with_columns(_numeric(raw, time, path, header_lines, time).alias("timestamp"))
    else:
        out = out.with_columns(pl.int_range(0, raw.height, dtype=pl.Int64).alias("timestamp"))
    if rating is not None:
        out = out.with_columns(_numeric(raw, rating, path, header_lines, rating).alias("rating"))
    return out


# --------------------------------------------------------------------------------------------------
# delimited files and parquet


def read_delimited(
    path: Path,
    *,
    sep: str,
    user_col: str,
    item_col: str,
    time_col: str | None,
    rating_col: str | None = None,
    quoted: bool = True,
) -> pl.DataFrame:
    """CSV/TSV with a header row; columns chosen by name (``time_col=None``: file order is the chronology)."""
    _check_nonempty(path)
    try:
        raw = pl.read_csv(path, separator=sep, infer_schema=False, quote_char='"' if quoted else None)
    except pl.exceptions.NoDataError:
        raise DataError(f"{path}: file is empty") from None
    except pl.exceptions.ComputeError:
        header = _first_line(path).rstrip("\r\n")
        n_fields = len(next(csv.reader([header], delimiter=sep))) if quoted else len(header.split(sep))
        raise DataError(f"{path}: malformed row, {_first_bad_line(path, sep, n_fields, quoted)}") from None
    if raw.height == 0:
        raise DataError(f"{path}: no data rows after the header")
    _require_columns(
        path, raw.columns, {"user": user_col, "item": item_col, "time": time_col, "rating": rating_col}
    )
    # a short row shows up as nulls in the last columns: report it as malformed
    if bool(raw[raw.columns[-1]].is_null().any()) and len(raw.columns) > 1:
        detail = _first_bad_line(path, sep, len(raw.columns), quoted)
        if detail != "malformed row":
            raise DataError(f"{path}: malformed row, {detail}")
    return _finish(path, raw, user_col, item_col, time_col, rating_col, header_lines=1)


def read_parquet(
    path: Path, *, user_col: str, item_col: str, time_col: str | None, rating_col: str | None = None
) -> pl.DataFrame:
    _check_nonempty(path)
    try:
        raw = pl.read_parquet(path)
    except Exception as err:  # noqa: BLE001 - pyarrow/polars raise many types; the message says what failed
        raise DataError(f"{path}: not a readable Parquet file ({type(err).__name__})") from None
    if raw.height == 0:
        raise DataError(f"{path}: Parquet file has no rows")
    _require_columns(
        path, raw.columns, {"user": user_col, "item": item_col, "time": time_col, "rating": rating_col}
    )
    return _finish(path, raw, user_col, item_col, time_col, rating_col, header_lines=0)


# --------------------------------------------------------------------------------------------------
# RecBole atomic files


def _read_atomic_table(path: Path) -> tuple[pl.DataFrame, dict[str, str]]:
    """An atomic file: tab separated, header ``name:type``; returns the frame (all str) and {name: type}."""
    _check_nonempty(path)
    with open(path, encoding="utf-8", errors="replace") as f:
        header = f.readline().rstrip("\r\n").split("\t")
    types: dict[str, str] = {}
    names: list[str] = []
    for i, h in enumerate(header):
        name, _, typ = h.partition(":")
        if not name or typ not in ("token", "token_seq", "float", "float_seq"):
            raise DataError(
                f"{path}: line 1, column {i + 1}: expected a typed header "
                f"'name:token|token_seq|float|float_seq', got {h!r}"
            )
        names.append(name)
        types[name] = typ
    try:
        raw = pl.read_csv(
            path, separator="\t", infer_schema=False, quote_char=None, new_columns=names, has_header=True
        )
    except pl.exceptions.ComputeError:
        raise DataError(
            f"{path}: malformed row, {_first_bad_line(path, chr(9), len(names), False)}"
        ) from None
    if raw.height == 0:
        raise DataError(f"{path}: no data rows after the header")
    if len(names) > 1 and bool(raw[names[-1]].is_null().any()):
        detail = _first_bad_line(path, "\t", len(names), False)
        if detail != "malformed row":
            raise DataError(f"{path}: malformed row, {detail}")
    return raw, types


def read_atomic(
    inter_path: Path,
    item_path: Path | None = None,
    *,
    user_col: str = "user_id",
    item_col: str = "item_id",
    time_col: str | None = "timestamp",
    rating_col: str | None = None,
) -> Frames:
    """RecBole ``.inter`` (+ optional ``.item``). ``rating`` is used when present (or ``rating_col``)."""
    raw, _ = _read_atomic_table(inter_path)
    _require_columns(inter_path, raw.columns, {"user": user_col, "item": item_col, "time": time_col})
    if rating_col is None and "rating" in raw.columns:
        rating_col = "rating"
    _require_columns(inter_path, raw.columns, {"rating": rating_col})
    inter = _finish(inter_path, raw, user_col, item_col, time_col, rating_col, header_lines=1)
    features = None
    if item_path is not None and item_path.is_file():
        items, types = _read_atomic_table(item_path)
        _require_columns(item_path, items.columns, {"item": item_col})
        features = items.rename({item_col: "item"})
        renames = {"movie_title": "title", "class": "genres", "release_year": "year"}
        features = features.rename({k: v for k, v in renames.items() if k in features.columns})
        floats = [c for c in features.columns if types.get(c) == "float"]
        features = features.with_columns(pl.col(c).cast(pl.Float64, strict=False) for c in floats)
    return inter, features


# --------------------------------------------------------------------------------------------------
# MovieLens raw layouts (GroupLens zips)

ML100K_GENRES = [
    "unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime", "Documentary", "Drama",
    "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery", "Romance", "Sci-Fi", "Thriller", "War", "Western",
]  # fmt: skip

_TITLE_YEAR = re.compile(r"^(.*?)\s*\((\d{4})\)\s*$")


def _split_title_year(title: str) -> tuple[str, str | None]:
    m = _TITLE_YEAR.match(title)
    return (m.group(1), m.group(2)) if m else (title, None)


def _fast_ratings(path: Path, *, sep: str, has_header: bool, width: int, cols: tuple[int, int, int, int]):
    """Typed polars read of a well-formed ratings file: (user, item, rating, timestamp) at ``cols``.

    Integer ids stay integers (much faster for ML-10M/20M). Returns None when anything is off; the caller's
    string path then locates and names the problem.
    """
    u, i, r, t = cols
    schema = {f"c{j}": pl.String for j in range(width)}
    schema.update({f"c{u}": pl.Int64, f"c{i}": pl.Int64, f"c{r}": pl.Float64, f"c{t}": pl.Int64})
    try:
        raw = pl.read_csv(path, separator=sep, has_header=has_header, schema=schema, quote_char=None)
    except Exception:  # noqa: BLE001 - any failure: fall back to the diagnosing reader
        return None
    out = raw.select(
        pl.col(f"c{u}").alias("user"),
        pl.col(f"c{i}").alias("item"),
        pl.col(f"c{t}").alias("timestamp"),
        pl.col(f"c{r}").alias("rating"),
    )
    if out.height == 0 or bool(out.null_count().sum_horizontal().item()):
        return None
    return out


def _ml100k_slow(data_path: Path) -> pl.DataFrame:
    names = ["user_id", "item_id", "rating", "timestamp"]
    try:
        raw = pl.read_csv(
            data_path,
            separator="\t",
            has_header=False,
            new_columns=names,
            infer_schema=False,
            quote_char=None,
        )
    except pl.exceptions.ComputeError:
        detail = _first_bad_line(data_path, "\t", 4, False, header=False)
        raise DataError(f"{data_path}: malformed row, {detail}") from None
    if bool(raw["timestamp"].is_null().any()):
        raise DataError(f"{data_path}: malformed row, {_first_bad_line(data_path, chr(9), 4, False, False)}")
    return _finish(data_path, raw, "user_id", "item_id", "timestamp", "rating", header_lines=0)


def read_ml100k(data_path: Path, item_path: Path | None = None) -> Frames:
    """``u.data`` (tab separated user, item, rating, timestamp; no header) + ``u.item`` (``|``, latin-1)."""
    _check_nonempty(data_path)
    inter = _fast_ratings(data_path, sep="\t", has_header=False, width=4, cols=(0, 1, 2, 3))
    if inter is None:
        inter = _ml100k_slow(data_path)
    features = None
    if item_path is not None and item_path.is_file():
        rows = []
        for line in item_path.read_bytes().decode("latin-1").splitlines():
            parts = line.split("|")
            if len(parts) < 24:
                continue
            title, year = _split_title_year(parts[1])
            genres = " ".join(g for g, flag in zip(ML100K_GENRES, parts[5:24], strict=True) if flag == "1")
            rows.append((parts[0], title, year or parts[2][-4:] or None, genres))
        features = pl.DataFrame(rows, schema=["item", "title", "year", "genres"], orient="row")
    return inter, features


def _ml_dat_slow(ratings_path: Path) -> pl.DataFrame:
    try:
        raw = pl.read_csv(ratings_path, separator=":", has_header=False, infer_schema=False, quote_char=None)
    except pl.exceptions.ComputeError:
        raise DataError(
            f"{ratings_path}: malformed row, {_first_bad_line(ratings_path, '::', 4, False, False)}"
        ) from None
    if raw.width != 7 or bool(raw[raw.columns[6]].is_null().any()):
        raise DataError(
            f"{ratings_path}: malformed row, {_first_bad_line(ratings_path, '::', 4, False, False)}"
        )
    raw = raw.select(raw.columns[0:7:2]).rename(
        dict(zip(raw.columns[0:7:2], ["u", "i", "r", "t"], strict=True))
    )
    return _finish(ratings_path, raw, "u", "i", "t", "r", header_lines=0)


def read_ml_dat(ratings_path: Path, movies_path: Path | None = None) -> Frames:
    """ML-1M / ML-10M ``ratings.dat`` (``user::item::rating::timestamp``) + ``movies.dat``
    (``id::title::genres``)."""
    _check_nonempty(ratings_path)
    inter = _fast_ratings(ratings_path, sep=":", has_header=False, width=7, cols=(0, 2, 4, 6))
    if inter is None:
        inter = _ml_dat_slow(ratings_path)
    features = None
    if movies_path is not None and movies_path.is_file():
        rows = []
        text = movies_path.read_bytes()
        try:
            decoded = text.decode("utf-8")
        except UnicodeDecodeError:
            decoded = text.decode("latin-1")  # ML-1M movies.dat is latin-1
        for line in decoded.splitlines():
            parts = line.split("::")
            if len(parts) != 3:
                continue
            title, year = _split_title_year(parts[1])
            rows.append((parts[0], title, year, parts[2].replace("|", " ")))
        features = pl.DataFrame(rows, schema=["item", "title", "year", "genres"], orient="row")
    return inter, features


def read_ml_csv(ratings_path: Path, movies_path: Path | None = None) -> Frames:
    """ML-20M ``ratings.csv`` (userId,movieId,rating,timestamp) + ``movies.csv`` (movieId,title,genres)."""
    _check_nonempty(ratings_path)
    inter = None
    if _first_line(ratings_path).strip() == "userId,movieId,rating,timestamp":
        inter = _fast_ratings(ratings_path, sep=",", has_header=True, width=4, cols=(0, 1, 2, 3))
    if inter is None:
        inter = read_delimited(
            ratings_path,
            sep=",",
            user_col="userId",
            item_col="movieId",
            time_col="timestamp",
            rating_col="rating",
        )
    features = None
    if movies_path is not None and movies_path.is_file():
        movies = pl.read_csv(movies_path, infer_schema=False)
        _require_columns(movies_path, movies.columns, {"item": "movieId"})
        parsed = [_split_title_year(t or "") for t in movies["title"].to_list()]
        features = pl.DataFrame(
            {
                "item": movies["movieId"],
                "title": [p[0] for p in parsed],
                "year": [p[1] for p in parsed],
                "genres": movies["genres"].str.replace_all("|", " ", literal=True),
            }
        )
    return inter, features


# --------------------------------------------------------------------------------------------------
# SASRec text


def read_sasrec_text(path: Path) -> pl.DataFrame:
    """``user item`` per line (whitespace separated integers); line order is the chronology."""
    _check_nonempty(path)
    users: list[int] = []
    items: list[int] = []
    with open(path, encoding="utf-8", errors="replace") as f:
        for line_no, line in enumerate(f, start=1):
            parts = line.split()
            if not parts:
                continue
            if len(parts) != 2:
                raise DataError(f"{path}: line {line_no}: expected 2 fields 'user item', found {len(parts)}")
            try:
                users.append(int(parts[0]))
                items.append(int(parts[1]))
            except ValueError:
                raise DataError(
                    f"{path}: line {line_no}: expected integer user and item ids, got {line.strip()!r}"
                ) from None
    if not users:
        raise DataError(f"{path}: file has no interactions")
    n = len(users)
    return pl.DataFrame(
        {
            "user": pl.Series(users, dtype=pl.Int64),
            "item": pl.Series(items, dtype=pl.Int64),
            "timestamp": pl.int_range(0, n, dtype=pl.Int64, eager=True),
        }
    )


# --------------------------------------------------------------------------------------------------
# Amazon reviews (2014 / 2018) and Steam


def _iter_records(path: Path, allow_literal: bool) -> Iterator[tuple[int, dict]]:
    """Yield (line number, object) for JSON-lines files; Python-literal dict lines when ``allow_literal``."""
    with _open_text(path) as f:
        for line_no, line in enumerate(f, start=1):
            line = line.strip()
            if not line:
                continue
            try:
                obj = json.loads(line)
            except ValueError:
                if not (allow_literal and line.startswith("{")):
                    raise DataError(f"{path}: line {line_no}: not a valid JSON object") from None
                try:
                    obj = ast.literal_eval(line)  # 2014 meta / Steam lines are Python literals; never eval()
                except (ValueError, SyntaxError, MemoryError, RecursionError):
                    raise DataError(
                        f"{path}: line {line_no}: neither JSON nor a Python literal dict"
                    ) from None
            if not isinstance(obj, dict):
                raise DataError(f"{path}: line {line_no}: expected a JSON object, got {type(obj).__name__}")
            yield line_no, obj


def read_amazon_reviews(path: Path) -> pl.DataFrame:
    """Amazon 2014/2018 reviews: reviewerID, asin, overall (rating), unixReviewTime (seconds)."""
    _check_nonempty(path)
    users: list[str] = []
    items: list[str] = []
    times: list[int] = []
    ratings: list[float | None] = []
    for line_no, obj in _iter_records(path, allow_literal=True):
        try:
            users.append(str(obj["reviewerID"]))
            items.append(str(obj["asin"]))
            times.append(int(obj["unixReviewTime"]))
        except KeyError as err:
            raise DataError(f"{path}: line {line_no}: missing field {err.args[0]!r}") from None
        except (TypeError, ValueError):
            raise DataError(f"{path}: line {line_no}: field 'unixReviewTime' must be an integer") from None
        overall = obj.get("overall")
        ratings.append(float(overall) if isinstance(overall, int | float) else None)
    if not users:
        raise DataError(f"{path}: file has no reviews")
    return pl.DataFrame(
        {"user": users, "item": items, "timestamp": pl.Series(times, dtype=pl.Int64), "rating": ratings},
        schema_overrides={"rating": pl.Float64},
    )


_TAG = re.compile(r"<[^>]*>?")


def _clean_text(value: object) -> str | None:
    """Strings, lists of strings (joined) or nested lists (2014 categories) → one cleaned string or None."""
    if value is None:
        return None
    if isinstance(value, list | tuple):
        parts = [_clean_text(v) for v in value]
        text = " | ".join(p for p in parts if p) if any(isinstance(v, list | tuple) for v in value) else None
        if text is None:
            text = " ".join(p for p in parts if p)
    else:
        text = str(value)
    if "<" in text:
        text = _TAG.sub(" ", text)
    text = " ".join(html.unescape(text).split())
    return text or None


def _category(value: object) -> str | None:
    if isinstance(value, list | tuple) and value and all(isinstance(v, str) for v in value):
        return " > ".join(v.strip() for v in value if v.strip()) or None  # 2018: one path
    if isinstance(value, list | tuple) and value:  # 2014: list of paths
        paths = [" > ".join(map(str, p)) for p in value if isinstance(p, list | tuple) and p]
        return " | ".join(paths) or None
    return _clean_text(value)


def read_amazon_meta(path: Path, keep: set[str] | None = None) -> pl.DataFrame | None:
    """``meta_*.json(.gz)``: asin, title, brand, category (2018) / categories (2014), description, price."""
    if not path.is_file():
        return None
    rows: dict[str, list] = {k: [] for k in ("item", "title", "brand", "category", "description", "price")}
    for line_no, obj in _iter_records(path, allow_literal=True):
        asin = obj.get("asin")
        if asin is None:
            raise DataError(f"{path}: line {line_no}: missing field 'asin'")
        asin = str(asin)
        if keep is not None and asin not in keep:
            continue
        rows["item"].append(asin)
        rows["title"].append(_clean_text(obj.get("title")))
        rows["brand"].append(_clean_text(obj.get("brand")))
        rows["category"].append(_category(obj.get("category", obj.get("categories"))))
        rows["description"].append(_clean_text(obj.get("description")))
        rows["price"].append(_clean_text(obj.get("price")))
    return pl.DataFrame(rows, schema={k: pl.String for k in rows})


def read_amazon(reviews_path: Path, meta_path: Path | None = None) -> Frames:
    inter = read_amazon_reviews(reviews_path)
    features = None
    if meta_path is not None:
        features = read_amazon_meta(meta_path, keep=set(inter["item"].unique().to_list()))
    return inter, features


def read_steam(reviews_path: Path, games_path: Path | None = None) -> Frames:
    """Kang & McAuley Steam reviews (Python-literal lines: username, product_id, date ``YYYY-MM-DD``).

    Timestamps are days since 1970 (ties within a day keep file order). ``steam_games.json.gz`` gives titles.
    """
    _check_nonempty(reviews_path)
    users: list[str] = []
    items: list[str] = []
    days: list[int] = []
    epoch = date(1970, 1, 1).toordinal()
    for line_no, obj in _iter_records(reviews_path, allow_literal=True):
        try:
            users.append(str(obj["username"]))
            items.append(str(obj["product_id"]))
            days.append(date.fromisoformat(str(obj["date"])).toordinal() - epoch)
        except KeyError as err:
            raise DataError(f"{reviews_path}: line {line_no}: missing field {err.args[0]!r}") from None
        except ValueError:
            raise DataError(f"{reviews_path}: line {line_no}: field 'date' must be YYYY-MM-DD") from None
    inter = pl.DataFrame({"user": users, "item": items, "timestamp": pl.Series(days, dtype=pl.Int64)})
    features = None
    if games_path is not None and games_path.is_file():
        rows = []
        for _, obj in _iter_records(games_path, allow_literal=True):
            if "id" in obj:
                rows.append(
                    (
                        str(obj["id"]),
                        _clean_text(obj.get("title") or obj.get("app_name")),
                        _clean_text(obj.get("developer")),
                        _clean_text(obj.get("genres")),
                        _clean_text(obj.get("tags")),
                    )
                )
        features = pl.DataFrame(
            rows, schema=["item", "title", "developer", "genres", "tags"], orient="row"
        ).with_columns(pl.all().cast(pl.String))
    return inter, features


# --------------------------------------------------------------------------------------------------
# explicit files (data.name == "file")

_SUFFIX_FORMATS = {
    ".csv": "csv", ".tsv": "tsv", ".tab": "tsv", ".parquet": "parquet", ".pq": "parquet", ".inter": "atomic",
    ".txt": "sasrec", ".json": "amazon", ".jsonl": "amazon",
}  # fmt: skip


def detect_format(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix == ".gz":
        suffix = Path(path.stem).suffix.lower()
    fmt = _SUFFIX_FORMATS.get(suffix)
    if fmt is None:
        raise DataError(
            f"{path}: cannot infer the format from the extension (set data.format to one of "
            f"csv, tsv, parquet, atomic, sasrec, amazon)"
        )
    return fmt


def file_sidecars(path: Path, fmt: str) -> list[Path]:
    """Side-information files read together with ``path`` (part of the cache identity)."""
    if fmt == "atomic":
        return [path.with_suffix(".item")]
    if fmt == "amazon":
        name = path.name
        for suffix in (".json.gz", ".json", ".jsonl"):
            if name.endswith(suffix):
                stem = name[: -len(suffix)]
                base = stem[: -len("_5")] if stem.endswith("_5") else stem
                base = base.removeprefix("reviews_")
                return [path.with_name(f"meta_{base}{s}") for s in (".json.gz", ".json")]
    return []


def read_file(cfg: DataConfig) -> Frames:
    """Read ``cfg.path`` in ``cfg.format`` (``auto``: by extension)."""
    if cfg.path is None:
        raise DataError("data.path: required when data.name is 'file'")
    path = Path(cfg.path).expanduser()
    if not path.exists():
        raise DataError(f"{path}: file not found (data.path)")
    fmt = detect_format(path) if cfg.format == "auto" else cfg.format
    cols = {"user_col": cfg.user_col, "item_col": cfg.item_col, "time_col": cfg.time_col}
    if fmt in ("csv", "tsv"):
        sep = "," if fmt == "csv" else "\t"
        return read_delimited(path, sep=sep, rating_col=cfg.rating_col, **cols), None
    if fmt == "parquet":
        return read_parquet(path, rating_col=cfg.rating_col, **cols), None
    if fmt == "atomic":
        return read_atomic(path, path.with_suffix(".item"), rating_col=cfg.rating_col, **cols)
    if fmt == "sasrec":
        return read_sasrec_text(path), None
    if fmt == "amazon":
        metas = [p for p in file_sidecars(path, fmt) if p.is_file()]
        return read_amazon(path, metas[0] if metas else None)
    raise DataError(f"data.format: unknown format {fmt!r}")


# --------------------------------------------------------------------------------------------------
# named datasets


@dataclass(frozen=True)
class Download:
    """One file to fetch, URL by URL (mirrors); ``sha256``/``md5`` None: not known (printed and recorded)."""

    urls: tuple[str, ...]
    filename: str  # saved (or extracted) under <data_dir>/<recipe.folder>/
    sha256: str | None = None
    md5: str | None = None  # GroupLens publishes MD5 sums; verified in addition to sha256 when known
    archive_root: str | None = (
        None  # zip/tar: folder inside the archive whose content becomes the recipe folder
    )


@dataclass(frozen=True)
class Layout:
    """Files (relative to the data dir) that make a dataset available locally, and the reader for them."""

    reader: str  # key of READERS
    main: str  # interaction file; its presence selects this layout
    side: str | None = None  # optional side-information file


@dataclass(frozen=True)
class DatasetRecipe:
    name: str
    description: str
    layouts: tuple[Layout, ...]  # local layouts, tried in order; the first is what a download produces
    folder: str = ""  # download destination under the data dir
    downloads: tuple[Download, ...] = ()
    homepage: str = ""
    extra: dict = field(default_factory=dict)


READERS: dict[str, Callable[[Path, Path | None], Frames]] = {
    "atomic": lambda main, side: read_atomic(main, side),
    "ml100k": read_ml100k,
    "ml_dat": read_ml_dat,
    "ml_csv": read_ml_csv,
    "sasrec": lambda main, side: (read_sasrec_text(main), None),
    "amazon": read_amazon,
    "steam": read_steam,
}

_GROUPLENS = "https://files.grouplens.org/datasets/movielens"


def _movielens(name: str, md5: str, dat: tuple[str, str], reader: str, root: str, desc: str) -> DatasetRecipe:
    return DatasetRecipe(
        name=name,
        description=desc,
        layouts=(
            Layout(reader, f"{name}/{dat[0]}", f"{name}/{dat[1]}"),
            Layout("atomic", f"{name}/{name}.inter", f"{name}/{name}.item"),
            Layout(reader, f"{root}/{dat[0]}", f"{root}/{dat[1]}"),
        ),
        folder=name,
        downloads=(Download((f"{_GROUPLENS}/{name}.zip",), f"{name}.zip", md5=md5, archive_root=root),),
        homepage="https://grouplens.org/datasets/movielens/",
    )


AMAZON_2018_CATEGORIES = (
    "Arts_Crafts_and_Sewing", "Industrial_and_Scientific", "Musical_Instruments", "Office_Products",
    "Pet_Supplies", "Video_Games", "Magazine_Subscriptions", "Luxury_Beauty", "Prime_Pantry", "Software",
    "All_Beauty", "Appliances", "Gift_Cards", "Toys_and_Games", "Grocery_and_Gourmet_Food", "Digital_Music",
)  # fmt: skip

_AMAZON_MIRRORS = (
    "https://mcauleylab.ucsd.edu/public_datasets/data/amazon_v2",
    "https://jmcauley.ucsd.edu/data/amazon_v2",
    "http://deepyeti.ucsd.edu/jianmo/amazon",
)
# sha256 known only for the files in ../shared/data (same bytes as the public downloads, per its README)
_AMAZON_SHA256 = {
    "Magazine_Subscriptions_5.json.gz": "95c124603d62d6acdfd1bd62284934fb6c513db836ea64c2e8176c14256426f2",
    "meta_Magazine_Subscriptions.json.gz": "4e64f9028648dee43200a4bd3e7b8c497ffd80ea52018e8f994a5fbd5d97faf6",
}


def _amazon(category: str) -> DatasetRecipe:
    name = f"amazon-{category}"
    reviews, meta = f"{category}_5.json.gz", f"meta_{category}.json.gz"
    slug = category.lower().replace("_", "-")
    slug = {"magazine-subscriptions": "magazine"}.get(slug, slug)
    return DatasetRecipe(
        name=name,
        description=f"Amazon Review Data 2018 (Ni, Li & McAuley 2019), {category} 5-core reviews + metadata",
        layouts=(
            Layout("amazon", f"{name}/{reviews}", f"{name}/{meta}"),
            Layout("amazon", f"amazon-{slug}-2018/{reviews}", f"amazon-{slug}-2018/{meta}"),
            Layout("amazon", f"amazon-{slug}/{reviews}", f"amazon-{slug}/{meta}"),
        ),
        folder=name,
        downloads=(
            Download(
                tuple(f"{m}/categoryFilesSmall/{reviews}" for m in _AMAZON_MIRRORS),
                reviews,
                sha256=_AMAZON_SHA256.get(reviews),
            ),
            Download(
                tuple(f"{m}/metaFiles2/{meta}" for m in _AMAZON_MIRRORS[:2])
                + (f"{_AMAZON_MIRRORS[2]}/metaFiles2/{meta}",),
                meta,
                sha256=_AMAZON_SHA256.get(meta),
            ),
        ),
        homepage="https://cseweb.ucsd.edu/~jmcauley/datasets/amazon_v2/",
    )


def _build_datasets() -> dict[str, DatasetRecipe]:
    datasets: dict[str, DatasetRecipe] = {
        "synthetic": DatasetRecipe(
            "synthetic", "embedded generator (seqrec.data.synthetic), configured by data.synthetic", ()
        ),
        "ml-100k": _movielens(
            "ml-100k",
            "0e33842e24a9c977be4e0107933c0723",
            ("u.data", "u.item"),
            "ml100k",
            "ml-100k",
            "MovieLens 100K (GroupLens): 100,000 ratings, 943 users, 1,682 movies",
        ),
        "ml-1m": _movielens(
            "ml-1m",
            "c4d9eecfca2ab87c1945afe126590906",
            ("ratings.dat", "movies.dat"),
            "ml_dat",
            "ml-1m",
            "MovieLens 1M (GroupLens): 1,000,209 ratings, 6,040 users, 3,706 movies",
        ),
        "ml-10m": _movielens(
            "ml-10m",
            "ce571fd55effeba0271552578f2648bd",
            ("ratings.dat", "movies.dat"),
            "ml_dat",
            "ml-10M100K",
            "MovieLens 10M (GroupLens): 10,000,054 ratings, 69,878 users, 10,677 movies",
        ),
        "ml-20m": _movielens(
            "ml-20m",
            "cd245b17a1ae2cc31bb14903e1204af3",
            ("ratings.csv", "movies.csv"),
            "ml_csv",
            "ml-20m",
            "MovieLens 20M (GroupLens): 20,000,263 ratings, 138,493 users, 26,744 movies",
        ),
        "steam": DatasetRecipe(
            name="steam",
            description="Steam reviews crawled by Kang & McAuley (SASRec, ICDM'18): 7.8M reviews + game info",
            layouts=(
                Layout("steam", "steam/steam_reviews.json.gz", "steam/steam_games.json.gz"),
                Layout("sasrec", "steam/Steam.txt"),
            ),
            folder="steam",
            downloads=(
                Download(("http://cseweb.ucsd.edu/~wckang/steam_reviews.json.gz",), "steam_reviews.json.gz"),
                Download(("http://cseweb.ucsd.edu/~wckang/steam_games.json.gz",), "steam_games.json.gz"),
            ),
            homepage="https://github.com/kang205/SASRec",
        ),
        "amazon-video-games-sasrec": DatasetRecipe(
            name="amazon-video-games-sasrec",
            description="Amazon Video Games 5-core as preprocessed by the SASRec authors (Video.txt)",
            layouts=(
                Layout("sasrec", "amazon-video-games/Video.txt"),
                Layout("sasrec", "amazon-video-games-sasrec/Video.txt"),
            ),
            folder="amazon-video-games",
            downloads=(
                Download(
                    ("https://raw.githubusercontent.com/kang205/SASRec/master/data/Video.txt",),
                    "Video.txt",
                    # from ../shared/data/README.md (the authors' file as distributed with this project)
                    sha256="b7376fe24430743f411dc7f567285657b2adb3f74361cc7ba0aee94f3024b651",
                ),
            ),
            homepage="https://github.com/kang205/SASRec",
        ),
    }
    for category in AMAZON_2018_CATEGORIES:
        datasets[f"amazon-{category}"] = _amazon(category)
    return datasets


DATASETS: dict[str, DatasetRecipe] = _build_datasets()


def find_local(recipe: DatasetRecipe, data_dir: Path) -> tuple[Layout, Path, Path | None] | None:
    """The first layout of ``recipe`` present under ``data_dir``: (layout, main file, side file or None)."""
    for layout in recipe.layouts:
        main = data_dir / layout.main
        if main.is_file():
            side = data_dir / layout.side if layout.side else None
            return layout, main, side if side is not None and side.is_file() else None
    return None
