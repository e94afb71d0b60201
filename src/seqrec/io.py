"""Atomic writes: a file or a whole directory is built under a temporary name beside its target, made durable
(fsync), then renamed into place, so a crash or a concurrent reader never sees a partial artifact."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np


def _read_umask() -> int:
    mask = os.umask(0)  # the only portable way to read it is to set it and put it back: once, at import
    os.umask(mask)
    return mask


_UMASK = _read_umask()


def atomic_write(path: str | os.PathLike, write: Callable[[Path], None]) -> None:
    """Call ``write(tmp_path)`` then rename ``tmp_path`` over ``path``; a crash never leaves a partial file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        # mkstemp creates 0600; an artifact gets the mode a plain open() would give it (or keeps the old file's)
        tmp_path.chmod(path.stat().st_mode & 0o777 if path.exists() else 0o666 & ~_UMASK)
        write(tmp_path)
        with open(tmp_path, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp_path, path)
    except BaseException:
        tmp_path.unlink(missing_ok=True)
        raise


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    atomic_write(path, lambda p: p.write_bytes(data))


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | os.PathLike, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=False, default=json_default) + "\n")


def atomic_save_npy(path: str | os.PathLike, array: np.ndarray) -> None:
    def write(p: Path) -> None:
        with open(p, "wb") as f:
            np.save(f, np.asarray(array), allow_pickle=False)

    atomic_write(path, write)


def fsync_dir(path: str | os.PathLike) -> None:
    """Make a directory's entries (renames, new files) durable."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def publish_dir(target: str | os.PathLike, fill: Callable[[Path], None], *, previous: str | None = None) -> bool:
    """Build a directory with ``fill(tmp)`` and rename it to ``target`` atomically; True if it was published.

    ``tmp`` is a fresh folder beside ``target`` (same file system, so the rename is atomic). Every file in it is
    fsynced before the rename. If ``target`` already exists: with ``previous`` (a sibling name, e.g.
    ``"last.prev"``) the old ``target`` is first moved there (replacing an older one), otherwise ``target`` is
    left untouched, ``tmp`` is discarded and False is returned (another writer published first). On any error
    ``tmp`` is removed and ``target`` is as it was.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
    try:
        fill(tmp)
        for sub, _, files in os.walk(tmp):
            for name in files:
                with open(os.path.join(sub, name), "rb") as fh:
                    os.fsync(fh.fileno())
            fsync_dir(sub)
        os.chmod(tmp, 0o755)  # mkdtemp makes 0700; a published folder is as readable as any file
        if target.exists():
            if previous is None:
                shutil.rmtree(tmp, ignore_errors=True)
                return False
            prev = target.parent / previous
            if prev.exists():
                shutil.rmtree(prev)
            os.replace(target, prev)
        try:
            os.rename(tmp, target)
        except OSError:
            if previous is None and target.exists():  # lost a race against a concurrent writer: keep theirs
                shutil.rmtree(tmp, ignore_errors=True)
                return False
            raise
        fsync_dir(target.parent)
        return True
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def writable_location(path: Path) -> str | None:
    """Why ``path`` (a directory to create or reuse) cannot be written, or None if it can.

    The nearest existing ancestor must be a directory with a write bit set that this process may write (root
    passes ``os.access`` even on ``r-x`` folders, so the mode bits are checked too: a folder marked read-only is
    read-only for seqrec).
    """
    probe = path
    while not probe.exists():
        if probe.parent == probe:
            return "no existing parent directory"
        probe = probe.parent
    if not probe.is_dir():
        return f"{probe} is not a directory"
    mode = probe.stat().st_mode
    if not (mode & 0o222) or not os.access(probe, os.W_OK | os.X_OK):
        return f"{probe} is not writable"
    return None


def json_default(o: Any) -> Any:
    """``json.dumps(default=...)`` for numpy scalars/arrays and paths (the one such helper in seqrec)."""
    if isinstance(o, np.integer):
        return int(o)
    if isinstance(o, np.floating):
        return float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")
