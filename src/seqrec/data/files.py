"""Explicit input files (``data.name == "file"``): format detection by extension, side files, dispatch."""

from __future__ import annotations

from pathlib import Path

from seqrec.config import DataConfig
from seqrec.data.readers.amazon import read_amazon
from seqrec.data.readers.atomic import read_atomic
from seqrec.data.readers.common import Frames
from seqrec.data.readers.delimited import read_delimited, read_parquet
from seqrec.data.readers.lcrec import read_lcrec
from seqrec.data.readers.sasrec_text import read_sasrec_text
from seqrec.errors import DataError

FORMATS = ("csv", "tsv", "parquet", "atomic", "sasrec", "amazon", "lcrec")
_SUFFIX_FORMATS = {
    ".csv": "csv", ".tsv": "tsv", ".tab": "tsv", ".parquet": "parquet", ".pq": "parquet", ".inter": "atomic",
    ".txt": "sasrec", ".json": "amazon", ".jsonl": "amazon",
}  # fmt: skip
_LCREC_SUFFIXES = (".inter.json", ".inter.json.gz")


def detect_format(path: Path) -> str:
    name = path.name.lower()
    if name.endswith(_LCREC_SUFFIXES):
        return "lcrec"
    suffix = path.suffix.lower()
    if suffix == ".gz":
        suffix = Path(path.stem).suffix.lower()
    fmt = _SUFFIX_FORMATS.get(suffix)
    if fmt is None:
        raise DataError(
            f"{path}: cannot infer the format from the extension (set data.format to one of {', '.join(FORMATS)})"
        )
    return fmt


def file_sidecars(path: Path, fmt: str) -> list[Path]:
    """Side-information files read together with ``path`` (part of the cache identity)."""
    name = path.name
    if fmt == "atomic":
        return [path.with_suffix(".item")]
    if fmt == "lcrec":
        for suffix in _LCREC_SUFFIXES:
            if name.lower().endswith(suffix):
                stem = name[: -len(suffix)]
                return [path.with_name(f"{stem}.item.json"), path.with_name(f"{stem}.item.json.gz")]
        return []
    if fmt == "amazon":
        for suffix in (".json.gz", ".json", ".jsonl"):
            if name.endswith(suffix):
                stem = name[: -len(suffix)]
                base = stem[: -len("_5")] if stem.endswith("_5") else stem
                base = base.removeprefix("reviews_")
                return [path.with_name(f"meta_{base}{s}") for s in (".json.gz", ".json")]
    return []


def input_file(cfg: DataConfig) -> tuple[Path, str]:
    """``data.path`` (which must exist) and its format (``data.format``, or inferred from the extension)."""
    if cfg.path is None:
        raise DataError("data.path: required when data.name is 'file'")
    path = Path(cfg.path).expanduser()
    if not path.is_file():
        raise DataError(f"{path}: file not found (data.path)")
    return path, detect_format(path) if cfg.format == "auto" else cfg.format


def read_file(cfg: DataConfig) -> Frames:
    """Read ``cfg.path`` in ``cfg.format`` (``auto``: by extension)."""
    path, fmt = input_file(cfg)
    cols = {"user_col": cfg.user_col, "item_col": cfg.item_col, "time_col": cfg.time_col}
    sides = [p for p in file_sidecars(path, fmt) if p.is_file()]
    side = sides[0] if sides else None
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
        return read_amazon(path, side)
    if fmt == "lcrec":
        return read_lcrec(path, side)
    raise DataError(f"data.format: unknown format {fmt!r} (expected {', '.join(FORMATS)})")
