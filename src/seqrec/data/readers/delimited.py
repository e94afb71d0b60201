"""CSV / TSV (optionally ``.gz``) and Parquet interaction files with configurable column names."""

from __future__ import annotations

import csv
from pathlib import Path

import polars as pl

from seqrec.data.readers.common import (
    PARSE_ERRORS,
    check_nonempty,
    finish,
    first_bad_line,
    first_line,
    polars_source,
    require_columns,
    scan_for_encoding_errors,
)
from seqrec.errors import DataError


def _header(path: Path, sep: str, quoted: bool) -> list[str]:
    header = first_line(path)
    try:
        return next(csv.reader([header], delimiter=sep)) if quoted else header.split(sep)
    except (csv.Error, StopIteration):
        raise DataError(f"{path}: line 1: malformed header") from None


def _check_header(path: Path, sep: str, quoted: bool) -> None:
    """Duplicate names are refused (polars would rename the second one and the first would win silently)."""
    seen: set[str] = set()
    for i, name in enumerate(_header(path, sep, quoted)):
        if name in seen:
            raise DataError(f"{path}: line 1, column {i + 1}: duplicate column name {name!r}")
        seen.add(name)


def _malformed(path: Path, sep: str, quoted: bool) -> DataError:
    """The DataError for a file polars could not parse: a bad byte, else the first row of the wrong width."""
    scan_for_encoding_errors(path)
    n_fields = len(_header(path, sep, quoted))
    return DataError(f"{path}: malformed row, {first_bad_line(path, sep, n_fields, quoted)}")


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
    check_nonempty(path)
    source = polars_source(path)
    _check_header(path, sep, quoted)
    try:
        raw = pl.read_csv(source, separator=sep, infer_schema=False, quote_char='"' if quoted else None)
    except pl.exceptions.NoDataError:
        raise DataError(f"{path}: file is empty") from None
    except PARSE_ERRORS:
        raise _malformed(path, sep, quoted) from None
    if raw.height == 0:
        raise DataError(f"{path}: no data rows after the header")
    require_columns(
        path, raw.columns, {"user": user_col, "item": item_col, "time": time_col, "rating": rating_col}
    )
    # a short row shows up as nulls in the last columns: report it as malformed
    if bool(raw[raw.columns[-1]].is_null().any()) and len(raw.columns) > 1:
        detail = first_bad_line(path, sep, len(raw.columns), quoted)
        if detail != "malformed row":
            raise DataError(f"{path}: malformed row, {detail}")
    return finish(path, raw, user_col, item_col, time_col, rating_col, header_lines=1)


def read_parquet(
    path: Path, *, user_col: str, item_col: str, time_col: str | None, rating_col: str | None = None
) -> pl.DataFrame:
    check_nonempty(path)
    try:
        raw = pl.read_parquet(path)
    except Exception as err:  # noqa: BLE001 - pyarrow/polars raise many types; the message says what failed
        raise DataError(f"{path}: not a readable Parquet file ({type(err).__name__})") from None
    except pl.exceptions.PanicException as err:  # a BaseException: corrupt files can panic the Rust reader
        raise DataError(f"{path}: not a readable Parquet file ({type(err).__name__})") from None
    if raw.height == 0:
        raise DataError(f"{path}: Parquet file has no rows")
    require_columns(
        path, raw.columns, {"user": user_col, "item": item_col, "time": time_col, "rating": rating_col}
    )
    return finish(path, raw, user_col, item_col, time_col, rating_col, header_lines=0)
