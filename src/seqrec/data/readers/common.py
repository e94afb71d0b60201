"""What every reader shares: the frame contract, safe byte/line access (gzip aware), and column checks.

A reader returns :data:`Frames` = ``(interactions, item_features)``. ``interactions`` has columns ``user`` and
``item`` (str, or Int64 for formats whose ids are integers), ``timestamp`` (Int64/Float64, always finite; the
file position when the source has no time) and optionally ``rating`` (Float64, finite), in file order.
``item_features`` is None or a frame keyed by the original item id (column ``item``, str).

Everything a reader raises for bad input is a one-line :class:`~seqrec.errors.DataError` naming the file (and the
line / column / field when there is one): the helpers here translate gzip, decoding and polars failures at the
point where a file is parsed, so no other exception type reaches the caller.
"""

from __future__ import annotations

import csv
import gzip
import html
import io
import math
import re
import zlib
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import polars as pl

from seqrec.errors import DataError

Frames = tuple[pl.DataFrame, pl.DataFrame | None]
Reader = Callable[[Path, Path | None], Frames]  # (main file, optional side file) -> Frames

INT64_MAX = 2**63 - 1
NUL = "\x00"
# numpy's fixed-width str arrays (item_ids / user_ids) drop trailing NULs, so "a\x00" would become "a"
NUL_MESSAGE = "contains a NUL character (binary data?)"
GZIP_ERRORS = (gzip.BadGzipFile, EOFError, zlib.error)  # truncated, not gzip, corrupt stream
GZIP_MAGIC = b"\x1f\x8b"
# what pl.read_csv raises on bad bytes: its own errors, a Rust panic (a BaseException), and OSError from the gzip
# decoder it applies by itself to any file that starts with the gzip magic bytes
PARSE_ERRORS = (pl.exceptions.PolarsError, pl.exceptions.PanicException, OSError)


# --------------------------------------------------------------------------------------------------
# files, bytes and lines


def check_nonempty(path: Path) -> None:
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    if path.stat().st_size == 0:
        raise DataError(f"{path}: file is empty")


def is_gzip(path: Path) -> bool:
    """Whether ``path`` holds a gzip stream: by its magic bytes (as polars decides), and a ``.gz`` name must hold
    one (polars would silently read a plain file named ``.gz`` as text)."""
    with open(path, "rb") as f:
        magic = f.read(2)
    if magic == GZIP_MAGIC:
        return True
    if path.suffix.lower() == ".gz":
        raise DataError(f"{path}: truncated or not gzip (the file does not start with the gzip magic bytes)")
    return False


def gzip_error(path: Path, err: BaseException) -> DataError:
    reason = str(err).splitlines()[0] if str(err) else type(err).__name__
    return DataError(f"{path}: truncated or not gzip ({reason})")


def read_bytes(path: Path) -> bytes:
    """The whole file, decompressed when it is gzip (see :func:`is_gzip`)."""
    check_nonempty(path)
    if not is_gzip(path):
        return path.read_bytes()
    try:
        with gzip.open(path, "rb") as f:
            data = f.read()
    except GZIP_ERRORS as err:
        raise gzip_error(path, err) from None
    if not data:
        raise DataError(f"{path}: file is empty (after gzip decompression)")
    return data


def decode(path: Path, data: bytes, encoding: str = "utf-8") -> str:
    """Strict decoding: a bad byte is a DataError naming its line (ids that differ only in undecodable bytes
    must not collapse into the same replacement character)."""
    try:
        return data.decode(encoding)
    except UnicodeDecodeError as err:
        line = data.count(b"\n", 0, err.start) + 1
        raise DataError(f"{path}: line {line}: not valid {encoding} text (byte offset {err.start})") from None


def iter_lines(path: Path, encoding: str = "utf-8") -> Iterator[tuple[int, str]]:
    """(1-based line number, text without the line break), streamed; gzip is decompressed on the fly."""
    compressed = is_gzip(path)
    line_no = 0
    try:
        with gzip.open(path, "rb") if compressed else open(path, "rb") as f:
            for line_no, raw in enumerate(f, start=1):
                try:
                    text = raw.decode(encoding)
                except UnicodeDecodeError as err:
                    raise DataError(
                        f"{path}: line {line_no}: not valid {encoding} text (byte {err.start + 1} of the line)"
                    ) from None
                yield line_no, text.rstrip("\r\n")
    except GZIP_ERRORS as err:
        raise DataError(f"{path}: truncated or not gzip after line {line_no} ({err})") from None


def first_line(path: Path) -> str:
    for _, text in iter_lines(path):
        return text
    return ""


def first_bad_line(path: Path, sep: str, n_fields: int, quoted: bool, header: bool = True) -> str:
    """Locate the first row whose field count differs from ``n_fields`` (1-based line, plain scan)."""
    if quoted:
        lines = (text for _, text in iter_lines(path))
        reader = csv.reader(lines, delimiter=sep)
        try:
            for row in reader:
                line = reader.line_num
                if (header and line == 1) or not row:
                    continue
                if len(row) != n_fields:
                    return f"line {line}: expected {n_fields} fields, found {len(row)}"
        except csv.Error as err:
            return f"line {reader.line_num}: {err}"
    else:
        for line, text in iter_lines(path):
            if (header and line == 1) or not text:
                continue
            count = len(text.split(sep))
            if count != n_fields:
                return f"line {line}: expected {n_fields} fields, found {count}"
    return "malformed row"


def polars_source(path: Path) -> Path | io.BytesIO:
    """What to hand to ``pl.read_csv``: the path itself, or the decompressed bytes of a gzip file."""
    return io.BytesIO(read_bytes(path)) if is_gzip(path) else path


def scan_for_encoding_errors(path: Path) -> None:
    """Raise the DataError naming the first undecodable line, if there is one (after a polars failure)."""
    for _ in iter_lines(path):
        pass


# --------------------------------------------------------------------------------------------------
# columns


def require_columns(path: Path, columns: list[str], wanted: dict[str, str | None]) -> None:
    for role, name in wanted.items():
        if name is not None and name not in columns:
            raise DataError(
                f"{path}: missing {role} column '{name}' (columns: {', '.join(columns)}; set data.{role}_col)"
            )


def _where(path: Path, row: int, header_lines: int, col: str, position: int | None) -> str:
    column = f"column {position} ('{col}')" if position is not None else f"column '{col}'"
    return f"{path}: line {row + 1 + header_lines}, {column}"


def numeric(
    df: pl.DataFrame, col: str, path: Path, header_lines: int, what: str, position: int | None = None
) -> pl.Series:
    """A column as finite float64, naming the first bad line (and column) on failure.

    Strings are parsed as numbers; dates / datetimes become seconds since 1970 (order is what matters).
    ``nan``, ``inf`` and overflowing numbers such as ``1e400`` are refused: a non-finite timestamp would sort
    arbitrarily and poison a temporal cutoff.
    """
    series = df[col]
    dtype = series.dtype
    if dtype == pl.Date:
        series = series.dt.epoch("d").cast(pl.Float64) * 86400.0
    elif isinstance(dtype, pl.Datetime):
        series = series.dt.epoch("us").cast(pl.Float64) / 1e6
    elif dtype.is_numeric():
        series = series.cast(pl.Float64)
    elif dtype == pl.String:
        series = series.str.strip_chars().cast(pl.Float64, strict=False)
    else:
        raise DataError(f"{path}: column '{col}' must hold numbers (field '{what}'), has type {dtype}")
    bad = series.is_null() | ~series.is_finite()
    if bool(bad.any()):
        row = int(bad.arg_true()[0])
        value = df[col][row]
        expected = "a number" if series[row] is None else "a finite number"
        raise DataError(f"{_where(path, row, header_lines, col, position)}: field '{what}' must be {expected}, "
                        f"got {value!r}")  # fmt: skip
    return series


def id_column(df: pl.DataFrame, col: str, role: str, path: Path, header_lines: int) -> pl.Expr:
    """User/item ids as strings, or Int64 for an integer column (Parquet): integers need no string hashing and give
    the same dense ids and id strings (see seqrec.data.preprocess); nulls and non-scalar columns are refused."""
    nulls = df[col].is_null()
    if bool(nulls.any()):
        row = int(nulls.arg_true()[0])
        raise DataError(f"{path}: line {row + 1 + header_lines}: empty {role} id in column '{col}'")
    dtype = df[col].dtype
    if not (dtype == pl.String or dtype.is_numeric() or dtype in (pl.Boolean, pl.Categorical)):
        raise DataError(f"{path}: column '{col}' must hold {role} ids (strings or integers), has type {dtype}")
    if dtype == pl.String:
        nul = df[col].str.contains(NUL, literal=True)
        if bool(nul.any()):
            row = int(nul.arg_true()[0])
            raise DataError(f"{path}: line {row + 1 + header_lines}: {role} id in column '{col}' {NUL_MESSAGE}")
    if dtype.is_integer() and dtype != pl.UInt64:  # UInt64 may exceed Int64: kept as decimal strings
        return pl.col(col).cast(pl.Int64).alias(role)
    return pl.col(col).cast(pl.String).alias(role)


def finish(
    path: Path,
    raw: pl.DataFrame,
    user: str,
    item: str,
    time: str | None,
    rating: str | None,
    header_lines: int,
) -> pl.DataFrame:
    """Raw string/numeric table → the standard interaction frame (timestamps: column or line order)."""
    out = raw.select(
        id_column(raw, user, "user", path, header_lines), id_column(raw, item, "item", path, header_lines)
    )
    position = {c: i + 1 for i, c in enumerate(raw.columns)}
    if time is not None:
        ts = numeric(raw, time, path, header_lines, time, position[time])
        out = out.with_columns(ts.alias("timestamp"))
    else:
        out = out.with_columns(pl.int_range(0, raw.height, dtype=pl.Int64).alias("timestamp"))
    if rating is not None:
        out = out.with_columns(numeric(raw, rating, path, header_lines, rating, position[rating]).alias("rating"))
    return out


def int_ids(values: Iterable[int]) -> pl.Series:
    """Integer ids as Int64, or as their decimal strings when one does not fit int64 (ids are not numbers)."""
    values = list(values)
    if all(-INT64_MAX - 1 <= v <= INT64_MAX for v in values):
        return pl.Series(values, dtype=pl.Int64)
    return pl.Series([str(v) for v in values], dtype=pl.String)


def check_int64(path: Path, line_no: int, field: str, value: int) -> int:
    if not -INT64_MAX - 1 <= value <= INT64_MAX:
        raise DataError(f"{path}: line {line_no}: field '{field}' is out of the 64-bit integer range ({value})")
    return value


def finite_float(value: object) -> float | None:
    """A JSON rating → float, or None when it is absent / not a finite number."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        out = float(value)
    except OverflowError:  # an int beyond float range
        return None
    return out if math.isfinite(out) else None


# --------------------------------------------------------------------------------------------------
# text fields

_TAG = re.compile(r"<[^>]*>?")
_TITLE_YEAR = re.compile(r"^(.*?)\s*\((\d{4})\)\s*$")


def clean_text(value: object) -> str | None:
    """Strings, lists of strings (joined) or nested lists (2014 categories) → one cleaned string or None.

    HTML tags are stripped and entities unescaped; whitespace is collapsed.
    """
    if value is None:
        return None
    if isinstance(value, list | tuple):
        parts = [clean_text(v) for v in value]
        text = " | ".join(p for p in parts if p) if any(isinstance(v, list | tuple) for v in value) else None
        if text is None:
            text = " ".join(p for p in parts if p)
    elif isinstance(value, dict):
        text = " ".join(p for p in (clean_text(v) for v in value.values()) if p)
    else:
        text = str(value)
    if "<" in text:
        text = _TAG.sub(" ", text)
    text = " ".join(html.unescape(text).split())
    return text or None


def split_title_year(title: str) -> tuple[str, str | None]:
    """``"Toy Story (1995)"`` -> ``("Toy Story", "1995")``; titles without a trailing year are unchanged."""
    m = _TITLE_YEAR.match(title)
    return (m.group(1), m.group(2)) if m else (title, None)
