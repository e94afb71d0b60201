"""The LC-Rec JSON layout: ``<Name>.inter.json`` = ``{user: [item, ...]}`` (each list chronological) and
``<Name>.item.json`` = ``{item: {title, description, brand, categories}}`` (HTML entities unescaped, tags
stripped). Ids are dense integers in the published files; they are read as strings. There are no timestamps:
the position in the file (user by user, list order) stands in for time."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl

from seqrec.data.readers.common import NUL, NUL_MESSAGE, Frames, clean_text, decode, read_bytes
from seqrec.errors import DataError

ITEM_FIELDS = ("title", "brand", "categories", "description")


def _load_object(path: Path) -> dict:
    text = decode(path, read_bytes(path))
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as err:
        raise DataError(f"{path}: line {err.lineno}, column {err.colno}: not valid JSON ({err.msg})") from None
    except RecursionError:
        raise DataError(f"{path}: not valid JSON (nested too deeply)") from None
    if not isinstance(obj, dict):
        raise DataError(f"{path}: expected a JSON object {{id: ...}} at the top level, got {type(obj).__name__}")
    if not obj:
        raise DataError(f"{path}: the JSON object is empty")
    return obj


def _item_id(path: Path, user: str, value: object) -> str:
    if isinstance(value, bool) or not isinstance(value, int | str) or value == "":
        raise DataError(f"{path}: user {user!r}: item ids must be integers or non-empty strings, got {value!r}"[:300])
    text = str(value)
    if NUL in text:
        raise DataError(f"{path}: user {user!r}: item id {NUL_MESSAGE}")
    return text


def _key(path: Path, key: str, what: str) -> str:
    if key == "" or NUL in key:
        raise DataError(f"{path}: {what} id {key!r} is empty or {NUL_MESSAGE}")
    return key


def read_lcrec_interactions(path: Path) -> pl.DataFrame:
    users: list[str] = []
    items: list[str] = []
    for user, seq in _load_object(path).items():
        user = _key(path, user, "user")
        if not isinstance(seq, list):
            raise DataError(f"{path}: user {user!r}: expected a list of item ids, got {type(seq).__name__}")
        items.extend(_item_id(path, user, v) for v in seq)
        users.extend([user] * len(seq))
    if not users:
        raise DataError(f"{path}: file has no interactions (every user's list is empty)")
    return pl.DataFrame(
        {"user": users, "item": items, "timestamp": pl.int_range(0, len(users), dtype=pl.Int64, eager=True)},
        schema={"user": pl.String, "item": pl.String, "timestamp": pl.Int64},
    )


def read_lcrec_items(path: Path) -> pl.DataFrame:
    rows: dict[str, list] = {k: [] for k in ("item", *ITEM_FIELDS)}
    for item, fields in _load_object(path).items():
        if not isinstance(fields, dict):
            raise DataError(f"{path}: item {item!r}: expected an object of text fields, got {type(fields).__name__}")
        rows["item"].append(_key(path, item, "item"))
        for key in ITEM_FIELDS:
            rows[key].append(clean_text(fields.get(key)))
    return pl.DataFrame(rows, schema={k: pl.String for k in rows})


def read_lcrec(inter_path: Path, item_path: Path | None = None) -> Frames:
    inter = read_lcrec_interactions(inter_path)
    features = read_lcrec_items(item_path) if item_path is not None and item_path.is_file() else None
    return inter, features
