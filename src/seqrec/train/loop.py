"""The training loop: one loop for every model and loss.

Per epoch: shuffle the training windows (seeded), for each batch let the model turn windows into
``(inputs, targets)``, compute hidden states, apply the loss to ``(hidden, item_weight, targets)``, clip gradients
and step AdamW. After each ``eval_every`` epochs: full-catalogue validation, early stopping on ``train.monitor``
with patience, and the best weights kept in memory (restored at the end).

Scale options (all off by default, the default path is unchanged): mixed precision and torch.compile
(:mod:`seqrec.train.precision`), gradient accumulation over ``train.accumulate_grad_batches`` micro-batches,
activation checkpointing per block, an epoch-boundary checkpoint for ``--resume`` (:mod:`seqrec.train.resume`),
a memory estimate printed at start, and a CSV history plus optional experiment tracker
(:mod:`seqrec.train.tracking`).

Distributed data parallel (inside torchrun/srun, see :mod:`seqrec.distributed`): every rank draws the same
epoch permutation, so the global batch keeps ``train.batch_size`` windows and rank r takes its contiguous share
of each one; the model is wrapped in ``DistributedDataParallel`` for the training forward, each rank's loss is
weighted by its share of the batch's targets so the all-reduced gradient is the single-process one (up to float
summation order), and clipping and AdamW then run identically everywhere. Masking and sampled negatives use a
per-rank generator (seed + 1 + 1000 * rank), dropout a per-rank global seed (seed + 1000 * rank, ranks > 0).
Validation is sharded over users and gathered, so early stopping decides the same on every rank. With one
process none of this runs and results are bit-identical to a build without it.
"""

from __future__ import annotations

import contextlib
import copy
import math
import resource
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import psutil
import torch
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from torch.nn.parallel import DistributedDataParallel

from seqrec import distributed
from seqrec.config import Config
from seqrec.data.sequences import PreparedData
from seqrec.data.windows import gather_windows, window_index
from seqrec.eval.ranking import evaluate, model_scorer
from seqrec.losses import make_loss
from seqrec.models.base import SequenceModel
from seqrec.train.precision import (
    autocast_context,
    enable_activation_checkpointing,
    make_scaler,
    training_forward,
)
from seqrec.train.resume import (
    LoopState,
    load_checkpoint,
    rank_rng_state,
    restore,
    restore_rank_rng,
    save_checkpoint,
)


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


class Trainer:
    """Optimizer, scheduler, scaler and the forward/backward/step of one batch, shared by fit, profile, dry-run.

    ``forward_backward`` accumulates gradients of one micro-batch (loss divided by the accumulation count when
    it exceeds 1); ``optimizer_step`` unscales (16-mixed), clips, steps AdamW and the scheduler, then clears
    gradients. With the defaults this is exactly forward, loss, backward, clip, step of the original loop.
    In a process group of more than one rank, ``train_batches`` takes global micro-batches and trains this
    rank's share of each under ``DistributedDataParallel`` (``forward_backward_shard``).
    """

    def __init__(
        self, model: SequenceModel, data: PreparedData, config: Config, device: torch.device, console: Console
    ) -> None:
        tc = config.train
        self.model, self.data, self.config, self.device = model, data, config, device
        self.max_len = config.data.max_len
        model.to(device)
        if tc.activation_checkpointing:
            enable_activation_checkpointing(model)
        self.loss_fn = make_loss(config.loss, data.item_popularity)
        self.rows, self.ends = window_index(data.train, self.max_len)
        if len(self.rows) == 0:
            raise ValueError("no training windows: every training sequence has fewer than 2 items")
        self.batches_per_epoch = -(-len(self.rows) // tc.batch_size)
        self.accumulate = tc.accumulate_grad_batches
        self.steps_per_epoch = -(-self.batches_per_epoch // self.accumulate)  # optimizer steps
        decay, no_decay = [], []
        for name, p in model.named_parameters():
            if not p.requires_grad:
                continue
            (no_decay if p.ndim < 2 or "emb" in name or "norm" in name else decay).append(p)
        self.optimizer = torch.optim.AdamW(
            [{"params": decay, "weight_decay": tc.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
            lr=tc.lr,
            betas=tc.betas,
        )
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, _lr_lambda(config, tc.epochs * self.steps_per_epoch)
        )
        self.scaler = make_scaler(device, tc.precision)
        self.autocast = autocast_context(device, tc.precision)
        self.rank, self.world = distributed.rank(), distributed.world_size()
        self.ddp: DistributedDataParallel | None = None
        if self.world > 1:
            # Backward all-reduces the gradient of every parameter it reaches, including the item table the loss
            # reads through model.item_weight() outside the wrapped forward (its hook fires once, with the summed
            # gradient of both uses). Every loss reaches every parameter, so no unused-parameter search is needed.
            self.ddp = DistributedDataParallel(
                model, device_ids=[device.index] if device.type == "cuda" else None, find_unused_parameters=False
            )
        self.forward = training_forward(self.ddp or model, tc.compile, tc.compile_mode, console)
        self.grad_clip = tc.grad_clip

    def window(self, batch: np.ndarray) -> torch.Tensor:  # (B, T + 1)
        return torch.from_numpy(gather_windows(self.data.train, self.rows[batch], self.ends[batch], self.max_len))

    def forward_backward(self, window: torch.Tensor, gen: torch.Generator, divide: int = 1) -> torch.Tensor:
        """One micro-batch: loss of ``window`` (B, T + 1), gradients accumulated; returns the detached loss."""
        model, device = self.model, self.device
        inputs, targets = model.training_example(window, gen)
        inputs, targets = inputs.to(device, non_blocking=True), targets.to(device, non_blocking=True)
        with self.autocast():
            hidden = self.forward(inputs)  # (B, T, D)
            loss = self.loss_fn(hidden.reshape(-1, hidden.shape[-1]), model.item_weight(), targets.reshape(-1), gen)
        scaled = loss / divide if divide > 1 else loss
        if self.scaler is not None:
            scaled = self.scaler.scale(scaled)
        scaled.backward()
        return loss.detach()

    def forward_backward_shard(self, batch: np.ndarray, gen: torch.Generator, divide: int = 1) -> torch.Tensor:
        """This rank's share of the global micro-batch ``batch`` (window indices); returns the global loss.

        Losses average over non-padding targets, so scaling rank r's loss by ``world * n_r / n`` (n_r its
        targets, n the batch's) makes DDP's gradient average the gradient of the global batch mean. A rank with
        no rows (or no targets) runs the forward on one window with a zero loss touching every parameter, so
        the all-reduce it owes DDP still happens.
        """
        model, device = self.model, self.device
        local = np.array_split(batch, self.world)[self.rank]  # contiguous; sizes differ by at most one row
        inputs, targets = model.training_example(self.window(local if len(local) else batch[:1]), gen)
        n_local = int((targets != 0).sum()) if len(local) else 0
        inputs, targets = inputs.to(device, non_blocking=True), targets.to(device, non_blocking=True)
        with self.autocast():
            hidden = self.forward(inputs)  # (b, T, D)
            if n_local:
                loss = self.loss_fn(
                    hidden.reshape(-1, hidden.shape[-1]), model.item_weight(), targets.reshape(-1), gen
                )
            else:
                loss = hidden.sum() * 0.0 + model.item_weight().sum() * 0.0
        # [targets, targets * loss] summed over ranks -> (n, n * global loss); one small all-reduce per micro-batch
        stats = torch.stack([torch.tensor(float(n_local), dtype=torch.float64, device=device),
                             loss.detach().double() * n_local])  # (2,)
        torch.distributed.all_reduce(stats)
        weight = (self.world * n_local / stats[0].clamp(min=1.0)).to(loss.dtype)
        scaled = loss * weight / divide
        if self.scaler is not None:
            scaled = self.scaler.scale(scaled)
        scaled.backward()
        return stats[1] / stats[0].clamp(min=1.0)  # 0 for a batch without targets, like the losses' mean

    def optimizer_step(self) -> torch.Tensor:
        """Unscale, clip, step; returns the total gradient norm before clipping."""
        params = self.model.parameters()
        if self.scaler is not None:
            self.scaler.unscale_(self.optimizer)
        if self.grad_clip is not None:
            norm = torch.nn.utils.clip_grad_norm_(params, self.grad_clip)
        else:
            norm = torch.nn.utils.get_total_norm([p.grad for p in self.model.parameters() if p.grad is not None])
        if self.scaler is not None:
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        return norm

    def train_batches(self, batches: list[np.ndarray], gen: torch.Generator) -> tuple[float, float]:
        """Micro-batches forming one optimizer step -> (summed loss over micro-batches, grad norm).

        Distributed, gradients are all-reduced once per step: every micro-batch but the last runs under
        ``no_sync``.
        """
        loss_sum = 0.0
        if self.ddp is None:
            for b in batches:
                loss_sum += float(self.forward_backward(self.window(b), gen, divide=len(batches)))
            return loss_sum, float(self.optimizer_step())
        for i, b in enumerate(batches):
            with contextlib.nullcontext() if i == len(batches) - 1 else self.ddp.no_sync():
                loss_sum += float(self.forward_backward_shard(b, gen, divide=len(batches)))
        return loss_sum, float(self.optimizer_step())


def estimate_memory(model: SequenceModel, config: Config, num_items: int) -> dict[str, float]:
    """Rough training memory per step in MiB: weights + grads + AdamW moments, activations and loss logits.

    Activations follow Korthikanti et al. (2022), ~``T*B*D*(34 + 5*H*T/D)`` bytes per transformer layer at 16-bit
    (doubled for fp32); with activation checkpointing only each block's input plus one block are kept. The loss
    term assumes full-catalogue logits ``B*T*(N+1)`` (fp32, x3 for softmax and its gradient); fused/sampled
    losses need far less. Non-transformer models use the same per-layer formula as an order of magnitude.
    """
    tc = config.train
    params = sum(p.numel() for p in model.parameters() if p.requires_grad)
    mcfg = getattr(model, "config", None)
    hidden = int(getattr(mcfg, "hidden", model.item_weight().shape[-1]))
    layers = int(getattr(mcfg, "layers", getattr(mcfg, "blocks", 2)) or 2)
    heads = int(getattr(mcfg, "heads", 1) or 1)
    b, t = tc.batch_size, config.data.max_len
    act_bytes = 2 if tc.precision != "32" else 4
    per_layer = t * b * hidden * (34 + 5 * heads * t / hidden) * act_bytes / 2
    if tc.activation_checkpointing:
        acts = layers * t * b * hidden * act_bytes + per_layer
    else:
        acts = layers * per_layer
    logits = 3.0 * b * t * (num_items + 1) * 4
    out = {
        "params": float(params),
        "weights_optimizer_mb": params * 16 / 2**20,  # fp32 weights + grads + 2 AdamW moments
        "activations_mb": acts / 2**20,
        "logits_mb": logits / 2**20,
    }
    out["total_mb"] = out["weights_optimizer_mb"] + out["activations_mb"] + out["logits_mb"]
    return out


def fit(
    model: SequenceModel,
    data: PreparedData,
    config: Config,
    *,
    device: torch.device,
    console: Console | None = None,
    on_epoch: Callable[[dict], None] | None = None,
    checkpoint_dir: str | Path | None = None,
    resume: bool = False,
    tracker: object | None = None,
) -> FitResult:
    """Train ``model`` on ``data.train``, early-stopping on ``data.valid``; returns history and best weights.

    ``checkpoint_dir``: write ``<dir>/last`` every ``train.checkpoint_every`` epochs. ``resume``: continue from
    the newest readable checkpoint there (``on_epoch`` is replayed for the restored epochs). ``tracker``: an
    object with ``log(metrics, step)`` (see :mod:`seqrec.train.tracking`).

    In a process group every rank calls ``fit`` with the same arguments; only rank 0 prints and writes
    checkpoints (callers pass ``on_epoch``/``tracker`` on rank 0 only), every rank returns the same result.
    """
    tc = config.train
    rank, world = distributed.rank(), distributed.world_size()
    console = console if console is not None and rank == 0 else Console(quiet=True)
    max_len = config.data.max_len
    rng = np.random.default_rng(tc.seed)  # the same epoch permutations on every rank
    gen = torch.Generator(device="cpu").manual_seed(tc.seed + 1 + 1000 * rank)  # rank 0: single-process seed
    trainer = Trainer(model, data, config, device, console)
    if rank > 0:  # own dropout stream (the model itself was built from the same seed; DDP synced it anyway)
        torch.manual_seed(tc.seed + 1000 * rank)
    rows, optimizer = trainer.rows, trainer.optimizer
    steps_per_epoch = trainer.batches_per_epoch
    mem = estimate_memory(model, config, data.num_items)
    console.print(
        f"memory estimate per step: {mem['total_mb']:.0f} MiB (weights+optimizer {mem['weights_optimizer_mb']:.0f}, "
        f"activations {mem['activations_mb']:.0f}, full logits {mem['logits_mb']:.0f})"
    )
    process = psutil.Process()
    state = LoopState()
    best_state = copy.deepcopy(model.state_dict())
    if resume:
        if checkpoint_dir is None:
            raise ValueError("resume needs a checkpoint directory")
        tensors, meta, where = load_checkpoint(checkpoint_dir, console)
        state, best_state = restore(
            tensors, meta, model=model, optimizer=optimizer, scheduler=trainer.scheduler, scaler=trainer.scaler,
            rng=rng, gen=gen, where=where,
        )
        if rank > 0 and not restore_rank_rng(tensors, rank, gen, device):  # saved by a run with fewer ranks
            seed = int(np.random.SeedSequence([tc.seed, rank, state.epoch]).generate_state(1)[0])
            torch.manual_seed(seed)
            gen.manual_seed(seed + 1)
        console.print(f"resumed from {where} after epoch {state.epoch}")
        if on_epoch is not None:
            for record in state.history:
                on_epoch(record)
    history = state.history
    best_score, best_epoch, bad_epochs = state.best_score, state.best_epoch, state.bad_epochs
    t_start = time.perf_counter()
    epoch = state.epoch
    start = epoch + 1 if bad_epochs < tc.patience else tc.epochs + 1
    for epoch in range(start, tc.epochs + 1):
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
            disable=not tc.progress or rank > 0,
        )
        with progress:
            task = progress.add_task("train", total=steps_per_epoch, loss=float("nan"))
            for step in range(0, steps_per_epoch, trainer.accumulate):
                group = [
                    order[s * tc.batch_size : (s + 1) * tc.batch_size]
                    for s in range(step, min(step + trainer.accumulate, steps_per_epoch))
                ]
                group_loss, norm = trainer.train_batches(group, gen)
                loss_sum += group_loss
                loss_n += len(group)
                grad_max = max(grad_max, norm)
                if step % 10 == 0:
                    progress.update(task, completed=step + 1, loss=loss_sum / loss_n)
                if tracker is not None:
                    tracker.log(  # type: ignore[attr-defined]
                        {"train/loss": group_loss / len(group), "train/grad_norm": norm,
                         "train/lr": optimizer.param_groups[0]["lr"]},
                        step=trainer.scheduler.last_epoch,
                    )
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
            "world_size": world,  # peak memory and CPU use above are rank 0's
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
                sharded=True,
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
        if tracker is not None:
            flat = {f"epoch/{k}": v for k, v in record.items() if isinstance(v, int | float) and k != "epoch"}
            flat.update({f"valid/{k}": v for k, v in record.get("valid", {}).items()})
            tracker.log(flat, step=trainer.scheduler.last_epoch)  # type: ignore[attr-defined]
        if checkpoint_dir is not None and tc.checkpoint_every and (
            epoch % tc.checkpoint_every == 0 or epoch == tc.epochs or bad_epochs >= tc.patience
        ):
            rank_rng = distributed.all_gather(rank_rng_state(gen, device)) if world > 1 else None
            if rank == 0:
                save_checkpoint(
                    checkpoint_dir, config=config, model=model, best_state=best_state, optimizer=optimizer,
                    scheduler=trainer.scheduler, scaler=trainer.scaler, rng=rng, gen=gen,
                    state=LoopState(epoch, history, best_score, best_epoch, bad_epochs), rank_rng=rank_rng,
                )
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
