"""Amazon review data (2014 and 2018): reviews as JSON lines (optionally ``.gz``) + ``meta_*`` side information.

2014 meta lines are Python literals and are parsed with :func:`ast.literal_eval`, never ``eval``.
"""

from __future__ import annotations

import ast
import json
import warnings
from collections.abc import Iterator
from pathlib import Path

import polars as pl

from seqrec.data.readers.common import (
    NUL,
    NUL_MESSAGE,
    Frames,
    check_int64,
    check_nonempty,
    clean_text,
    finite_float,
    iter_lines,
)
from seqrec.errors import DataError

META_COLUMNS = ("item", "title", "brand", "category", "description", "price")


def iter_records(path: Path, allow_literal: bool) -> Iterator[tuple[int, dict]]:
    """Yield (line number, object) for JSON-lines files; Python-literal dict lines when ``allow_literal``."""
    for line_no, line in iter_lines(path):
        line = line.strip()
        if not line:
            continue
        try:
            obj = json.loads(line)
        except (ValueError, RecursionError):
            if not (allow_literal and line.startswith("{")):
                raise DataError(f"{path}: line {line_no}: not a valid JSON object") from None
            try:
                with warnings.catch_warnings():  # an odd escape in a text field is data, not a code warning
                    warnings.simplefilter("ignore", (SyntaxWarning, DeprecationWarning))
                    obj = ast.literal_eval(line)  # 2014 meta / Steam lines are Python literals; never eval()
            except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
                raise DataError(f"{path}: line {line_no}: neither JSON nor a Python literal dict") from None
        if not isinstance(obj, dict):
            raise DataError(f"{path}: line {line_no}: expected a JSON object, got {type(obj).__name__}")
        yield line_no, obj


def scalar_id(path: Path, line_no: int, obj: dict, field: str) -> str:
    """An id field (string or integer) as text; lists, objects, null and booleans are refused."""
    try:
        value = obj[field]
    except KeyError:
        raise DataError(f"{path}: line {line_no}: missing field {field!r}") from None
    if isinstance(value, bool) or not isinstance(value, str | int) or value == "":
        raise DataError(f"{path}: line {line_no}: field {field!r} must be a non-empty string or integer id, "
                        f"got {value!r}"[:300])  # fmt: skip
    text = str(value)
    if NUL in text:
        raise DataError(f"{path}: line {line_no}: field {field!r} {NUL_MESSAGE}")
    return text


def _unix_time(path: Path, line_no: int, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise DataError(f"{path}: line {line_no}: field 'unixReviewTime' must be an integer, got {value!r}"[:300])
    try:
        seconds = int(value)
    except (ValueError, OverflowError):  # "x", NaN, inf
        raise DataError(f"{path}: line {line_no}: field 'unixReviewTime' must be an integer, got {value!r}") from None
    return check_int64(path, line_no, "unixReviewTime", seconds)


def read_amazon_reviews(path: Path) -> pl.DataFrame:
    """Amazon 2014/2018 reviews: reviewerID, asin, overall (rating), unixReviewTime (seconds)."""
    check_nonempty(path)
    users: list[str] = []
    items: list[str] = []
    times: list[int] = []
    ratings: list[float | None] = []
    for line_no, obj in iter_records(path, allow_literal=True):
        users.append(scalar_id(path, line_no, obj, "reviewerID"))
        items.append(scalar_id(path, line_no, obj, "asin"))
        if "unixReviewTime" not in obj:
            raise DataError(f"{path}: line {line_no}: missing field 'unixReviewTime'")
        times.append(_unix_time(path, line_no, obj["unixReviewTime"]))
        ratings.append(finite_float(obj.get("overall")))
    if not users:
        raise DataError(f"{path}: file has no reviews")
    return pl.DataFrame(
        {"user": users, "item": items, "timestamp": pl.Series(times, dtype=pl.Int64), "rating": ratings},
        schema={"user": pl.String, "item": pl.String, "timestamp": pl.Int64, "rating": pl.Float64},
    )


def category(value: object) -> str | None:
    if isinstance(value, list | tuple) and value and all(isinstance(v, str) for v in value):
        return " > ".join(v.strip() for v in value if v.strip()) or None  # 2018: one path
    if isinstance(value, list | tuple) and value:  # 2014: list of paths
        paths = [" > ".join(map(str, p)) for p in value if isinstance(p, list | tuple) and p]
        return " | ".join(paths) or None
    return clean_text(value)


def read_amazon_meta(path: Path, keep: set[str] | None = None) -> pl.DataFrame | None:
    """``meta_*.json(.gz)``: asin, title, brand, category (2018) / categories (2014), description, price."""
    if not path.is_file():
        return None
    rows: dict[str, list] = {k: [] for k in META_COLUMNS}
    for line_no, obj in iter_records(path, allow_literal=True):
        asin = scalar_id(path, line_no, obj, "asin")
        if keep is not None and asin not in keep:
            continue
        rows["item"].append(asin)
        rows["title"].append(clean_text(obj.get("title")))
        rows["brand"].append(clean_text(obj.get("brand")))
        rows["category"].append(category(obj.get("category", obj.get("categories"))))
        rows["description"].append(clean_text(obj.get("description")))
        rows["price"].append(clean_text(obj.get("price")))
    return pl.DataFrame(rows, schema={k: pl.String for k in rows})


def read_amazon(reviews_path: Path, meta_path: Path | None = None) -> Frames:
    inter = read_amazon_reviews(reviews_path)
    features = None
    if meta_path is not None:
        features = read_amazon_meta(meta_path, keep=set(inter["item"].unique().to_list()))
    return inter, features
