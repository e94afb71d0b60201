"""RecBole atomic files: tab separated, typed headers (``user_id:token``, ``timestamp:float``), ``.inter``/``.item``."""

from __future__ import annotations

from pathlib import Path

import polars as pl

from seqrec.data.readers.common import (
    PARSE_ERRORS,
    Frames,
    check_nonempty,
    finish,
    first_bad_line,
    first_line,
    require_columns,
    scan_for_encoding_errors,
)
from seqrec.errors import DataError

ATOMIC_TYPES = ("token", "token_seq", "float", "float_seq")
FEATURE_RENAMES = {"movie_title": "title", "class": "genres", "release_year": "year"}  # RecBole ML names


def read_atomic_table(path: Path) -> tuple[pl.DataFrame, dict[str, str]]:
    """An atomic file: tab separated, header ``name:type``; returns the frame (all str) and {name: type}."""
    check_nonempty(path)
    header = first_line(path).split("\t")
    types: dict[str, str] = {}
    names: list[str] = []
    for i, h in enumerate(header):
        name, _, typ = h.partition(":")
        if not name or typ not in ATOMIC_TYPES:
            raise DataError(
                f"{path}: line 1, column {i + 1}: expected a typed header "
                f"'name:token|token_seq|float|float_seq', got {h!r}"
            )
        if name in types:
            raise DataError(f"{path}: line 1, column {i + 1}: duplicate column name {name!r}")
        names.append(name)
        types[name] = typ
    try:
        raw = pl.read_csv(
            path, separator="\t", infer_schema=False, quote_char=None, new_columns=names, has_header=True
        )
    except PARSE_ERRORS:
        scan_for_encoding_errors(path)
        raise DataError(f"{path}: malformed row, {first_bad_line(path, chr(9), len(names), False)}") from None
    if raw.height == 0:
        raise DataError(f"{path}: no data rows after the header")
    if len(names) > 1 and bool(raw[names[-1]].is_null().any()):
        detail = first_bad_line(path, "\t", len(names), False)
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
    raw, _ = read_atomic_table(inter_path)
    require_columns(inter_path, raw.columns, {"user": user_col, "item": item_col, "time": time_col})
    if rating_col is None and "rating" in raw.columns:
        rating_col = "rating"
    require_columns(inter_path, raw.columns, {"rating": rating_col})
    inter = finish(inter_path, raw, user_col, item_col, time_col, rating_col, header_lines=1)
    features = None
    if item_path is not None and item_path.is_file():
        items, types = read_atomic_table(item_path)
        require_columns(item_path, items.columns, {"item": item_col})
        features = items.drop([c for c in items.columns if c == "item" and c != item_col]).rename({item_col: "item"})
        renames = {k: v for k, v in FEATURE_RENAMES.items() if k in features.columns and v not in features.columns}
        features = features.rename(renames)
        floats = [c for c in features.columns if types.get(c) == "float"]
        features = features.with_columns(pl.col(c).cast(pl.Float64, strict=False) for c in floats)
    return inter, features
