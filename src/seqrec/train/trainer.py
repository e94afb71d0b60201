"""The training state of one run as one object: :class:`Trainer` (``state_dict()`` / ``load_state_dict()``).

A trainer owns everything that changes while a model trains: the model, the loss, AdamW and its schedule, the
fp16 gradient scaler, the random streams (numpy epoch permutations, the loop generator for masking and
negatives, torch's global stream for dropout) and the loop state (epoch, history, best score and weights,
patience, accumulated training time). ``state_dict()`` holds all of it, so a checkpoint is this one dict
(serialised by :mod:`seqrec.train.resume`, tensors to safetensors and the rest to JSON) and ``--resume``
continues exactly where a run stopped.

The per-batch work is here too, shared by :func:`seqrec.train.loop.fit`, ``--profile`` and ``--dry-run``:
``train_batches`` runs the micro-batches of one optimizer step (forward, loss, backward; under DDP this rank's
share of each global micro-batch) and ``optimizer_step`` unscales, clips and steps. A non-finite loss or
gradient norm raises :class:`~seqrec.errors.TrainingDiverged` before the optimizer touches the weights.

Distributed data parallel (inside torchrun/srun, see :mod:`seqrec.distributed`): every rank draws the same
epoch permutation, so the global batch keeps ``train.batch_size`` windows and rank r takes its contiguous share
of each one; each rank's loss is weighted by its share of the batch's targets so the all-reduced gradient is the
single-process one (up to float summation order). Masking and sampled negatives use a per-rank generator
(seed + 1 + 1000 * rank), dropout a per-rank global seed (seed + 1000 * rank, ranks > 0). With one process none
of this runs and results are bit-identical to a build without it.
"""

from __future__ import annotations

import contextlib
import copy
import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch
from rich.console import Console
from torch.nn.parallel import DistributedDataParallel

from seqrec import distributed
from seqrec.config import Config
from seqrec.data.sequences import PreparedData
from seqrec.data.windows import gather_windows, length_grouped_batches, trim_leading_padding, window_index
from seqrec.errors import ConfigError, TrainingDiverged
from seqrec.losses import make_loss
from seqrec.losses.memory import loss_memory_bytes
from seqrec.models.base import SequenceModel
from seqrec.train.precision import autocast_context, enable_activation_checkpointing, make_scaler, training_forward


@dataclass
class LoopState:
    """Where the loop stands after epoch ``epoch`` (everything besides modules, optimizer and RNG streams)."""

    epoch: int = 0
    history: list[dict] = field(default_factory=list)  # one record per finished epoch
    best_score: float = -math.inf  # best validation value of train.monitor so far
    best_epoch: int = 0  # 0: no epoch validated yet
    bad_epochs: int = 0  # epochs since the best one (early-stopping patience)
    train_time_s: float = 0.0  # wall time of training + validation, accumulated over resumed sittings


def schedule_steps(config: Config, steps_per_epoch: int) -> int:
    """Optimizer steps of the learning-rate schedule: ``train.schedule_epochs`` (default ``train.epochs``)."""
    tc = config.train
    return (tc.schedule_epochs or tc.epochs) * steps_per_epoch


def lr_lambda(config: Config, total_steps: int) -> Callable[[int], float]:
    """Multiplier of the learning rate at optimizer step ``step``: linear warm-up, then constant or cosine."""
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


def _check_finite(value: float, what: str) -> None:
    if not math.isfinite(value):
        raise TrainingDiverged(f"training {what} is {value} (non-finite)")


class Trainer:
    """Model, loss, optimizer, scheduler, scaler, RNG streams and loop state of one training run."""

    def __init__(
        self, model: SequenceModel, data: PreparedData, config: Config, device: torch.device,
        console: Console | None = None,
    ) -> None:
        tc = config.train
        self.model, self.data, self.config, self.device = model, data, config, device
        self.console = console if console is not None else Console(quiet=True)
        self.max_len = config.data.max_len
        self.rank, self.world = distributed.rank(), distributed.world_size()
        self.rng = np.random.default_rng(tc.seed)  # epoch permutations: the same on every rank
        self.gen = torch.Generator(device="cpu").manual_seed(tc.seed + 1 + 1000 * self.rank)  # masking, negatives
        model.to(device)
        if tc.activation_checkpointing:
            enable_activation_checkpointing(model)
        self.loss_fn = make_loss(config.loss, data.item_popularity)
        self.rows, self.ends = window_index(data.train, self.max_len, model.window_stride)  # one per window
        self.window_lengths = np.minimum(self.ends, self.max_len + 1)  # (n,) items in each window
        self.window_positions = np.maximum(self.window_lengths - 1, 0)  # (n,) targets per window
        if len(self.rows) == 0:
            raise ConfigError(
                f"data.max_len={self.max_len}: no training windows (every training sequence has fewer than 2 items)"
            )
        self.batches_per_epoch = -(-len(self.rows) // tc.batch_size)
        # Length-grouped batches differ in size (positions): each batch's mean loss is weighted by its share of
        # the average, so every position weighs the same as under random batches (else short-window batches,
        # with few targets each, would count as much as full ones).
        self.mean_batch_positions = float(self.window_positions.sum()) / self.batches_per_epoch
        self.accumulate = tc.accumulate_grad_batches
        self.steps_per_epoch = -(-self.batches_per_epoch // self.accumulate)  # optimizer steps
        self.optimizer = torch.optim.AdamW(model.param_groups(tc.weight_decay), lr=tc.lr, betas=tc.betas)
        self.lr_factor = lr_lambda(config, schedule_steps(config, self.steps_per_epoch))  # step -> lr multiplier
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, self.lr_factor)
        self.scaler = make_scaler(device, tc.precision)
        self.autocast = autocast_context(device, tc.precision)
        self.ddp: DistributedDataParallel | None = None
        if self.world > 1:
            # Backward all-reduces the gradient of every parameter it reaches, including the item table the loss
            # reads through model.item_weight() outside the wrapped forward (its hook fires once, with the summed
            # gradient of both uses). Every loss reaches every parameter, so no unused-parameter search is needed.
            self.ddp = DistributedDataParallel(
                model, device_ids=[device.index] if device.type == "cuda" else None, find_unused_parameters=False
            )
            if self.rank > 0:  # own dropout stream (the weights were synced by DDP); rank 0 keeps the seed's
                torch.manual_seed(tc.seed + 1000 * self.rank)
        self.forward = training_forward(self.ddp or model, tc.compile, tc.compile_mode, self.console)
        self.grad_clip = tc.grad_clip
        self.state = LoopState()
        self.best_state: dict[str, torch.Tensor] = copy.deepcopy(model.state_dict())

    # ---- one optimizer step -----------------------------------------------------------------------------------

    def window(self, batch: np.ndarray) -> torch.Tensor:  # (B, T + 1); T < max_len once trimmed
        window = gather_windows(self.data.train, self.rows[batch], self.ends[batch], self.max_len)
        if self.model.padding_invariant:  # exact: real positions never see the padding columns cut here
            window = trim_leading_padding(window)
        return torch.from_numpy(window)

    def epoch_batches(self) -> list[np.ndarray]:
        """This epoch's batches of window ids: a seeded permutation, grouped by length if ``train.length_grouping``."""
        order = self.rng.permutation(len(self.rows))
        tc = self.config.train
        return length_grouped_batches(order, self.window_lengths, tc.batch_size, tc.length_grouping, self.rng)

    def batch_weight(self, batch: np.ndarray) -> float:
        """Gradient weight of a batch: 1, or with ``train.length_grouping`` its positions over the average."""
        if not self.config.train.length_grouping:
            return 1.0
        return float(self.window_positions[batch].sum()) / self.mean_batch_positions

    def forward_backward(self, window: torch.Tensor, divide: int = 1, weight: float = 1.0) -> torch.Tensor:
        """One micro-batch: loss of ``window`` (B, T + 1), gradients accumulated; returns the detached loss.

        The gradient is that of ``loss * weight / divide`` (``batch_weight``, accumulation); the returned loss is
        the plain mean."""
        model, device = self.model, self.device
        inputs, targets = model.training_example(window, self.gen)
        inputs, targets = inputs.to(device, non_blocking=True), targets.to(device, non_blocking=True)
        with self.autocast():
            hidden = self.forward(inputs)  # (B, T, D)
            loss = self.loss_fn(
                hidden.reshape(-1, hidden.shape[-1]), model.item_weight(), targets.reshape(-1), self.gen
            )
        self.scaled_loss(loss, divide, weight).backward()
        return loss.detach()

    def scaled_loss(self, loss: torch.Tensor, divide: int = 1, weight: float = 1.0) -> torch.Tensor:
        """What backward runs on: ``loss * weight / divide`` (exactly ``loss / divide`` at weight 1), then the
        fp16 gradient scaler's scale."""
        if weight != 1.0:
            scaled = loss * (weight / divide)
        else:
            scaled = loss / divide if divide > 1 else loss
        return self.scaler.scale(scaled) if self.scaler is not None else scaled

    def forward_backward_shard(self, batch: np.ndarray, divide: int = 1, weight: float = 1.0) -> torch.Tensor:
        """This rank's share of the global micro-batch ``batch`` (window indices); returns the global loss.

        Losses average over non-padding targets, so scaling rank r's loss by ``world * n_r / n`` (n_r its
        targets, n the batch's) makes DDP's gradient average the gradient of the global batch mean. A rank with
        no rows (or no targets) runs the forward on one window with a zero loss touching every parameter, so
        the all-reduce it owes DDP still happens.
        """
        model, device = self.model, self.device
        local = np.array_split(batch, self.world)[self.rank]  # contiguous; sizes differ by at most one row
        inputs, targets = model.training_example(self.window(local if len(local) else batch[:1]), self.gen)
        n_local = int((targets != 0).sum()) if len(local) else 0
        inputs, targets = inputs.to(device, non_blocking=True), targets.to(device, non_blocking=True)
        with self.autocast():
            hidden = self.forward(inputs)  # (b, T, D)
            if n_local:
                loss = self.loss_fn(
                    hidden.reshape(-1, hidden.shape[-1]), model.item_weight(), targets.reshape(-1), self.gen
                )
            else:
                loss = hidden.sum() * 0.0 + model.item_weight().sum() * 0.0
        # [targets, targets * loss] summed over ranks -> (n, n * global loss); one small all-reduce per micro-batch
        stats = torch.stack([torch.tensor(float(n_local), dtype=torch.float64, device=device),
                             loss.detach().double() * n_local])  # (2,)
        torch.distributed.all_reduce(stats)
        share = (self.world * n_local / stats[0].clamp(min=1.0)).to(loss.dtype)
        self.scaled_loss(loss * share, divide, weight).backward()
        return stats[1] / stats[0].clamp(min=1.0)  # 0 for a batch without targets, like the losses' mean

    def optimizer_step(self) -> float:
        """Unscale, clip, step; returns the total gradient norm before clipping.

        Without a gradient scaler a non-finite norm raises before the step (the weights stay as they were); with
        one (16-mixed) an inf norm is the scaler's signal to skip the step and lower its scale, so it passes.
        """
        params = self.model.parameters()
        if self.scaler is not None:
            self.scaler.unscale_(self.optimizer)
        if self.grad_clip is not None:
            norm = torch.nn.utils.clip_grad_norm_(params, self.grad_clip)
        else:
            norm = torch.nn.utils.get_total_norm([p.grad for p in self.model.parameters() if p.grad is not None])
        norm_value = float(norm)
        if self.scaler is None:
            _check_finite(norm_value, "gradient norm")
            self.optimizer.step()
        else:
            self.scaler.step(self.optimizer)
            self.scaler.update()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        return norm_value

    def anomaly(self) -> contextlib.AbstractContextManager:
        """``train.detect_anomaly``: autograd names the operation that first produced a NaN (slow; for debugging)."""
        if self.config.train.detect_anomaly:
            return torch.autograd.detect_anomaly(check_nan=True)
        return contextlib.nullcontext()

    def train_batches(self, batches: list[np.ndarray]) -> tuple[float, float]:
        """Micro-batches forming one optimizer step -> (summed loss over micro-batches, grad norm).

        Distributed, gradients are all-reduced once per step: every micro-batch but the last runs under
        ``no_sync``. Raises :class:`TrainingDiverged` on a non-finite loss (every rank sees the same global loss).
        """
        loss_sum = 0.0
        with self.anomaly():
            if self.ddp is None:
                for b in batches:
                    loss_sum += float(self.forward_backward(self.window(b), len(batches), self.batch_weight(b)))
            else:
                for i, b in enumerate(batches):
                    with contextlib.nullcontext() if i == len(batches) - 1 else self.ddp.no_sync():
                        loss_sum += float(self.forward_backward_shard(b, len(batches), self.batch_weight(b)))
        _check_finite(loss_sum, "loss")
        return loss_sum, self.optimizer_step()

    # ---- early stopping bookkeeping ---------------------------------------------------------------------------

    def observe(self, score: float, epoch: int) -> bool:
        """Record a validation score; True (and the weights kept) if it is the best so far.

        A non-finite score never becomes the best: early stopping cannot select a diverged epoch.
        """
        if math.isfinite(score) and score > self.state.best_score:
            self.state.best_score, self.state.best_epoch, self.state.bad_epochs = score, epoch, 0
            self.best_state = copy.deepcopy(self.model.state_dict())
            return True
        self.state.bad_epochs += self.config.train.eval_every
        return False

    @property
    def should_stop(self) -> bool:
        return self.state.bad_epochs >= self.config.train.patience

    # ---- state -----------------------------------------------------------------------------------------------

    def rng_state(self) -> dict[str, Any]:
        """This rank's random streams: torch's global CPU (dropout) and CUDA streams, the loop generator."""
        out: dict[str, Any] = {"torch_cpu": torch.get_rng_state(), "loop_generator": self.gen.get_state()}
        if self.device.type == "cuda":
            out["cuda"] = torch.cuda.get_rng_state(self.device)
        return out

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue this run: weights, optimizer, schedule, scaler, RNG streams, loop state.

        In a process group every rank must call it (the other ranks' random streams are gathered to each), the
        result is the same everywhere but for ``rng``.
        """
        ranks = distributed.all_gather(self.rng_state()) if self.world > 1 else [self.rng_state()]
        return {
            "model": self.model.state_dict(),
            "best_model": self.best_state,
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict() if self.scaler is not None else None,
            "numpy_rng": self.rng.bit_generator.state,
            "rng": ranks,  # one entry per rank, in rank order
            "loop": asdict(self.state),
            "world_size": self.world,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict`'s output into the live objects (checkpoint saved by any number of ranks)."""
        missing, unexpected = self.model.load_state_dict(state["model"], strict=False)
        if missing or unexpected:
            raise KeyError(f"weights do not match the model (missing {missing[:3]}, unexpected {unexpected[:3]})")
        self.best_state = {k: v.to(self.device) for k, v in state["best_model"].items()}
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self._apply_config_hyperparameters()
        if self.scaler is not None and state.get("scaler"):
            self.scaler.load_state_dict(state["scaler"])
        self.rng.bit_generator.state = state["numpy_rng"]
        self.state = LoopState(**state["loop"])
        ranks = state["rng"]
        if self.rank < len(ranks):
            mine = ranks[self.rank]
            torch.set_rng_state(mine["torch_cpu"])
            self.gen.set_state(mine["loop_generator"])
            if self.device.type == "cuda" and "cuda" in mine:
                torch.cuda.set_rng_state(mine["cuda"], self.device)
        else:  # saved by a run with fewer ranks: a fresh, reproducible stream for this rank
            seq = np.random.SeedSequence([self.config.train.seed, self.rank, self.state.epoch])
            seed = int(seq.generate_state(1)[0])
            torch.manual_seed(seed)
            self.gen.manual_seed(seed + 1)

    def _apply_config_hyperparameters(self) -> None:
        """After a restore, the optimizer follows this run's config (``--resume --set train.lr=...`` takes effect).

        The checkpoint's own values come back with its state dict; for an unchanged config this is a no-op, so a
        plain resume stays bit-identical to an uninterrupted run.
        """
        tc = self.config.train
        fresh = self.model.param_groups(tc.weight_decay)
        for group, want in zip(self.optimizer.param_groups, fresh, strict=True):
            group["initial_lr"] = tc.lr
            group["weight_decay"] = want["weight_decay"]
            group["betas"] = tuple(tc.betas)
        self.scheduler.base_lrs = [tc.lr] * len(self.optimizer.param_groups)
        factor = self.lr_factor(self.scheduler.last_epoch)
        for group in self.optimizer.param_groups:
            group["lr"] = tc.lr * factor

    def restore_best(self) -> None:
        self.model.load_state_dict(self.best_state)


def estimate_memory(model: SequenceModel, config: Config, num_items: int, device_type: str = "cpu",
                    threads: int | None = None) -> dict[str, float]:
    """Rough training memory per step in MiB: weights + grads + AdamW moments, activations and the loss.

    Activations follow Korthikanti et al. (2022), ~``T*B*D*(34 + 5*H*T/D)`` bytes per transformer layer at 16-bit
    (doubled for fp32); with activation checkpointing only each block's input plus one block are kept. The loss
    term is :func:`seqrec.losses.memory.loss_memory_bytes` for the configured loss (``loss_mb``); ``logits_mb``
    is what materialised full-catalogue logits ``B*T*(N+1)`` would take (fp32, x3 for softmax and its gradient),
    for comparison. Non-transformer models use the same per-layer formula as an order of magnitude.
    """
    tc = config.train
    params = sum(p.numel() for p in model.parameters() if p.requires_grad)
    frozen = sum(p.numel() for p in model.parameters() if not p.requires_grad)  # adapters: weights only, no grads
    mcfg = getattr(model, "config", None)
    # getattr's default would be evaluated eagerly: item_weight() re-encodes a text model's whole catalogue
    hidden = int(mcfg.hidden) if hasattr(mcfg, "hidden") else int(model.item_weight().shape[-1])
    layers = int(getattr(mcfg, "layers", 2) or 2)
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
        "weights_optimizer_mb": (params * 16 + frozen * 4) / 2**20,  # fp32 weights + grads + 2 AdamW moments
        "activations_mb": acts / 2**20,
        "loss_mb": loss_memory_bytes(config.loss, b * t, num_items, hidden,
                                     device_type, threads or torch.get_num_threads()) / 2**20,
        "logits_mb": logits / 2**20,
    }
    out["total_mb"] = out["weights_optimizer_mb"] + out["activations_mb"] + out["loss_mb"]
    return out
