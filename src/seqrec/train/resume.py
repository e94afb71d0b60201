"""Epoch-boundary training checkpoints for ``seqrec train --resume DIR`` (safetensors + JSON, never pickle).

``DIR/last/`` holds ``state.safetensors`` (model, best-so-far weights, optimizer tensors, torch RNG states as
uint8 tensors) and ``state.json`` (epoch, history, early-stopping state, scheduler/scaler/optimizer scalars,
the numpy bit-generator state, the SHA-256 of the tensor file) plus ``config.yaml``. A new checkpoint is built
in a temporary folder, fsynced, and swapped in by renames: ``last`` -> ``last.prev``, temp -> ``last``. Loading
tries ``last`` then ``last.prev``, so a corrupted or truncated newest checkpoint costs one epoch, not the run.

Distributed runs: rank 0 writes the checkpoint (the model, optimizer and numpy state are the same on every
rank) plus every other rank's RNG streams as ``rng.rank<r>.*``; on ``--resume`` every rank reads the same
checkpoint and takes back its own streams, so a resumed run continues exactly like an uninterrupted one.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml
from rich.console import Console
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from seqrec.config import Config, build_config, dump_config
from seqrec.errors import CheckpointError
from seqrec.io import publish_dir

LAST, PREV = "last", "last.prev"
TENSORS, META = "state.safetensors", "state.json"
FORMAT = 1


@dataclass
class LoopState:
    """Everything besides modules the loop needs to continue after epoch ``epoch``."""

    epoch: int = 0
    history: list[dict] = field(default_factory=list)
    best_score: float = -float("inf")
    best_epoch: int = 0
    bad_epochs: int = 0


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _own(t: torch.Tensor) -> torch.Tensor:
    return t.detach().to("cpu").contiguous().clone()  # safetensors refuses shared storage (tied tables)


def save_checkpoint(
    run_dir: str | Path,
    *,
    config: Config,
    model: torch.nn.Module,
    best_state: dict[str, torch.Tensor],
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    scaler: torch.amp.GradScaler | None,
    rng: np.random.Generator,
    gen: torch.Generator,
    state: LoopState,
    rank_rng: list[dict[str, torch.Tensor]] | None = None,
) -> Path:
    """Atomically replace ``run_dir/last`` (the previous one becomes ``run_dir/last.prev``).

    ``rank_rng``: :func:`rank_rng_state` of every rank, in rank order (distributed runs; rank 0's is the
    plain ``rng.*`` entries and is not repeated).
    """
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    tensors: dict[str, torch.Tensor] = {}
    for k, v in model.state_dict().items():
        tensors[f"model.{k}"] = _own(v)
    for k, v in best_state.items():
        tensors[f"best.{k}"] = _own(v)
    opt = optimizer.state_dict()
    opt_scalars: dict[str, dict[str, Any]] = {}
    for idx, entry in opt["state"].items():
        for k, v in entry.items():
            if isinstance(v, torch.Tensor):
                tensors[f"optim.{idx}.{k}"] = _own(v)
            else:
                opt_scalars.setdefault(str(idx), {})[k] = v
    tensors["rng.torch_cpu"] = torch.get_rng_state()
    tensors["rng.loop_generator"] = gen.get_state()
    if torch.cuda.is_available():
        for i, s in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"rng.cuda{i}"] = s
    for r, states in enumerate(rank_rng or []):
        if r > 0:
            tensors.update({f"rng.rank{r}.{k}": v for k, v in states.items()})
    meta = {
        "format": FORMAT,
        "epoch": state.epoch,
        "history": state.history,
        "best_score": state.best_score if np.isfinite(state.best_score) else None,
        "best_epoch": state.best_epoch,
        "bad_epochs": state.bad_epochs,
        "optimizer": {"param_groups": opt["param_groups"], "scalars": opt_scalars,
                      "state_keys": sorted(str(i) for i in opt["state"])},
        "scheduler": scheduler.state_dict(),
        "scaler": scaler.state_dict() if scaler is not None else None,
        "numpy_rng": rng.bit_generator.state,
    }

    def fill(tmp: Path) -> None:
        save_file(tensors, str(tmp / TENSORS))
        meta["sha256"] = _sha256(tmp / TENSORS)
        (tmp / META).write_text(json.dumps(meta))
        (tmp / "config.yaml").write_text(dump_config(config))

    publish_dir(run_dir / LAST, fill, previous=PREV)
    return run_dir / LAST


def _read_one(ckpt: Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
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
    except (SafetensorError, OSError, ValueError) as err:
        raise CheckpointError(f"{tensor_path}: corrupted or truncated checkpoint ({type(err).__name__})") from None
    return tensors, meta


def load_checkpoint(
    run_dir: str | Path, console: Console | None = None
) -> tuple[dict[str, torch.Tensor], dict[str, Any], Path]:
    """Newest readable checkpoint of ``run_dir``: ``last``, else ``last.prev`` (with a one-line warning)."""
    run_dir = Path(run_dir)
    errors: list[str] = []
    for name in (LAST, PREV):
        ckpt = run_dir / name
        if not ckpt.exists():
            continue
        try:
            tensors, meta = _read_one(ckpt)
        except CheckpointError as err:
            errors.append(str(err))
            if console is not None:
                console.print(f"warning: {err}; trying the previous checkpoint", highlight=False, soft_wrap=True)
            continue
        return tensors, meta, ckpt
    if errors:
        raise CheckpointError(f"{run_dir}: no usable checkpoint ({'; '.join(errors)})")
    raise CheckpointError(f"{run_dir}: no checkpoint to resume from (expected {run_dir / LAST})")


def resume_config(run_dir: str | Path, overrides: list[str] | None = None) -> Config:
    """The config a checkpointed run was started with (``--set`` overrides applied on top)."""
    run_dir = Path(run_dir)
    for name in (LAST, PREV):
        path = run_dir / name / "config.yaml"
        if path.is_file():
            try:
                tree = yaml.safe_load(path.read_text()) or {}
            except yaml.YAMLError:
                continue
            return build_config(tree, overrides)
    raise CheckpointError(f"{run_dir}: no checkpoint to resume from (expected {run_dir / LAST / 'config.yaml'})")


def restore(
    tensors: dict[str, torch.Tensor],
    meta: dict[str, Any],
    *,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    scaler: torch.amp.GradScaler | None,
    rng: np.random.Generator,
    gen: torch.Generator,
    where: Path,
) -> tuple[LoopState, dict[str, torch.Tensor]]:
    """Load a checkpoint into the live objects; returns the loop state and the best-so-far weights."""
    model_sd = {k[6:]: v for k, v in tensors.items() if k.startswith("model.")}
    best = {k[5:]: v for k, v in tensors.items() if k.startswith("best.")}
    missing, unexpected = model.load_state_dict(model_sd, strict=False)
    if missing or unexpected:
        raise CheckpointError(f"{where}: weights do not match the model (missing {missing[:3]})")
    opt_state: dict[int, dict[str, Any]] = {}
    om = meta["optimizer"]
    for idx in om["state_keys"]:
        entry: dict[str, Any] = dict(om["scalars"].get(idx, {}))
        prefix = f"optim.{idx}."
        entry.update({k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)})
        opt_state[int(idx)] = entry
    groups = om["param_groups"]
    for g in groups:
        if "betas" in g:
            g["betas"] = tuple(g["betas"])
    optimizer.load_state_dict({"state": opt_state, "param_groups": groups})
    scheduler.load_state_dict(meta["scheduler"])
    if scaler is not None and meta.get("scaler"):
        scaler.load_state_dict(meta["scaler"])
    torch.set_rng_state(tensors["rng.torch_cpu"])
    gen.set_state(tensors["rng.loop_generator"])
    if torch.cuda.is_available():
        states = [tensors[k] for k in sorted(k for k in tensors if k.startswith("rng.cuda"))]
        if states:
            torch.cuda.set_rng_state_all(states)
    rng.bit_generator.state = meta["numpy_rng"]
    state = LoopState(
        epoch=int(meta["epoch"]),
        history=list(meta["history"]),
        best_score=-float("inf") if meta["best_score"] is None else float(meta["best_score"]),
        best_epoch=int(meta["best_epoch"]),
        bad_epochs=int(meta["bad_epochs"]),
    )
    return state, best


def rank_rng_state(gen: torch.Generator, device: torch.device) -> dict[str, torch.Tensor]:
    """This rank's RNG streams (global CPU for dropout, the loop generator, its CUDA device) as uint8 tensors."""
    out = {"torch_cpu": torch.get_rng_state(), "loop_generator": gen.get_state()}
    if device.type == "cuda":
        out["cuda"] = torch.cuda.get_rng_state(device)
    return out


def restore_rank_rng(
    tensors: dict[str, torch.Tensor], rank: int, gen: torch.Generator, device: torch.device
) -> bool:
    """Take back rank ``rank``'s streams saved by :func:`save_checkpoint`; False if the checkpoint has none."""
    prefix = f"rng.rank{rank}."
    if prefix + "torch_cpu" not in tensors:
        return False
    torch.set_rng_state(tensors[prefix + "torch_cpu"])
    gen.set_state(tensors[prefix + "loop_generator"])
    if device.type == "cuda" and prefix + "cuda" in tensors:
        torch.cuda.set_rng_state(tensors[prefix + "cuda"], device)
    return True
