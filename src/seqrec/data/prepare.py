"""The data pipeline entry point: source → interactions → preprocess → split → :class:`PreparedData`, cached.

Cache: the key is the sha256 of the source identity (file paths, sizes and mtimes and the reader; or the synthetic
generator parameters) plus every preprocessing/split parameter of :class:`~seqrec.config.DataConfig` with the
k-core thresholds RESOLVED (None = the dataset's default, see :mod:`seqrec.data.datasets`), so ``None`` and the
default value it stands for share one entry. ``cache``, ``download`` and ``max_len`` are not in the key (they do
not change the result); new fields invalidate old entries. An entry is ``<cache_root>/<name>-<key[:12]>/``
holding ``.npy`` CSR arrays, ``meta.json`` and ``item_features.parquet``; it is written into a temporary
sibling folder and renamed into place atomically, and reloaded memory-mapped. ``cache_root`` is
``$SEQREC_CACHE_DIR``, else ``~/.cache/seqrec/cache``: the data dir is only ever written by downloads. A cache
entry that fails to load is reported and left untouched; the data is then rebuilt in memory.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl

from seqrec.config import DataConfig
from seqrec.data.cold import hold_out_cold_items
from seqrec.data.datasets import DATASETS, FILE_DEFAULT_KCORE, Layout, find_local, layout_files
from seqrec.data.files import file_sidecars, input_file, read_file
from seqrec.data.preprocess import Interactions, preprocess, remap_item_features
from seqrec.data.readers.common import Frames
from seqrec.data.sequences import EvalSet, PreparedData, Sequences
from seqrec.data.split import Split, global_temporal, leave_one_out
from seqrec.data.synthetic import generate
from seqrec.errors import DataError
from seqrec.io import json_default, publish_dir

log = logging.getLogger(__name__)

CACHE_VERSION = 2  # bump when the cached layout or the preprocessing semantics change
_NOT_IN_KEY = {"cache", "download", "max_len"}  # DataConfig fields that do not change the prepared data


def resolve_data_dir(data_dir: str | os.PathLike | None = None) -> Path:
    """``data_dir`` if given, else ``$SEQREC_DATA_DIR``, else ``~/.cache/seqrec`` (not created here)."""
    if data_dir is not None:
        return Path(data_dir).expanduser()
    env = os.environ.get("SEQREC_DATA_DIR")
    if env:
        return Path(env).expanduser()
    return Path("~/.cache/seqrec").expanduser()


def resolve_cache_root() -> Path:
    """``$SEQREC_CACHE_DIR``, else ``~/.cache/seqrec/cache`` (never inside the data dir: it may be shared and
    read only, and a cache there would be a write nobody asked for)."""
    env = os.environ.get("SEQREC_CACHE_DIR")
    if env:
        return Path(env).expanduser()
    return Path("~/.cache/seqrec/cache").expanduser()


# --------------------------------------------------------------------------------------------------
# source resolution


@dataclass(frozen=True)
class Source:
    name: str  # dataset name used for the cache folder and PreparedData.name
    identity: dict  # hashed into the cache key
    description: str  # for stats / messages
    default_kcore: int  # k-core used when data.min_user/item_interactions is None
    files: tuple[Path, ...] = ()
    timestamps: bool = True  # False: the source only gives an order (line numbers stand in for time)
    layout: Layout | None = None  # named datasets: the local layout found, with its main and side file
    main: Path | None = None
    side: Path | None = None
    frames: Frames | None = None  # an in-memory log (seqrec.Dataset.from_pandas / from_polars)


def _file_identity(paths: list[Path]) -> list[dict]:
    out = []
    for p in paths:
        if p.is_file():
            st = p.stat()
            out.append({"path": str(p.resolve()), "size": st.st_size, "mtime_ns": st.st_mtime_ns})
    return out


def _safe_name(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in text)[:60] or "data"


def resolve_source(cfg: DataConfig, data_dir: Path, progress: bool = False) -> Source:
    """Find the input files (downloading a named dataset if needed and allowed) without reading them."""
    if cfg.name == "synthetic":
        identity = {"synthetic": cfg.synthetic.model_dump(mode="json"), "seed": cfg.seed}
        return Source("synthetic", identity, "synthetic generator", DATASETS["synthetic"].default_kcore)
    if cfg.name == "file":
        path, fmt = input_file(cfg)
        files = [path, *file_sidecars(path, fmt)]
        identity = {"file": _file_identity(files), "format": fmt}
        name = "file-" + _safe_name(path.name.split(".")[0])
        has_time = fmt not in ("sasrec", "lcrec") and cfg.time_col is not None
        present = tuple(p for p in files if p.is_file())
        return Source(name, identity, str(path), FILE_DEFAULT_KCORE, present, has_time)
    recipe = DATASETS.get(cfg.name)
    if recipe is None:
        known = ", ".join(sorted(DATASETS))
        raise DataError(f"data.name: unknown dataset {cfg.name!r} (known: {known}, or 'file' with data.path)")
    found = find_local(recipe, data_dir)
    if found is None:
        from seqrec.data.download import fetch_dataset

        fetch_dataset(recipe, data_dir, allow_download=getattr(cfg, "download", True), progress=progress)
        found = find_local(recipe, data_dir)
        if found is None:  # pragma: no cover - fetch_dataset installs one of the layouts
            raise DataError(
                f"dataset {recipe.name!r}: download finished but files are missing under {data_dir}"
            )
    layout, main, side = found
    files = layout_files(layout, main, side, data_dir)
    identity = {"dataset": recipe.name, "reader": layout.name, "files": _file_identity(files)}
    return Source(
        recipe.name, identity, f"{recipe.name} ({main})", recipe.kcore_for(layout), tuple(files),
        layout.timestamps, layout, main, side,
    )  # fmt: skip


def resolved_kcore(cfg: DataConfig, src: Source) -> tuple[int, int]:
    """(min_user_interactions, min_item_interactions) after applying the dataset default to None values."""
    user = cfg.min_user_interactions if cfg.min_user_interactions is not None else src.default_kcore
    item = cfg.min_item_interactions if cfg.min_item_interactions is not None else src.default_kcore
    return user, item


def read_source(cfg: DataConfig, src: Source) -> Frames:
    if src.frames is not None:
        return src.frames
    if cfg.name == "synthetic":
        return generate(cfg.synthetic, cfg.seed)
    if cfg.name == "file":
        return read_file(cfg)
    assert src.layout is not None and src.main is not None
    return src.layout.reader(src.main, src.side)


# --------------------------------------------------------------------------------------------------
# build


def cache_key(cfg: DataConfig, src: Source) -> str:
    params = {k: v for k, v in cfg.model_dump(mode="json").items() if k not in _NOT_IN_KEY}
    params["min_user_interactions"], params["min_item_interactions"] = resolved_kcore(cfg, src)
    if cfg.name != "synthetic":
        params.pop("synthetic", None)
    if not params.get("cold_item_fraction"):
        params.pop("cold_item_fraction", None)  # off: the key (and every existing cache entry) stays as before
    payload = {"version": CACHE_VERSION, "source": src.identity, "params": params}
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


def _length_stats(lengths: np.ndarray) -> dict:
    if len(lengths) == 0:
        return {"min": 0, "median": 0.0, "mean": 0.0, "max": 0}
    return {
        "min": int(lengths.min()),
        "median": float(np.median(lengths)),
        "mean": round(float(lengths.mean()), 3),
        "max": int(lengths.max()),
    }


def build(cfg: DataConfig, src: Source) -> PreparedData:
    """Read, preprocess and split (no cache)."""
    t0 = time.perf_counter()
    raw, features = read_source(cfg, src)
    t_read = time.perf_counter() - t0
    min_user, min_item = resolved_kcore(cfg, src)
    inter, item_map = preprocess(
        raw,
        rating_threshold=cfg.rating_threshold,
        duplicates=cfg.duplicates,
        min_user_interactions=min_user,
        min_item_interactions=min_item,
        source=src.description,
    )
    log.info("%s: %s", src.name, kcore_summary(inter.stats))
    split = make_split(cfg, inter)
    cold = None
    if cfg.cold_item_fraction:  # default off: the split above is used unchanged
        split, cold = hold_out_cold_items(split, inter.num_items, cfg.cold_item_fraction, cfg.seed)
    popularity = np.bincount(split.train.values, minlength=inter.num_items + 1).astype(np.int64)
    popularity[0] = 0
    item_features = remap_item_features(features, item_map)
    n = len(inter.items)
    stats = {
        "source": src.description,
        **inter.stats,
        "users": inter.num_users,
        "items": inter.num_items,
        "interactions": n,
        "avg_length": round(n / max(inter.num_users, 1), 3),
        "length": _length_stats(np.diff(inter.offsets())),
        "density": n / max(inter.num_users * inter.num_items, 1),
        "timestamps": src.timestamps,
        "split": cfg.split,
        "train_interactions": int(split.train.nnz),
        "valid_users": len(split.valid),
        "test_users": len(split.test),
        **split.info,
        "item_features": list(item_features.columns) if item_features is not None else None,
        "read_seconds": round(t_read, 3),
        "prepare_seconds": round(time.perf_counter() - t0, 3),
    }
    return PreparedData(
        name=src.name,
        num_users=inter.num_users,
        num_items=inter.num_items,
        train=split.train,
        valid=split.valid,
        test=split.test,
        item_ids=inter.item_ids,
        user_ids=inter.user_ids,
        item_popularity=popularity,
        split=cfg.split,
        item_features=item_features,
        stats=stats,
        cold=cold,
    )


def make_split(cfg: DataConfig, inter: Interactions) -> Split:
    offsets = inter.offsets()
    if cfg.split == "leave_one_out":
        return leave_one_out(offsets, inter.items)
    if cfg.split == "global_temporal":
        return global_temporal(
            offsets, inter.items, inter.times, cfg.temporal_quantile, cfg.valid_user_fraction, cfg.seed
        )
    raise DataError(f"data.split: unknown split {cfg.split!r} (expected leave_one_out or global_temporal)")


# --------------------------------------------------------------------------------------------------
# cache I/O


def _save_eval(directory: Path, name: str, ev: EvalSet) -> None:
    np.save(directory / f"{name}.users.npy", np.asarray(ev.users), allow_pickle=False)
    np.save(directory / f"{name}.targets.npy", np.asarray(ev.targets), allow_pickle=False)
    _save_seq(directory, f"{name}.inputs", ev.inputs)


def _save_seq(directory: Path, name: str, seq: Sequences) -> None:
    np.save(directory / f"{name}.offsets.npy", np.asarray(seq.offsets), allow_pickle=False)
    np.save(directory / f"{name}.values.npy", np.asarray(seq.values), allow_pickle=False)


def _load_eval(directory: Path, name: str) -> EvalSet:
    return EvalSet(
        users=np.load(directory / f"{name}.users.npy", mmap_mode="r", allow_pickle=False),
        inputs=Sequences.load(directory, f"{name}.inputs", mmap=True),
        targets=np.load(directory / f"{name}.targets.npy", mmap_mode="r", allow_pickle=False),
    )


def save_cache(data: PreparedData, entry: Path, key: str) -> bool:
    """Write ``data`` to ``entry`` atomically (temp folder + rename). False if another writer won the race."""

    def fill(tmp: Path) -> None:
        _save_seq(tmp, "train", data.train)
        _save_eval(tmp, "valid", data.valid)
        _save_eval(tmp, "test", data.test)
        if data.cold is not None:
            _save_eval(tmp, "cold", data.cold)
        np.save(tmp / "item_ids.npy", np.asarray(data.item_ids, dtype=str), allow_pickle=False)
        np.save(tmp / "user_ids.npy", np.asarray(data.user_ids, dtype=str), allow_pickle=False)
        np.save(tmp / "item_popularity.npy", data.item_popularity, allow_pickle=False)
        if isinstance(data.item_features, pl.DataFrame):
            data.item_features.write_parquet(tmp / "item_features.parquet")
        meta = {
            "version": CACHE_VERSION,
            "key": key,
            "name": data.name,
            "num_users": data.num_users,
            "num_items": data.num_items,
            "split": data.split,
            "stats": data.stats,
        }
        (tmp / "meta.json").write_text(json.dumps(meta, indent=2, default=json_default) + "\n")

    return publish_dir(entry, fill)


def load_cache(entry: Path, key: str) -> PreparedData:
    """Load a cache entry memory-mapped; raises on any inconsistency (never modifies the entry)."""
    meta = json.loads((entry / "meta.json").read_text())
    if meta.get("version") != CACHE_VERSION or meta.get("key") != key:
        raise ValueError("cache entry version/key mismatch")
    features = None
    if (entry / "item_features.parquet").is_file():
        features = pl.read_parquet(entry / "item_features.parquet")
    data = PreparedData(
        name=meta["name"],
        num_users=int(meta["num_users"]),
        num_items=int(meta["num_items"]),
        train=Sequences.load(entry, "train", mmap=True),
        valid=_load_eval(entry, "valid"),
        test=_load_eval(entry, "test"),
        item_ids=np.load(entry / "item_ids.npy", mmap_mode="r", allow_pickle=False),
        user_ids=np.load(entry / "user_ids.npy", mmap_mode="r", allow_pickle=False),
        item_popularity=np.load(entry / "item_popularity.npy", mmap_mode="r", allow_pickle=False),
        split=meta["split"],
        item_features=features,
        stats=dict(meta.get("stats", {})),
        cold=_load_eval(entry, "cold") if (entry / "cold.users.npy").is_file() else None,
    )
    if (
        len(data.train) != data.num_users
        or len(data.item_ids) != data.num_items + 1
        or len(data.user_ids) != data.num_users
        or len(data.item_popularity) != data.num_items + 1
    ):
        raise ValueError("cache entry arrays disagree with meta.json")
    return data


# --------------------------------------------------------------------------------------------------
# entry point


def prepare_data(
    cfg: DataConfig, data_dir: str | os.PathLike | None = None, *, progress: bool = False
) -> PreparedData:
    """Load (or build and cache) the dataset described by ``cfg``; see the module docstring."""
    t0 = time.perf_counter()
    return _prepare(cfg, resolve_source(cfg, resolve_data_dir(data_dir), progress=progress), t0)


def frame_source(raw: pl.DataFrame, features: pl.DataFrame | None, name: str = "frame") -> Source:
    """The source of an in-memory log: identified by a hash of its content (same frame -> same cache entry)."""
    digest = hashlib.sha256()
    for frame in (raw, features):
        if frame is not None:
            digest.update(",".join(f"{c}:{t}" for c, t in frame.schema.items()).encode())
            digest.update(frame.hash_rows(seed=0).to_numpy().tobytes())
    identity = {"frame": digest.hexdigest(), "rows": raw.height}
    return Source(name, identity, f"in-memory frame ({raw.height:,} rows)", FILE_DEFAULT_KCORE,
                  frames=(raw, features))


def prepare_frame(cfg: DataConfig, raw: pl.DataFrame, features: pl.DataFrame | None = None) -> PreparedData:
    """:func:`prepare_data` for a raw interaction frame (``user``, ``item``, ``timestamp``) already in memory:
    the same preprocessing, split and cache, keyed by the frame's content."""
    return _prepare(cfg, frame_source(raw, features), time.perf_counter())


def _prepare(cfg: DataConfig, src: Source, t0: float) -> PreparedData:
    key = cache_key(cfg, src)
    entry = resolve_cache_root() / f"{_safe_name(src.name)}-{key[:12]}"
    if cfg.cache and (entry / "meta.json").is_file():
        try:
            data = load_cache(entry, key)
            data.stats["cache"] = {
                "path": str(entry),
                "hit": True,
                "seconds": round(time.perf_counter() - t0, 4),
            }
            return data
        except Exception as err:  # noqa: BLE001 - any unreadable entry: rebuild, never touch it
            log.warning("cache entry %s is unreadable (%s); rebuilding in memory", entry, err)
            data = build(cfg, src)
            data.stats["cache"] = {"path": str(entry), "hit": False, "unreadable": True}
            return data
    data = build(cfg, src)
    written = False
    if cfg.cache:
        try:
            written = save_cache(data, entry, key)
        except OSError as err:
            log.warning("could not write the data cache %s: %s", entry, err)
    data.stats["cache"] = {"path": str(entry) if written else None, "hit": False}
    return data


def kcore_summary(stats: dict) -> str:
    """One line: the thresholds used and users / items / interactions before → after the k-core filter."""
    k = stats["kcore"]
    before, after = k["before"], k["after"]
    counts = ", ".join(f"{what} {before[what]:,} → {after[what]:,}" for what in ("users", "items", "interactions"))
    return f"k-core users ≥ {k['min_user']}, items ≥ {k['min_item']}: {counts}"


def describe(prepared: PreparedData) -> dict:
    """Statistics of a prepared dataset, for ``seqrec data prepare`` to print."""
    train_len = prepared.train.lengths()
    pop = np.asarray(prepared.item_popularity)[1:]
    out = {
        "name": prepared.name,
        "split": prepared.split,
        "users": prepared.num_users,
        "items": prepared.num_items,
        "train_interactions": int(prepared.train.nnz),
        "train_length": _length_stats(np.asarray(train_len)),
        "valid_users": len(prepared.valid),
        "test_users": len(prepared.test),
        "cold_items_in_train": int((pop == 0).sum()),
        "top1pct_item_share": round(
            float(np.sort(pop)[::-1][: max(1, len(pop) // 100)].sum() / max(pop.sum(), 1)), 4
        ),
        "item_features": list(prepared.item_features.columns) if prepared.item_features is not None else None,
    }
    for k in (
        "interactions",
        "avg_length",
        "density",
        "raw_interactions",
        "raw_users",
        "raw_items",
        "cutoff",
    ):
        if k in prepared.stats:
            out[k] = prepared.stats[k]
    if "kcore" in prepared.stats:
        out["kcore"] = kcore_summary(prepared.stats)
    if "cache" in prepared.stats:
        out["cache"] = prepared.stats["cache"]
    return out
