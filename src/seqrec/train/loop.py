"""The training loop: one loop for every model and loss.

Per epoch: shuffle the training windows (seeded), for each batch let the model turn windows into
``(inputs, targets)``, compute hidden states, apply the loss to ``(hidden, item_weight, targets)``, clip gradients
and step AdamW. After each ``eval_every`` epochs: full-catalogue validation, early stopping on ``train.monitor``
with patience, and the best weights kept in memory (restored at the end).
"""

from __future__ import annotations

import copy
import math
import resource
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import psutil
import torch
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from seqrec.config import Config
from seqrec.data.sequences import PreparedData
from seqrec.data.windows import gather_windows, window_index
from seqrec.eval.ranking import evaluate, model_scorer
from seqrec.losses import make_loss
from seqrec.models.base import SequenceModel


@dataclass
class FitResult:
    history: list[dict]  # one dict per epoch
    best_epoch: int
    best_score: float
    epochs_trained: int
    best_state: dict[str, torch.Tensor] = field(repr=False)
    train_time_s: float = 0.0


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def seed_everything(seed: int) -> None:
    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)


def peak_memory_mb(device: torch.device) -> float:
    """Peak accelerator memory allocated (CUDA) or the process's peak RSS (CPU), in MiB."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # ru_maxrss is KiB on Linux


def _lr_lambda(config: Config, total_steps: int) -> Callable[[int], float]:
    warmup = config.train.warmup_steps
    cosine = config.train.scheduler == "cosine"

    def factor(step: int) -> float:
        if warmup and step < warmup:
            return (step + 1) / warmup
        if cosine:
            progress = min(1.0, (step - warmup) / max(1, total_steps - warmup))
            return 0.5 * (1 + math.cos(math.pi * progress))
        return 1.0

    return factor


def fit(
    model: SequenceModel,
    data: PreparedData,
    config: Config,
    *,
    device: torch.device,
    console: Console | None = None,
    on_epoch: Callable[[dict], None] | None = None,
) -> FitResult:
    """Train ``model`` on ``data.train``, early-stopping on ``data.valid``; returns history and best weights."""
    tc = config.train
    console = console or Console(quiet=True)
    max_len = config.data.max_len
    rng = np.random.default_rng(tc.seed)
    gen = torch.Generator(device="cpu").manual_seed(tc.seed + 1)
    model.to(device)
    loss_fn = make_loss(config.loss, data.item_popularity)
    rows, ends = window_index(data.train, max_len)
    if len(rows) == 0:
        raise ValueError("no training windows: every training sequence has fewer than 2 items")
    steps_per_epoch = -(-len(rows) // tc.batch_size)
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        (no_decay if p.ndim < 2 or "emb" in name or "norm" in name else decay).append(p)
    optimizer = torch.optim.AdamW(
        [{"params": decay, "weight_decay": tc.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=tc.lr,
        betas=tc.betas,
    )
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, _lr_lambda(config, tc.epochs * steps_per_epoch))
    process = psutil.Process()
    history: list[dict] = []
    best_score, best_epoch, bad_epochs = -math.inf, 0, 0
    best_state = copy.deepcopy(model.state_dict())
    t_start = time.perf_counter()
    epoch = 0
    for epoch in range(1, tc.epochs + 1):
        model.train()
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        order = rng.permutation(len(rows))
        t0 = time.perf_counter()
        cpu0 = process.cpu_times()
        loss_sum, loss_n, grad_max = 0.0, 0, 0.0
        progress = Progress(
            TextColumn(f"epoch {epoch}"),
            BarColumn(),
            TextColumn("{task.completed}/{task.total} loss {task.fields[loss]:.4f}"),
            TimeElapsedColumn(),
            console=console,
            transient=True,
            disable=not tc.progress,
        )
        with progress:
            task = progress.add_task("train", total=steps_per_epoch, loss=float("nan"))
            for step in range(steps_per_epoch):
                batch = order[step * tc.batch_size : (step + 1) * tc.batch_size]
                window = torch.from_numpy(gather_windows(data.train, rows[batch], ends[batch], max_len))
                inputs, targets = model.training_example(window, gen)
                inputs, targets = inputs.to(device, non_blocking=True), targets.to(device, non_blocking=True)
                hidden = model(inputs)  # (B, T, D)
                loss = loss_fn(hidden.reshape(-1, hidden.shape[-1]), model.item_weight(), targets.reshape(-1), gen)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                if tc.grad_clip is not None:
                    norm = torch.nn.utils.clip_grad_norm_(model.parameters(), tc.grad_clip)
                else:
                    norm = torch.nn.utils.get_total_norm([p.grad for p in model.parameters() if p.grad is not None])
                optimizer.step()
                scheduler.step()
                loss_sum += float(loss.detach())
                loss_n += 1
                grad_max = max(grad_max, float(norm))
                if step % 10 == 0:
                    progress.update(task, completed=step + 1, loss=loss_sum / loss_n)
        epoch_time = time.perf_counter() - t0
        cpu1 = process.cpu_times()
        record: dict = {
            "epoch": epoch,
            "train_loss": loss_sum / max(loss_n, 1),
            "grad_norm_max": grad_max,
            "lr": optimizer.param_groups[0]["lr"],
            "epoch_time_s": epoch_time,
            "throughput_seq_s": len(rows) / epoch_time,
            "peak_memory_mb": peak_memory_mb(device),
            "cpu_util_pct": 100.0 * ((cpu1.user - cpu0.user) + (cpu1.system - cpu0.system)) / epoch_time,
        }
        if epoch % tc.eval_every == 0 or epoch == tc.epochs:
            model.eval()
            res = evaluate(
                model_scorer(model),
                data.valid,
                data,
                max_len,
                ks=config.eval.ks,
                filter_seen=config.eval.filter_seen,
                batch_size=config.eval.batch_size,
                bootstrap=0,
                device=device,
            )
            record["valid"] = res.metrics
            score = res.metrics.get(tc.monitor, float("nan"))
            if score > best_score:
                best_score, best_epoch, bad_epochs = score, epoch, 0
                best_state = copy.deepcopy(model.state_dict())
            else:
                bad_epochs += tc.eval_every
        history.append(record)
        valid_txt = f" valid {tc.monitor} {record['valid'][tc.monitor]:.4f}" if "valid" in record else ""
        console.print(
            f"epoch {epoch:3d}  loss {record['train_loss']:.4f}  grad {grad_max:6.2f}  "
            f"{epoch_time:5.1f}s  {record['throughput_seq_s']:7.0f} seq/s{valid_txt}"
        )
        if on_epoch is not None:
            on_epoch(record)
        if bad_epochs >= tc.patience:
            break
    model.load_state_dict(best_state)
    return FitResult(
        history=history,
        best_epoch=best_epoch,
        best_score=best_score,
        epochs_trained=epoch,
        best_state=best_state,
        train_time_s=time.perf_counter() - t_start,
    )
