"""Steam reviews crawled by Kang & McAuley (SASRec, ICDM'18): Python-literal lines (usually ``.json.gz``)."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import polars as pl

from seqrec.data.readers.amazon import iter_records, scalar_id
from seqrec.data.readers.common import Frames, check_nonempty, clean_text
from seqrec.errors import DataError

_EPOCH = date(1970, 1, 1).toordinal()


def _day(path: Path, line_no: int, obj: dict) -> int:
    if "date" not in obj:
        raise DataError(f"{path}: line {line_no}: missing field 'date'")
    try:
        return date.fromisoformat(str(obj["date"])).toordinal() - _EPOCH
    except ValueError:
        raise DataError(f"{path}: line {line_no}: field 'date' must be YYYY-MM-DD, got {obj['date']!r}") from None


def read_steam_games(path: Path) -> pl.DataFrame:
    """``steam_games.json.gz``: id, title / app_name, developer, genres, tags (lines without an id skipped)."""
    rows = []
    for _, obj in iter_records(path, allow_literal=True):
        if obj.get("id") is None or isinstance(obj["id"], list | dict):
            continue
        rows.append(
            (
                str(obj["id"]),
                clean_text(obj.get("title") or obj.get("app_name")),
                clean_text(obj.get("developer")),
                clean_text(obj.get("genres")),
                clean_text(obj.get("tags")),
            )
        )
    schema = {c: pl.String for c in ("item", "title", "developer", "genres", "tags")}
    return pl.DataFrame(rows, schema=schema, orient="row")


def read_steam(reviews_path: Path, games_path: Path | None = None) -> Frames:
    """Reviews (username, product_id, date ``YYYY-MM-DD``) + optional ``steam_games.json.gz`` titles.

    Timestamps are days since 1970 (ties within a day keep file order).
    """
    check_nonempty(reviews_path)
    users: list[str] = []
    items: list[str] = []
    days: list[int] = []
    for line_no, obj in iter_records(reviews_path, allow_literal=True):
        users.append(scalar_id(reviews_path, line_no, obj, "username"))
        items.append(scalar_id(reviews_path, line_no, obj, "product_id"))
        days.append(_day(reviews_path, line_no, obj))
    if not users:
        raise DataError(f"{reviews_path}: file has no reviews")
    inter = pl.DataFrame({"user": users, "item": items, "timestamp": pl.Series(days, dtype=pl.Int64)})
    features = read_steam_games(games_path) if games_path is not None and games_path.is_file() else None
    return inter, features
