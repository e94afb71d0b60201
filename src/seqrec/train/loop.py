"""The training loop: one loop for every model and loss, as short named steps.

``fit(trainer, callbacks, checkpoint_dir)`` repeats, per epoch:

1. :func:`train_epoch` — a seeded permutation of the training windows, one optimizer step per
   ``batch_size * accumulate_grad_batches`` windows (see :class:`~seqrec.train.trainer.Trainer`), progress bar
   with epoch k/N and ETA;
2. :func:`validate` — every ``eval_every`` epochs and at the last one: full-catalogue validation (sharded over
   ranks in a process group, gathered, so every rank decides the same);
3. :func:`early_stop` — the best weights on ``train.monitor`` are kept, patience counts down; a non-finite score
   is never the best;
4. :func:`checkpoint` — every ``checkpoint_every`` epochs ``<dir>/last`` is replaced atomically (rank 0 writes);
5. callbacks (console line, history files, tracker) see the epoch's record; ``on_epoch_start`` and
   ``on_validation_start`` let a model's training steps (Recformer's item re-encoding and fine-tuning stages,
   :mod:`seqrec.train.text_stages`) run without a branch here.

At the end the best weights are loaded into the model. A non-finite loss or gradient norm stops the run with
:class:`~seqrec.errors.TrainingDiverged` naming the epoch and step; the last checkpoint before it stays the
resumable state. Resuming is ``trainer.load_state_dict(...)`` before ``fit`` (see :mod:`seqrec.train.resume`).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import psutil
import torch
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from seqrec.errors import TrainingDiverged
from seqrec.eval.ranking import evaluate, model_scorer
from seqrec.train.callbacks import Callback
from seqrec.train.resume import save_checkpoint
from seqrec.train.runtime import peak_memory_mb
from seqrec.train.trainer import Trainer


@dataclass
class FitResult:
    history: list[dict]  # one dict per epoch
    best_epoch: int
    best_score: float
    epochs_trained: int
    best_state: dict[str, torch.Tensor] = field(repr=False)
    train_time_s: float = 0.0  # accumulated over resumed sittings


def _progress(trainer: Trainer, epoch: int) -> Progress:
    tc = trainer.config.train
    return Progress(
        TextColumn(f"epoch {epoch}/{tc.epochs}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total} loss {task.fields[loss]:.4f}"),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
        console=trainer.console,
        transient=True,
        disable=not tc.progress or trainer.rank > 0,
    )


def train_epoch(trainer: Trainer, epoch: int, callbacks: Sequence[Callback] = ()) -> dict:
    """One pass over every training window; returns the epoch's record (loss, grad norm, time, memory)."""
    device = trainer.device
    trainer.model.train()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    batches = trainer.epoch_batches()
    process = psutil.Process()
    t0, cpu0 = time.perf_counter(), process.cpu_times()
    loss_sum, loss_n, grad_max = 0.0, 0, 0.0
    steps = trainer.batches_per_epoch
    with _progress(trainer, epoch) as progress:
        task = progress.add_task("train", total=steps, loss=float("nan"))
        for step in range(0, steps, trainer.accumulate):
            group = batches[step : step + trainer.accumulate]
            try:
                group_loss, norm = trainer.train_batches(group)
            except TrainingDiverged as err:
                resumable = f"epoch {trainer.state.epoch} in last/" if trainer.state.epoch else "none yet"
                raise TrainingDiverged(
                    f"epoch {epoch}, step {step // trainer.accumulate + 1}/{trainer.steps_per_epoch}: {err}; the run "
                    f"stopped (resumable state: {resumable}). Lower train.lr or set train.grad_clip; "
                    f"train.detect_anomaly=true names the operation that produced it"
                ) from None
            loss_sum += group_loss
            loss_n += len(group)
            grad_max = max(grad_max, norm)
            if step % 10 == 0:
                progress.update(task, completed=step + 1, loss=loss_sum / loss_n)
            record = {"loss": group_loss / len(group), "grad_norm": norm,
                      "lr": trainer.optimizer.param_groups[0]["lr"], "step": trainer.scheduler.last_epoch}
            for cb in callbacks:
                cb.on_step_end(trainer, record)
    epoch_time = time.perf_counter() - t0
    cpu1 = process.cpu_times()
    return {
        "epoch": epoch,
        "train_loss": loss_sum / max(loss_n, 1),
        "grad_norm_max": grad_max,
        "lr": trainer.optimizer.param_groups[0]["lr"],
        "epoch_time_s": epoch_time,
        "throughput_seq_s": len(trainer.rows) / epoch_time,
        "peak_memory_mb": peak_memory_mb(device),
        "cpu_util_pct": 100.0 * ((cpu1.user - cpu0.user) + (cpu1.system - cpu0.system)) / epoch_time,
        "world_size": trainer.world,  # peak memory and CPU use above are rank 0's
    }


def validate(trainer: Trainer, record: dict) -> None:
    """Full-catalogue validation metrics (no bootstrap) into ``record["valid"]``."""
    config = trainer.config
    trainer.model.eval()
    res = evaluate(
        model_scorer(trainer.model),
        trainer.data.valid,
        trainer.data,
        config.data.max_len,
        ks=config.eval.ks,
        filter_seen=config.eval.filter_seen,
        batch_size=config.eval.batch_size,
        bootstrap=0,
        device=trainer.device,
        sharded=True,
    )
    record["valid"] = res.metrics


def early_stop(trainer: Trainer, record: dict) -> None:
    """Best weights and patience from the epoch's validation (epochs without validation leave both alone)."""
    if "valid" in record:
        trainer.observe(record["valid"].get(trainer.config.train.monitor, float("nan")), record["epoch"])


def checkpoint(trainer: Trainer, checkpoint_dir: Path | None, epoch: int) -> None:
    """Write ``last/`` when due (every rank takes part in gathering the RNG streams; rank 0 writes)."""
    tc = trainer.config.train
    due = tc.checkpoint_every and (epoch % tc.checkpoint_every == 0 or epoch == tc.epochs or trainer.should_stop)
    if checkpoint_dir is None or not due:
        return
    state = trainer.state_dict()
    if trainer.rank == 0:
        save_checkpoint(checkpoint_dir, trainer.config, state)


def fit(trainer: Trainer, callbacks: Sequence[Callback] = (), checkpoint_dir: str | Path | None = None) -> FitResult:
    """Train ``trainer.model`` on ``data.train`` from wherever ``trainer.state`` stands; early-stop on validation.

    In a process group every rank calls ``fit`` with the same arguments; pass callbacks on rank 0 only (they
    print and write), except ``every_rank`` ones (training steps), on every rank. Every rank returns the same
    result. Raises :class:`TrainingDiverged` on a non-finite loss
    or gradient norm, or when no validated epoch had a finite score.
    """
    tc, state = trainer.config.train, trainer.state
    ckpt_dir = Path(checkpoint_dir) if checkpoint_dir is not None else None
    for cb in callbacks:
        cb.on_fit_start(trainer)
    t_start, time_before = time.perf_counter(), state.train_time_s
    try:
        first = state.epoch + 1 if not trainer.should_stop else tc.epochs + 1
        for epoch in range(first, tc.epochs + 1):
            for cb in callbacks:
                cb.on_epoch_start(trainer, epoch)
            record = train_epoch(trainer, epoch, callbacks)
            if epoch % tc.eval_every == 0 or epoch == tc.epochs:
                for cb in callbacks:
                    cb.on_validation_start(trainer, record)
                validate(trainer, record)
            early_stop(trainer, record)
            state = trainer.state
            state.history.append(record)
            state.epoch = epoch
            state.train_time_s = time_before + time.perf_counter() - t_start
            for cb in callbacks:
                cb.on_epoch_end(trainer, record)
            checkpoint(trainer, ckpt_dir, epoch)
            if trainer.should_stop:
                break
        if state.best_epoch == 0:
            raise TrainingDiverged(f"no validated epoch had a finite {tc.monitor}: the run stopped without a model")
    finally:
        for cb in callbacks:
            cb.on_fit_end(trainer)
    trainer.restore_best()
    state.train_time_s = time_before + time.perf_counter() - t_start
    return FitResult(
        history=state.history,
        best_epoch=state.best_epoch,
        best_score=state.best_score,
        epochs_trained=state.epoch,
        best_state=trainer.best_state,
        train_time_s=state.train_time_s,
    )
