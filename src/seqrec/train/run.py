"""High-level API behind the CLI: train a run directory, re-evaluate it, recommend from it.

A run directory holds ``model.safetensors`` (weights; metadata in its header), ``config.yaml`` (the fully
resolved config), ``metrics.json``, ``history.jsonl`` and ``items.json`` (original item ids by dense id, so
recommendations speak the dataset's ids). Nothing is written before the config and the data have loaded, so
bad input never touches an existing output directory.

Under torchrun/srun (see :mod:`seqrec.distributed`) ``train_run`` joins the process group, every rank
trains its shard and evaluates its share of users, and rank 0 alone prints and writes the run directory.
"""

from __future__ import annotations

import json
import platform
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml
from rich.console import Console

from seqrec import __version__, distributed
from seqrec.config import Config, build_config, dump_config
from seqrec.data import prepare_data
from seqrec.data.sequences import EvalSet, PreparedData
from seqrec.errors import CheckpointError, ConfigError, DataError
from seqrec.eval.ranking import EvalResult, evaluate, model_scorer, popularity_scorer
from seqrec.io import atomic_write_json, atomic_write_text
from seqrec.models import build_model
from seqrec.train.checkpoint import WEIGHTS, load_weights, save_weights
from seqrec.train.loop import fit, resolve_device, seed_everything


def environment() -> dict[str, Any]:
    return {
        "seqrec": __version__,
        "torch": torch.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "threads": torch.get_num_threads(),
    }


def _evaluate(
    scorer, eval_set: EvalSet, data: PreparedData, config: Config, device: torch.device | str, bootstrap: int,
    sharded: bool = False,
) -> EvalResult:
    ec = config.eval
    return evaluate(
        scorer,
        eval_set,
        data,
        config.data.max_len,
        ks=ec.ks,
        filter_seen=ec.filter_seen,
        batch_size=ec.batch_size,
        protocol=ec.protocol,
        num_negatives=ec.num_negatives,
        negative_sampler=ec.negative_sampler,
        bootstrap=bootstrap,
        seed=ec.seed,
        device=device,
        sharded=sharded,
    )


def evaluate_split(
    model: torch.nn.Module, data: PreparedData, config: Config, split: str, device: torch.device,
    bootstrap: int | None = None, sharded: bool = False,
) -> EvalResult:
    """Evaluate ``model`` on the ``valid`` or ``test`` split under the configured protocol.

    ``sharded``: every rank of the process group scores a share of the users (see ``evaluate``).
    """
    model.eval()
    eval_set = data.valid if split == "valid" else data.test
    boot = config.eval.bootstrap if bootstrap is None else bootstrap
    return _evaluate(model_scorer(model), eval_set, data, config, device, boot, sharded)


def popularity_baseline(data: PreparedData, config: Config, sharded: bool = False) -> EvalResult:
    """The most-popular-items baseline on test, under the same protocol."""
    return _evaluate(popularity_scorer(data.item_popularity), data.test, data, config, "cpu", 0, sharded)


def _metrics_block(valid: EvalResult, test: EvalResult) -> dict[str, Any]:
    return {
        "valid": valid.metrics,
        "test": test.metrics,
        "test_ci95": test.ci,
        "test_stderr": test.stderr,
        "protocol": test.protocol,
        "num_test_users": test.num_users,
        "num_valid_users": valid.num_users,
    }


def _setup(config: Config) -> torch.device:
    if config.train.threads:
        torch.set_num_threads(config.train.threads)
    seed_everything(config.train.seed)
    return resolve_device(config.train.device)


def train_run(
    config: Config, output_dir: str | Path, *, data_dir: str | Path | None = None, console: Console | None = None,
    resume: bool = False,
) -> dict[str, Any]:
    """Train, early-stop on validation, evaluate the best weights on test, write the run directory.

    ``resume``: continue from ``output_dir/last`` (see :mod:`seqrec.train.resume`). ``train.profile`` and
    ``train.dry_run`` run a few steps only and return their report instead of metrics.

    Inside a distributed launch this joins (and afterwards leaves) the process group; every rank returns the
    same metrics, and only once rank 0 has written the run directory.
    """
    output_dir = Path(output_dir)
    if output_dir.exists() and not output_dir.is_dir():
        raise DataError(f"{output_dir}: output path exists and is not a directory")
    device = _setup(config)
    joins = distributed.in_launch() and not torch.distributed.is_initialized()
    device = distributed.init(device)
    try:
        return _train_run(config, output_dir, device, data_dir, console, resume)
    finally:
        if joins:
            distributed.cleanup()


def _train_run(
    config: Config, output_dir: Path, device: torch.device, data_dir: str | Path | None, console: Console | None,
    resume: bool,
) -> dict[str, Any]:
    main, world = distributed.is_main(), distributed.world_size()
    console = console if console is not None and main else Console(quiet=True)
    t0 = time.perf_counter()
    with distributed.local_main_first():  # one rank per node fills the data cache, the others read it
        data = prepare_data(config.data, data_dir)
    model = build_model(config.model, data.num_items, config.data.max_len)
    params = model.num_parameters()
    console.print(
        f"[bold]{config.model.name}[/] on {data.name}: {data.num_users} users, {data.num_items} items, "
        f"{params:,} params, device {device}"
    )
    if config.train.profile or config.train.dry_run:
        if world > 1:
            raise ConfigError("train.profile/train.dry_run: run in one process (no --devices, no torchrun)")
        from seqrec.train.profiling import dry_run, profile_run

        if config.train.dry_run:
            return dry_run(model, data, config, device=device, console=console)
        return profile_run(model, data, config, output_dir, device=device, console=console)
    from seqrec.train.tracking import HistoryWriter, make_tracker

    if main:
        output_dir.mkdir(parents=True, exist_ok=True)
    csv_history = HistoryWriter(output_dir / "history.csv")
    tracker = make_tracker(config, output_dir) if main else None

    def log_epoch(record: dict) -> None:
        lines = [*history_lines, json.dumps(record)]
        atomic_write_text(output_dir / "history.jsonl", "\n".join(lines) + "\n")
        history_lines.append(json.dumps(record))
        csv_history.append(record)

    history_lines: list[str] = []
    try:
        result = fit(
            model, data, config, device=device, console=console, on_epoch=log_epoch if main else None,
            checkpoint_dir=output_dir if (config.train.checkpoint_every or resume) else None,
            resume=resume, tracker=tracker,
        )
    finally:
        if tracker is not None:
            tracker.close()
    t_eval = time.perf_counter()
    valid = evaluate_split(model, data, config, "valid", device, sharded=True)
    test = evaluate_split(model, data, config, "test", device, sharded=True)
    pop = popularity_baseline(data, config, sharded=True)
    eval_time = time.perf_counter() - t_eval
    epochs = result.history
    times = [h["epoch_time_s"] for h in epochs]
    metrics = {
        **_metrics_block(valid, test),
        "model": config.model.name,
        "dataset": data.name,
        "params": params,
        "epochs_trained": result.epochs_trained,
        "best_epoch": result.best_epoch,
        "epoch_time_max_s": max(times),
        "epoch_time_avg_s": sum(times) / len(times),
        "epoch_time_sum_s": sum(times),
        "throughput_seq_s": sum(h["throughput_seq_s"] for h in epochs) / len(epochs),
        "peak_memory_mb": max(h["peak_memory_mb"] for h in epochs),
        "grad_norm_max": max(h["grad_norm_max"] for h in epochs),
        "lr": epochs[-1]["lr"],
        "train_loss": epochs[result.best_epoch - 1]["train_loss"] if result.best_epoch else epochs[-1]["train_loss"],
        "train_time_s": result.train_time_s,
        "eval_time_s": eval_time,
        "total_time_s": time.perf_counter() - t0,
        "baselines": {"popularity": {"test": pop.metrics}},
        "environment": {**environment(), "world_size": world},
    }
    meta = {
        "model": config.model.name,
        "num_items": data.num_items,
        "max_len": config.data.max_len,
        "params": params,
        "seqrec": __version__,
    }
    if main:
        save_weights(output_dir / WEIGHTS, model.state_dict(), meta)
        atomic_write_json(output_dir / "items.json", [str(x) for x in data.item_ids])
        atomic_write_text(output_dir / "config.yaml", dump_config(config))
        atomic_write_json(output_dir / "metrics.json", metrics)
    distributed.barrier()  # no rank returns before the run directory is complete
    return metrics


def load_run(
    checkpoint_dir: str | Path, overrides: list[str] | None = None
) -> tuple[Config, torch.nn.Module, list[str]]:
    """Config, model (weights loaded, eval mode) and item ids of a run directory."""
    ckpt = Path(checkpoint_dir)
    cfg_path = ckpt / "config.yaml"
    if not cfg_path.is_file():
        raise CheckpointError(f"{cfg_path}: not found (is {ckpt} a seqrec run directory?)")
    tree = yaml.safe_load(cfg_path.read_text()) or {}
    config = build_config(tree, overrides)
    tensors, meta = load_weights(ckpt / WEIGHTS)
    items_path = ckpt / "items.json"
    if not items_path.is_file():
        raise CheckpointError(f"{items_path}: not found")
    item_ids = json.loads(items_path.read_text())
    model = build_model(config.model, int(meta["num_items"]), int(meta["max_len"]))
    missing, unexpected = model.load_state_dict(tensors, strict=False)
    if missing or unexpected:
        raise CheckpointError(f"{ckpt / WEIGHTS}: weights do not match the model (missing {missing[:3]})")
    model.eval()
    return config, model, item_ids


def evaluate_run(
    checkpoint_dir: str | Path, *, data_dir: str | Path | None = None, overrides: list[str] | None = None
) -> dict[str, Any]:
    config, model, _ = load_run(checkpoint_dir, overrides)
    device = _setup(config)
    model.to(device)
    data = prepare_data(config.data, data_dir)
    valid = evaluate_split(model, data, config, "valid", device)
    test = evaluate_split(model, data, config, "test", device)
    return _metrics_block(valid, test)


@torch.no_grad()
def recommend_histories(
    model: torch.nn.Module, histories: list[list[int]], k: int, max_len: int, filter_seen: bool = True
) -> list[list[int]]:
    """Top-k dense item ids for each dense-id history (seen items filtered by default)."""
    out: list[list[int]] = []
    for start in range(0, len(histories), 512):
        chunk = histories[start : start + 512]
        batch = np.zeros((len(chunk), max_len), dtype=np.int64)
        for i, h in enumerate(chunk):
            h = h[-max_len:]
            if h:
                batch[i, -len(h) :] = h
        scores = model_scorer(model)(torch.from_numpy(batch)).float()
        scores[:, 0] = -torch.inf
        if filter_seen:
            for i, h in enumerate(chunk):
                if h:
                    scores[i, torch.tensor(h)] = -torch.inf
        out.extend(scores.topk(k, dim=1).indices.tolist())
    return out


def full_histories(data: PreparedData) -> dict[str, list[int]]:
    """Every user's complete chronological history (test input + test target where present), by original id."""
    hist = {str(data.user_ids[u]): data.train[u].tolist() for u in range(len(data.train))}
    for i, u in enumerate(data.test.users):
        hist[str(data.user_ids[u])] = [*data.test.inputs[i].tolist(), int(data.test.targets[i])]
    return hist
