"""Epoch-boundary training checkpoints for ``seqrec train --resume DIR`` (safetensors + JSON, never pickle).

A checkpoint is :meth:`Trainer.state_dict() <seqrec.train.trainer.Trainer.state_dict>` written as two files:
every tensor of the (nested) state goes to ``state.safetensors`` under its path (``optimizer/state/0/exp_avg``),
and the rest of the tree to ``state.json`` with ``{"__tensor__": path}`` in the tensors' places (plus the
SHA-256 of the tensor file), beside ``config.yaml``. Tuples, dicts with integer keys (optimizer state) and
non-finite floats are tagged so the tree comes back exactly. ``DIR/last`` is built in a temporary folder,
fsynced and swapped in by renames (``last`` -> ``last.prev``, see :func:`seqrec.io.publish_dir`); loading tries
``last`` then ``last.prev``, so a corrupted or truncated newest checkpoint costs one epoch, not the run.

Distributed runs: rank 0 writes the state, whose ``rng`` entry holds every rank's random streams; on
``--resume`` every rank reads the same checkpoint and takes back its own (see ``Trainer.load_state_dict``).
"""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path
from typing import Any

import torch
from rich.console import Console
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from seqrec.config import Config, build_config, dump_config, read_config_tree
from seqrec.errors import CheckpointError, ConfigError
from seqrec.io import publish_dir

LAST, PREV = "last", "last.prev"
TENSORS, META = "state.safetensors", "state.json"
FORMAT = 2  # 1: the layout before Trainer.state_dict (not readable any more)


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def split_tensors(tree: Any, tensors: dict[str, torch.Tensor], path: str = "") -> Any:
    """JSON-able copy of ``tree`` with each tensor moved into ``tensors[path]`` (CPU, own storage)."""
    if isinstance(tree, torch.Tensor):
        # safetensors refuses shared storage (tied tables): every entry owns its memory
        tensors[path] = tree.detach().to("cpu").contiguous().clone()
        return {"__tensor__": path}
    if isinstance(tree, dict):
        if all(isinstance(k, str) for k in tree):
            return {k: split_tensors(v, tensors, f"{path}/{k}") for k, v in tree.items()}
        return {"__items__": [[k, split_tensors(v, tensors, f"{path}/{k}")] for k, v in tree.items()]}
    if isinstance(tree, tuple):
        return {"__tuple__": [split_tensors(v, tensors, f"{path}/{i}") for i, v in enumerate(tree)]}
    if isinstance(tree, list):
        return [split_tensors(v, tensors, f"{path}/{i}") for i, v in enumerate(tree)]
    if isinstance(tree, float) and not math.isfinite(tree):
        return {"__float__": repr(tree)}
    return tree


def join_tensors(tree: Any, tensors: dict[str, torch.Tensor]) -> Any:
    """Inverse of :func:`split_tensors`."""
    if isinstance(tree, list):
        return [join_tensors(v, tensors) for v in tree]
    if not isinstance(tree, dict):
        return tree
    if "__tensor__" in tree:
        return tensors[tree["__tensor__"]]
    if "__items__" in tree:
        return {k: join_tensors(v, tensors) for k, v in tree["__items__"]}
    if "__tuple__" in tree:
        return tuple(join_tensors(v, tensors) for v in tree["__tuple__"])
    if "__float__" in tree:
        return float(tree["__float__"])
    return {k: join_tensors(v, tensors) for k, v in tree.items()}


def save_checkpoint(run_dir: str | Path, config: Config, state: dict[str, Any]) -> Path:
    """Atomically replace ``run_dir/last`` with ``state`` (the previous one becomes ``run_dir/last.prev``)."""
    run_dir = Path(run_dir)
    tensors: dict[str, torch.Tensor] = {}
    meta = {"format": FORMAT, "state": split_tensors(state, tensors)}

    def fill(tmp: Path) -> None:
        save_file(tensors, str(tmp / TENSORS))
        meta["sha256"] = _sha256(tmp / TENSORS)
        (tmp / META).write_text(json.dumps(meta))
        (tmp / "config.yaml").write_text(dump_config(config))

    publish_dir(run_dir / LAST, fill, previous=PREV)
    return run_dir / LAST


def _read_one(ckpt: Path) -> dict[str, Any]:
    meta_path, tensor_path = ckpt / META, ckpt / TENSORS
    if not meta_path.is_file() or not tensor_path.is_file():
        raise CheckpointError(f"{ckpt}: incomplete checkpoint (missing {META} or {TENSORS})")
    try:
        meta = json.loads(meta_path.read_text())
    except (OSError, ValueError):
        raise CheckpointError(f"{meta_path}: corrupted or truncated checkpoint metadata") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise CheckpointError(f"{meta_path}: unknown checkpoint format (expected format {FORMAT})")
    if _sha256(tensor_path) != meta.get("sha256"):
        raise CheckpointError(f"{tensor_path}: corrupted or truncated checkpoint (checksum mismatch)")
    try:
        tensors = load_file(str(tensor_path))
        return join_tensors(meta["state"], tensors)
    except (SafetensorError, OSError, ValueError, KeyError) as err:
        raise CheckpointError(f"{tensor_path}: corrupted or truncated checkpoint ({type(err).__name__})") from None


def load_checkpoint(run_dir: str | Path, console: Console | None = None) -> tuple[dict[str, Any], Path]:
    """Newest readable checkpoint state of ``run_dir``: ``last``, else ``last.prev`` (with a one-line warning)."""
    run_dir = Path(run_dir)
    errors: list[str] = []
    for name in (LAST, PREV):
        ckpt = run_dir / name
        if not ckpt.exists():
            continue
        try:
            return _read_one(ckpt), ckpt
        except CheckpointError as err:
            errors.append(str(err))
            if console is not None:
                console.print(f"warning: {err}; trying the previous checkpoint", highlight=False, soft_wrap=True)
    if errors:
        raise CheckpointError(f"{run_dir}: no usable checkpoint ({'; '.join(errors)})")
    raise CheckpointError(f"{run_dir}: no checkpoint to resume from (expected {run_dir / LAST})")


def checkpoint_progress(run_dir: str | Path) -> tuple[int, float] | None:
    """(epochs done, training seconds so far) of ``run_dir``'s newest checkpoint whose metadata reads, from
    ``state.json`` alone (no tensors are loaded, no checksum is verified: :func:`load_checkpoint` does that when the
    run resumes); None without one."""
    for name in (LAST, PREV):
        try:
            loop = json.loads((Path(run_dir) / name / META).read_text())["state"]["loop"]
            return int(loop["epoch"]), float(loop["train_time_s"])
        except (OSError, ValueError, KeyError, TypeError):
            continue
    return None


def resume_config(run_dir: str | Path, overrides: list[str] | None = None) -> Config:
    """The config a checkpointed run was started with (``--set`` overrides applied on top)."""
    run_dir = Path(run_dir)
    for name in (LAST, PREV):
        path = run_dir / name / "config.yaml"
        if path.is_file():
            try:
                tree = read_config_tree(path, CheckpointError)
            except CheckpointError:
                continue  # a damaged newest checkpoint: the previous one may still be good
            try:
                return build_config(tree, overrides)
            except ConfigError as err:
                raise ConfigError(f"{path}: {err}") from None
    raise CheckpointError(f"{run_dir}: no checkpoint to resume from (expected {run_dir / LAST / 'config.yaml'})")


def restore_trainer(trainer: Any, run_dir: Path | None, console: Console) -> None:
    """Load ``run_dir``'s last checkpoint into ``trainer`` (anything with ``load_state_dict`` and ``state.epoch``);
    a checkpoint of another model/config is a one-line CheckpointError."""
    if run_dir is None:
        raise CheckpointError("resume: needs the run directory")
    state, where = load_checkpoint(run_dir, console)
    try:
        trainer.load_state_dict(state)
    except (KeyError, ValueError, RuntimeError, TypeError) as err:
        raise CheckpointError(f"{where}: checkpoint does not fit this model/config ({err})") from None
    console.print(f"resumed from {where} after epoch {trainer.state.epoch}")
