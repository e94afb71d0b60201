"""MovieLens layouts: GroupLens ``u.data``/``u.item`` (100K), ``ratings.dat``/``movies.dat`` (1M, 10M),
``ratings.csv``/``movies.csv`` (20M), and the SASRec authors' ``ml-1m.txt`` with its item map to ``movies.dat``."""

from __future__ import annotations

from pathlib import Path

import polars as pl

from seqrec.data.readers.common import (
    PARSE_ERRORS,
    Frames,
    check_nonempty,
    decode,
    finish,
    first_bad_line,
    first_line,
    iter_lines,
    read_bytes,
    require_columns,
    scan_for_encoding_errors,
    split_title_year,
)
from seqrec.data.readers.delimited import read_delimited
from seqrec.data.readers.sasrec_text import read_sasrec_text
from seqrec.errors import DataError

ML100K_GENRES = [
    "unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime", "Documentary", "Drama",
    "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery", "Romance", "Sci-Fi", "Thriller", "War", "Western",
]  # fmt: skip
FEATURE_COLUMNS = ["item", "title", "year", "genres"]
SASREC_ITEM_MAP = "sas_to_original_items.txt"  # next to ml-1m.txt: ``sasItem movieID`` per line


def fast_ratings(path: Path, *, sep: str, has_header: bool, width: int, cols: tuple[int, int, int, int]):
    """Typed polars read of a well-formed ratings file: (user, item, rating, timestamp) at ``cols``.

    Integer ids stay integers (much faster for ML-10M/20M). Returns None when anything is off; the caller's
    string path then locates and names the problem.
    """
    u, i, r, t = cols
    schema = {f"c{j}": pl.String for j in range(width)}
    schema.update({f"c{u}": pl.Int64, f"c{i}": pl.Int64, f"c{r}": pl.Float64, f"c{t}": pl.Int64})
    try:
        # the header (already checked by the caller) is skipped rather than read: with has_header=True polars
        # refuses a schema whose names differ from the header's, and the fast path would silently never run
        raw = pl.read_csv(path, separator=sep, has_header=False, skip_rows=int(has_header), schema=schema,
                          quote_char=None)  # fmt: skip
    except PARSE_ERRORS:  # any failure: fall back to the diagnosing reader
        return None
    out = raw.select(
        pl.col(f"c{u}").alias("user"),
        pl.col(f"c{i}").alias("item"),
        pl.col(f"c{t}").alias("timestamp"),
        pl.col(f"c{r}").alias("rating"),
    )
    if out.height == 0 or bool(out.null_count().sum_horizontal().item()):
        return None
    if not bool(out["rating"].is_finite().all()):  # "nan" / "inf" parse as floats: let the slow path name them
        return None
    return out


def ml100k_slow(data_path: Path) -> pl.DataFrame:
    names = ["user_id", "item_id", "rating", "timestamp"]
    try:
        raw = pl.read_csv(
            data_path, separator="\t", has_header=False, new_columns=names, infer_schema=False, quote_char=None
        )
    except PARSE_ERRORS:
        scan_for_encoding_errors(data_path)
        detail = first_bad_line(data_path, "\t", 4, False, header=False)
        raise DataError(f"{data_path}: malformed row, {detail}") from None
    if raw.width != 4 or bool(raw["timestamp"].is_null().any()):
        raise DataError(f"{data_path}: malformed row, {first_bad_line(data_path, chr(9), 4, False, False)}")
    return finish(data_path, raw, "user_id", "item_id", "timestamp", "rating", header_lines=0)


def read_ml100k(data_path: Path, item_path: Path | None = None) -> Frames:
    """``u.data`` (tab separated user, item, rating, timestamp; no header) + ``u.item`` (``|``, latin-1)."""
    check_nonempty(data_path)
    inter = fast_ratings(data_path, sep="\t", has_header=False, width=4, cols=(0, 1, 2, 3))
    if inter is None:
        inter = ml100k_slow(data_path)
    features = None
    if item_path is not None and item_path.is_file():
        rows = []
        for line in decode(item_path, read_bytes(item_path), "latin-1").splitlines():
            parts = line.split("|")
            if len(parts) < 24:
                continue
            title, year = split_title_year(parts[1])
            genres = " ".join(g for g, flag in zip(ML100K_GENRES, parts[5:24], strict=True) if flag == "1")
            rows.append((parts[0], title, year or parts[2][-4:] or None, genres))
        features = pl.DataFrame(rows, schema=FEATURE_COLUMNS, orient="row")
    return inter, features


def ml_dat_slow(ratings_path: Path) -> pl.DataFrame:
    def malformed() -> DataError:
        scan_for_encoding_errors(ratings_path)
        return DataError(f"{ratings_path}: malformed row, {first_bad_line(ratings_path, '::', 4, False, False)}")

    try:
        raw = pl.read_csv(ratings_path, separator=":", has_header=False, infer_schema=False, quote_char=None)
    except PARSE_ERRORS:
        raise malformed() from None
    if raw.width != 7 or bool(raw[raw.columns[6]].is_null().any()) or any(
        bool((raw[c].fill_null("") != "").any()) for c in raw.columns[1:7:2]
    ):
        raise malformed()
    raw = raw.select(raw.columns[0:7:2]).rename(dict(zip(raw.columns[0:7:2], ["u", "i", "r", "t"], strict=True)))
    return finish(ratings_path, raw, "u", "i", "t", "r", header_lines=0)


def read_movies_dat(path: Path, encoding: str | None = None) -> pl.DataFrame:
    """``MovieID::Title::Genres``; ``encoding`` None: UTF-8, else Latin-1 (ML-1M's ``movies.dat`` is Latin-1)."""
    data = read_bytes(path)
    if encoding is None:
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            text = data.decode("latin-1")
    else:
        text = decode(path, data, encoding)
    rows = []
    for line in text.splitlines():
        parts = line.split("::")
        if len(parts) != 3:
            continue
        title, year = split_title_year(parts[1])
        rows.append((parts[0], title, year, parts[2].replace("|", " ")))
    return pl.DataFrame(rows, schema=FEATURE_COLUMNS, orient="row")


def read_ml_dat(ratings_path: Path, movies_path: Path | None = None) -> Frames:
    """ML-1M / ML-10M ``ratings.dat`` (``user::item::rating::timestamp``) + ``movies.dat``
    (``id::title::genres``)."""
    check_nonempty(ratings_path)
    inter = fast_ratings(ratings_path, sep=":", has_header=False, width=7, cols=(0, 2, 4, 6))
    if inter is None:
        inter = ml_dat_slow(ratings_path)
    features = None
    if movies_path is not None and movies_path.is_file():
        features = read_movies_dat(movies_path)
    return inter, features


def read_ml_csv(ratings_path: Path, movies_path: Path | None = None) -> Frames:
    """ML-20M ``ratings.csv`` (userId,movieId,rating,timestamp) + ``movies.csv`` (movieId,title,genres)."""
    check_nonempty(ratings_path)
    inter = None
    if first_line(ratings_path).strip() == "userId,movieId,rating,timestamp":
        inter = fast_ratings(ratings_path, sep=",", has_header=True, width=4, cols=(0, 1, 2, 3))
    if inter is None:
        inter = read_delimited(
            ratings_path, sep=",", user_col="userId", item_col="movieId", time_col="timestamp", rating_col="rating"
        )
    features = None
    if movies_path is not None and movies_path.is_file():
        try:
            movies = pl.read_csv(movies_path, infer_schema=False)
        except PARSE_ERRORS:
            scan_for_encoding_errors(movies_path)
            raise DataError(f"{movies_path}: not a readable CSV file (expected movieId,title,genres)") from None
        require_columns(movies_path, movies.columns, {"item": "movieId", "title": "title", "genres": "genres"})
        parsed = [split_title_year(t or "") for t in movies["title"].to_list()]
        features = pl.DataFrame(
            {
                "item": movies["movieId"],
                "title": [p[0] for p in parsed],
                "year": [p[1] for p in parsed],
                "genres": movies["genres"].str.replace_all("|", " ", literal=True),
            }
        )
    return inter, features


def read_item_map(path: Path) -> dict[str, str]:
    """``sas_to_original_items.txt``: ``sasItem movieID`` per line, one-to-one."""
    out: dict[str, str] = {}
    for line_no, text in iter_lines(path):
        parts = text.split()
        if not parts:
            continue
        if len(parts) != 2 or not all(p.isdigit() for p in parts):
            raise DataError(f"{path}: line {line_no}: expected 'sasItem movieID' (two integers), got {text!r}")
        if parts[0] in out:
            raise DataError(f"{path}: line {line_no}: item {parts[0]} is mapped twice")
        out[parts[0]] = parts[1]
    return out


def read_ml1m_sasrec(txt_path: Path, movies_path: Path | None = None) -> Frames:
    """The SASRec authors' ``ml-1m.txt`` (``user item`` per line, line order = chronology, ids from 1).

    Titles / years / genres come from GroupLens ``movies.dat`` (Latin-1) through ``sas_to_original_items.txt``
    next to ``ml-1m.txt``; either file missing means no item features (the interactions do not need them).
    """
    inter = read_sasrec_text(txt_path)
    map_path = txt_path.parent / SASREC_ITEM_MAP
    if movies_path is None or not movies_path.is_file() or not map_path.is_file():
        return inter, None
    mapping = read_item_map(map_path)
    movies = read_movies_dat(movies_path, encoding="latin-1")
    sas = pl.DataFrame({"item": list(mapping), "movie": list(mapping.values())}, schema={"item": pl.String,
                                                                                         "movie": pl.String})
    features = sas.join(movies.rename({"item": "movie"}), on="movie", how="left").select(FEATURE_COLUMNS)
    return inter, features
