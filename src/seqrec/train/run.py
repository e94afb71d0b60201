"""One training run end to end, below the public API: model + trainer + callbacks + fit + final evaluation.

:func:`train_model` is what :meth:`seqrec.Recommender.fit` (and through it ``seqrec train`` and the benchmark
cells) runs once the config, the run directory and the data are known to be good: build the model, restore a
checkpoint when resuming, train with early stopping, evaluate the best weights on validation and test (plus the
popularity baseline) and assemble ``metrics.json``. It writes only ``history.*``, trackers and ``last/``; the
caller writes the run directory. Under torchrun/srun every rank calls it; callbacks and writes are rank 0's.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from rich.console import Console

from seqrec import distributed
from seqrec.config import Config
from seqrec.data.sequences import PreparedData
from seqrec.errors import ConfigError
from seqrec.eval.ranking import EvalResult, evaluate, model_scorer
from seqrec.models import build_model
from seqrec.models.base import SequenceModel
from seqrec.train.adapters import apply_adapters, describe_params, params_block, peft_summary
from seqrec.train.callbacks import Callback, ConsoleLog, HistoryFiles, TrackerLog
from seqrec.train.init_from import load_init
from seqrec.train.loop import FitResult, fit
from seqrec.train.resume import restore_trainer
from seqrec.train.runtime import environment
from seqrec.train.text_setup import is_text_model, prepare_for_training
from seqrec.train.text_stages import training_steps
from seqrec.train.tracking import make_tracker
from seqrec.train.trainer import Trainer, estimate_memory
from seqrec.version import __version__


def evaluate_split(
    model: torch.nn.Module | None, data: PreparedData, config: Config, split: str, device: torch.device | str,
    bootstrap: int | None = None, sharded: bool = False, scorer: Any = None,
) -> EvalResult:
    """Evaluate ``model`` (or any ``scorer``) on the ``valid``, ``test`` or ``cold`` split under the configured
    protocol (``cold``: test users whose target was held out of training, ``data.cold_item_fraction``; an ID
    model's candidates there are the items it trained on, see :func:`trained_items_only`).

    ``sharded``: every rank of the process group scores a share of the users (see ``evaluate``).
    """
    if scorer is None:
        assert model is not None
        model.eval()
        scorer = model_scorer(model)
        if split == "cold" and not is_text_model(model):
            scorer = trained_items_only(scorer, data)
    ec = config.eval
    return evaluate(
        scorer,
        _eval_set(data, split),
        data,
        config.data.max_len,
        ks=ec.ks,
        filter_seen=ec.filter_seen,
        batch_size=ec.batch_size,
        protocol=ec.protocol,
        num_negatives=ec.num_negatives,
        negative_sampler=ec.negative_sampler,
        bootstrap=ec.bootstrap if bootstrap is None else bootstrap,
        seed=ec.seed,
        device=device,
        sharded=sharded,
    )


def _eval_set(data: PreparedData, split: str) -> Any:
    if split == "cold":
        if data.cold is None:
            raise ConfigError(f"split 'cold': dataset {data.name} has no cold-start split (set "
                              f"data.cold_item_fraction)")
        return data.cold
    return data.valid if split == "valid" else data.test


def trained_items_only(scorer: Any, data: PreparedData) -> Any:
    """An ID model has no representation of an item it never trained on (its row is the initialisation, only
    ever pushed down as a negative): such items are not its candidates (-inf), as in a deployed ID model."""
    unseen = torch.from_numpy(np.flatnonzero(np.asarray(data.item_popularity) == 0))  # (n,) includes padding

    def score(history: torch.Tensor) -> torch.Tensor:
        out = scorer(history).float().clone()  # (B, V + 1)
        out[:, unseen.to(out.device)] = -torch.inf
        return out

    return score


def cold_block(model: torch.nn.Module, data: PreparedData, config: Config, device: torch.device) -> dict[str, Any]:
    """metrics.json "cold": the model on the users whose test target never appeared in training. Text models
    score every item from its text; ID models only the items they trained on (so their HR there is 0), with the
    untrained rows' chance-level result beside it (``test_untrained_rows``) for transparency."""
    cold = evaluate_split(model, data, config, "cold", device, sharded=True)
    out = {"test": cold.metrics, "test_ci95": cold.ci, "num_users": cold.num_users,
           "cold_items": int(data.stats.get("cold_items", 0)),
           "candidates": "all items, scored from text" if is_text_model(model) else "items seen in training"}
    if not is_text_model(model):
        raw = evaluate_split(None, data, config, "cold", device, bootstrap=0, sharded=True, scorer=model_scorer(model))
        out["test_untrained_rows"] = raw.metrics
    return out


def metrics_block(valid: EvalResult, test: EvalResult) -> dict[str, Any]:
    return {
        "valid": valid.metrics,
        "test": test.metrics,
        "test_ci95": test.ci,
        "test_stderr": test.stderr,
        "protocol": test.protocol,
        "num_test_users": test.num_users,
        "num_valid_users": valid.num_users,
    }


def baselines_block(data: PreparedData, config: Config) -> dict[str, Any]:
    """``eval.baselines`` fitted on ``data.train``, tuned on validation, evaluated on test (metrics.json entry).

    Baselines are deterministic and cheap (seconds on ML-1M), so every rank of a process group fits them; the
    evaluation is sharded like the model's. Without tuning grids (popularity, repeat_last) no validation pass runs.
    """
    from seqrec.eval.baselines import run_baselines

    ec = config.eval
    reports = run_baselines(
        list(ec.baselines), data, config.data.max_len, tune_on_valid=ec.tune_baselines, params=ec.baseline_params,
        splits=("test",), ks=ec.ks, filter_seen=ec.filter_seen, batch_size=ec.batch_size, protocol=ec.protocol,
        num_negatives=ec.num_negatives, negative_sampler=ec.negative_sampler, bootstrap=ec.bootstrap, seed=ec.seed,
        device="cpu", sharded=True,
    )
    out: dict[str, Any] = {}
    for r in reports:
        entry: dict[str, Any] = {"params": r.params, "fit_seconds": r.fit_seconds}
        if r.skipped is not None:
            entry["skipped"] = r.skipped
        if r.test is not None:
            entry.update(test=r.test.metrics, test_ci95=r.test.ci)
        out[r.name] = entry
    return out


def repeats_block(data: PreparedData, config: Config) -> dict[str, Any]:
    """How many targets repeat an input item, and what share the seen-filter leaves reachable (metrics.json)."""
    from seqrec.eval.diagnostics import repeat_diagnostics

    out: dict[str, Any] = {}
    for split, eval_set in (("valid", data.valid), ("test", data.test)):
        out[split] = repeat_diagnostics(eval_set, config.eval.filter_seen).to_dict()
    return out


def repeat_warning(data: PreparedData, config: Config) -> str | None:
    """One line when eval.filter_seen makes more than 20% of the test targets unreachable (else None)."""
    from seqrec.eval.diagnostics import repeat_diagnostics

    return repeat_diagnostics(data.test, config.eval.filter_seen).warning()


def check_against_data(config: Config, data: PreparedData) -> None:
    """What the config can only be checked against once the data is known: cut-offs within the catalogue."""
    too_big = [k for k in config.eval.ks if k > data.num_items]
    if too_big:
        raise ConfigError(f"config key 'eval.ks': cut-off {too_big[0]} exceeds the catalogue size "
                          f"{data.num_items} of {data.name} (every K must be <= the number of items)")


@dataclass
class TrainedRun:
    model: SequenceModel
    result: FitResult
    metrics: dict[str, Any]
    meta: dict[str, Any]  # the weights file's metadata


def _summary(result: FitResult, data: PreparedData, params: int) -> dict[str, Any]:
    epochs = result.history
    times = [h["epoch_time_s"] for h in epochs]
    best = epochs[result.best_epoch - 1] if result.best_epoch else epochs[-1]
    return {
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
        "train_loss": best["train_loss"],
        "train_time_s": result.train_time_s,
        **_kcore(data),
    }


def _kcore(data: PreparedData) -> dict[str, Any]:
    """metrics.json "kcore": the k-core thresholds the data was filtered with, after the dataset default filled the
    config's None values (a report can then say "users >= 5", not "dataset default")."""
    k = data.stats.get("kcore")
    return {"kcore": {"min_user": int(k["min_user"]), "min_item": int(k["min_item"])}} if k else {}


def build_for(
    config: Config, data: PreparedData, device: torch.device, console: Console, init_from: str | Path | None = None,
) -> tuple[SequenceModel, dict[str, Any] | None]:
    """The config's model for ``data``'s catalogue (initialised from the global seed, then from ``init_from``'s
    weights when given, then adapted by ``config.peft``), announced on ``console``; returns it and the init report."""
    model = build_model(config.model, data.num_items, config.data.max_len)
    prepare_for_training(model, config, data)  # text models: item text, model.init_from; ID models: nothing
    init = None
    if init_from is not None:
        init = load_init(model, config, [str(x) for x in data.item_ids], init_from, console)
    apply_adapters(model, config.peft)
    console.print(
        f"[bold]{config.model.name}[/] on {data.name}: {data.num_users} users, {data.num_items} items, "
        f"{describe_params(params_block(model, config.peft))}, device {device}"
    )
    return model, init


def train_model(
    config: Config, data: PreparedData, device: torch.device, *, output_dir: Path | None, console: Console,
    resume: bool = False, callbacks: Sequence[Callback] = (), init_from: str | Path | None = None,
) -> TrainedRun:
    """Train ``config``'s model on ``data`` and evaluate it (see the module docstring)."""
    t0 = time.perf_counter()
    main = distributed.is_main()
    model, init = build_for(config, data, device, console, init_from=None if resume else init_from)
    params = model.num_parameters()
    steps = training_steps(model, config)  # every rank: Recformer's item re-encoding and stages; ID models: none
    counts = params_block(model, config.peft)
    trainer = Trainer(model, data, config, device, console)
    mem = estimate_memory(model, config, data.num_items, device.type)
    console.print(
        f"memory estimate per step: {mem['total_mb']:.0f} MiB (weights+optimizer {mem['weights_optimizer_mb']:.0f}, "
        f"activations {mem['activations_mb']:.0f}, loss {config.loss.name} {mem['loss_mb']:.0f}; full logits "
        f"would take {mem['logits_mb']:.0f})"
    )
    if resume:
        restore_trainer(trainer, output_dir, console)
    hooks: list[Callback] = [*steps]  # first: they annotate the epoch's record before it is logged
    if main:
        hooks.append(ConsoleLog())
        if output_dir is not None:
            hooks.append(HistoryFiles(output_dir))
            tracker = make_tracker(config, output_dir)
            if tracker is not None:
                hooks.append(TrackerLog(tracker))
        hooks.extend(callbacks)
    ckpt_dir = output_dir if output_dir is not None and (config.train.checkpoint_every or resume) else None
    result = fit(trainer, hooks, checkpoint_dir=ckpt_dir)
    t_eval = time.perf_counter()
    valid = evaluate_split(model, data, config, "valid", device, sharded=True)
    test = evaluate_split(model, data, config, "test", device, sharded=True)
    cold = cold_block(model, data, config, device) if data.cold is not None else None
    eval_time = time.perf_counter() - t_eval
    metrics = {
        **metrics_block(valid, test),
        "model": config.model.name,
        **_summary(result, data, params),
        "trainable_params": counts["trainable_params"],
        "total_params": counts["total_params"],
        "peft": peft_summary(config.peft),
        **({"init_from": init} if init is not None else {}),
        "eval_time_s": eval_time,
        "memory_estimate_mb": mem,  # per step, before training: seqrec.train.trainer.estimate_memory
        "loss_memory_mb": mem["loss_mb"],  # the loss's own share of it (seqrec.losses.memory)
        "baselines": baselines_block(data, config),
        "repeats": repeats_block(data, config),
        **({"cold": cold} if cold is not None else {}),
        "total_time_s": time.perf_counter() - t0,
        "environment": {**environment(), "world_size": distributed.world_size()},
    }
    meta = {"model": config.model.name, "num_items": data.num_items, "max_len": config.data.max_len,
            "params": params, "seqrec": __version__}
    return TrainedRun(model, result, metrics, meta)


def item_titles(data: PreparedData) -> list[str | None] | None:
    """Title of every dense item (index 0: None) when the dataset's item features have a ``title`` column."""
    features = data.item_features
    columns = getattr(features, "columns", None)
    if features is None or columns is None or "title" not in columns or "item" not in columns:
        return None
    titles: list[str | None] = [None] * (data.num_items + 1)
    for item, title in zip(features["item"].to_list(), features["title"].to_list(), strict=True):
        if item is not None and 0 < int(item) <= data.num_items:
            titles[int(item)] = None if title is None else str(title)
    return titles
