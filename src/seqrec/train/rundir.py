"""The run directory: what ``seqrec train`` / ``Recommender.save`` write and ``Recommender.load`` reads.

Layout: ``model.safetensors`` (weights; JSON metadata in the header: model, num_items, max_len, params, seqrec
version), ``config.yaml`` (the fully resolved config), ``items.json`` (original item id of every dense id, index 0
= padding, so recommendations speak the dataset's ids), optionally ``item_titles.json`` (same order, null where
unknown), ``metrics.json``, ``history.jsonl`` / ``history.csv`` and, while training, ``last/`` (the resumable
checkpoint, see :mod:`seqrec.train.resume`) and ``.lock``.

:class:`RunLock` guards a directory for one training process: an exclusive ``flock`` on ``.lock`` (the kernel
drops it when the process dies, kill -9 included), refusal to overwrite a finished run or to start over an
unfinished one unless asked, and a writability check before any data work. Every problem is one line naming the
directory; nothing in it is touched.
"""

from __future__ import annotations

import fcntl
import json
import shutil
from pathlib import Path
from typing import IO, Any

import torch

from seqrec.config import Config, build_config, dump_config, read_config_tree
from seqrec.errors import CheckpointError, ConfigError, DataError
from seqrec.io import atomic_write_json, atomic_write_text, writable_location
from seqrec.train.checkpoint import WEIGHTS, load_weights, save_weights

CONFIG, ITEMS, TITLES, METRICS = "config.yaml", "items.json", "item_titles.json", "metrics.json"
LOCK = ".lock"
RUN_FILES = (WEIGHTS, "adapter.safetensors", CONFIG, ITEMS, TITLES, METRICS, "history.jsonl", "history.csv",
             "last", "last.prev", "profile", "tensorboard", "wandb", "mlruns")  # what --overwrite removes (only these)


class RunLock:
    """Exclusive use of a run directory by this process, from before the data loads until the run ends.

    ``resume``: the directory must hold a checkpoint. ``overwrite``: a finished or unfinished run there may be
    replaced (its files are removed by :meth:`clear`, called once the config and data are known to be good).
    A directory this lock created is removed again if the run leaves nothing but the lock in it.
    """

    def __init__(self, directory: str | Path, *, resume: bool = False, overwrite: bool = False) -> None:
        self.directory = Path(directory)
        self.resume, self.overwrite = resume, overwrite
        self.handle: IO[str] | None = None
        self.created = False

    def __enter__(self) -> RunLock:
        d = self.directory
        if d.exists() and not d.is_dir():
            raise DataError(f"{d}: output path exists and is not a directory")
        problem = writable_location(d)
        if problem is not None:
            raise DataError(f"{d}: cannot write the run directory ({problem})")
        if self.resume and not d.is_dir():
            raise CheckpointError(f"{d}: no such run directory to resume")
        self.created = not d.exists()
        try:
            d.mkdir(parents=True, exist_ok=True)
            self.handle = open(d / LOCK, "a")  # noqa: SIM115 - held open for the lifetime of the run
        except OSError as err:
            raise DataError(f"{d}: cannot write the run directory ({err.strerror})") from None
        try:
            fcntl.flock(self.handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self.handle.close()
            self.handle = None
            raise DataError(f"{d}: another seqrec process is training into this directory (it holds {d / LOCK})"
                            ) from None
        try:
            self._check_contents()
        except BaseException:
            self._release()
            raise
        return self

    def _check_contents(self) -> None:
        d = self.directory
        if self.resume or self.overwrite:
            return
        if (d / METRICS).exists():
            raise DataError(f"{d}: holds a finished run (metrics.json); pass --overwrite to replace it or choose "
                            f"another --output")
        if (d / "last").exists() or (d / "last.prev").exists():
            raise DataError(f"{d}: holds an unfinished run (last/); continue it with --resume {d} or pass "
                            f"--overwrite to start over")

    def clear(self) -> None:
        """``--overwrite``: remove the previous run's files (only the names a run writes)."""
        if not self.overwrite or self.resume:
            return
        for name in RUN_FILES:
            p = self.directory / name
            if p.is_dir() and not p.is_symlink():
                shutil.rmtree(p)
            elif p.exists() or p.is_symlink():
                p.unlink()

    def _release(self) -> None:
        if self.handle is not None:
            fcntl.flock(self.handle.fileno(), fcntl.LOCK_UN)
            self.handle.close()
            self.handle = None
        if self.created:
            leftovers = [p.name for p in self.directory.iterdir()] if self.directory.is_dir() else []
            if leftovers == [LOCK]:  # nothing was written: leave no trace of a run that never started
                (self.directory / LOCK).unlink(missing_ok=True)
                self.directory.rmdir()

    def __exit__(self, *exc: object) -> None:
        self._release()


def load_config_file(path: Path, overrides: list[str] | None, error: type[CheckpointError]) -> Config:
    """``build_config`` of a saved config file: unreadable -> ``error``, invalid keys -> ConfigError naming it."""
    tree = read_config_tree(path, error)
    try:
        return build_config(tree, overrides)
    except ConfigError as err:
        raise ConfigError(f"{path}: {err}") from None


def write_run(
    directory: str | Path, *, model: torch.nn.Module, config: Config, item_ids: list[str],
    item_titles: list[str | None] | None, meta: dict[str, Any], metrics: dict[str, Any] | None,
) -> None:
    """Weights, config, item ids (and titles) and metrics into ``directory``, each file atomically."""
    d = Path(directory)
    save_weights(d / WEIGHTS, model.state_dict(), meta)
    atomic_write_json(d / ITEMS, [str(x) for x in item_ids])
    if item_titles is not None:
        atomic_write_json(d / TITLES, item_titles)
    atomic_write_text(d / CONFIG, dump_config(config))
    if metrics is not None:
        atomic_write_json(d / METRICS, metrics)


def _read_json(path: Path, what: str) -> Any:
    if not path.is_file():
        raise CheckpointError(f"{path}: not found (is {path.parent} a seqrec run directory?)")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        raise CheckpointError(f"{path}: corrupted or truncated {what} (expected JSON)") from None


def read_config(directory: str | Path, overrides: list[str] | None = None) -> Config:
    """A run directory's ``config.yaml`` (plus ``--set`` overrides); errors name the file."""
    path = Path(directory) / CONFIG
    if not path.is_file():
        raise CheckpointError(f"{path}: not found (is {path.parent} a seqrec run directory?)")
    return load_config_file(path, overrides, CheckpointError)


def read_run(directory: str | Path, overrides: list[str] | None = None) -> dict[str, Any]:
    """Config, weights, metadata, item ids/titles and metrics of a run directory, every file checked.

    Returns ``{"config", "tensors", "meta", "item_ids", "item_titles", "metrics"}``; raises a one-line
    :class:`CheckpointError` naming the file that is missing, corrupted or inconsistent.
    """
    d = Path(directory)
    if not d.is_dir():
        raise CheckpointError(f"{d}: not a run directory")
    config = read_config(d, overrides)
    tensors, meta = load_weights(d / WEIGHTS)
    for key in ("num_items", "max_len"):
        value = meta.get(key) if isinstance(meta, dict) else None
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise CheckpointError(f"{d / WEIGHTS}: metadata lacks a valid '{key}' (not written by seqrec?)")
    item_ids = _read_json(d / ITEMS, "item list")
    if not isinstance(item_ids, list) or not all(isinstance(x, str) for x in item_ids):
        raise CheckpointError(f"{d / ITEMS}: expected a JSON list of item id strings")
    if len(item_ids) != meta["num_items"] + 1:
        raise CheckpointError(f"{d / ITEMS}: {len(item_ids)} entries, expected {meta['num_items'] + 1} "
                              f"(padding + the model's {meta['num_items']} items)")
    titles = None
    if (d / TITLES).exists():
        titles = _read_json(d / TITLES, "item titles")
        if not isinstance(titles, list) or len(titles) != len(item_ids):
            raise CheckpointError(f"{d / TITLES}: expected a list of {len(item_ids)} titles")
    metrics = _read_json(d / METRICS, "metrics") if (d / METRICS).exists() else None
    return {"config": config, "tensors": tensors, "meta": meta, "item_ids": item_ids, "item_titles": titles,
            "metrics": metrics}
