"""SASRec-style text: ``user item`` per line (whitespace separated integers); line order is the chronology."""

from __future__ import annotations

import re
from pathlib import Path

import polars as pl

from seqrec.data.readers.common import PARSE_ERRORS, Frames, check_nonempty, int_ids, is_gzip, iter_lines
from seqrec.errors import DataError

_DECIMAL = re.compile(r"^[+-]?[0-9]+$")  # what polars' Int64 parser accepts (Python's int() also takes "1_000")


def read_sasrec_text_reference(path: Path) -> pl.DataFrame:
    """Plain line-by-line reader: names the first bad line; ids beyond int64 stay strings."""
    check_nonempty(path)
    users: list[int] = []
    items: list[int] = []
    for line_no, line in iter_lines(path):
        parts = line.split()
        if not parts:
            continue
        if len(parts) != 2:
            raise DataError(f"{path}: line {line_no}: expected 2 fields 'user item', found {len(parts)}")
        if not all(_DECIMAL.match(p) for p in parts):
            raise DataError(f"{path}: line {line_no}: expected integer user and item ids, got {line.strip()!r}")
        user, item = int(parts[0]), int(parts[1])
        users.append(user)
        items.append(item)
    if not users:
        raise DataError(f"{path}: file has no interactions")
    return pl.DataFrame(
        {
            "user": int_ids(users),
            "item": int_ids(items),
            "timestamp": pl.int_range(0, len(users), dtype=pl.Int64, eager=True),
        }
    )


def _fast(path: Path) -> pl.DataFrame | None:
    """Typed polars read of a clean file (single spaces, no blank lines); None: let the reference decide."""
    if is_gzip(path):
        return None
    try:
        raw = pl.read_csv(
            path, separator=" ", has_header=False, schema={"user": pl.Int64, "item": pl.Int64}, quote_char=None
        )
    except PARSE_ERRORS:
        return None
    if raw.height == 0 or bool(raw.null_count().sum_horizontal().item()):
        return None
    return raw.with_columns(pl.int_range(0, raw.height, dtype=pl.Int64).alias("timestamp"))


def read_sasrec_text(path: Path) -> pl.DataFrame:
    """``user item`` per line; a polars fast path for clean files, the line-by-line reference otherwise."""
    check_nonempty(path)
    fast = _fast(path)
    return fast if fast is not None else read_sasrec_text_reference(path)


def read_sasrec(path: Path, side: Path | None = None) -> Frames:
    """Layout reader for SASRec text: no side information."""
    return read_sasrec_text(path), None
