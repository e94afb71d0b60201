"""Shared helpers of the Recformer training tests: a tiny random-initialised encoder on small synthetic data
(seconds per epoch on one thread), and callbacks that watch a run from inside the loop."""

from __future__ import annotations

from typing import Any

import torch

from seqrec.config import Config, build_config
from seqrec.train.callbacks import Callback

RF = [
    "model.name=recformer", "model.size=tiny", "model.hidden=32", "model.ffn=64", "model.max_tokens=96",
    "data.synthetic.num_users=80", "data.synthetic.num_items=40", "data.synthetic.mean_length=8",
    "data.max_len=6", "train.epochs=3", "train.batch_size=64", "train.lr=0.003", "train.progress=false",
    "train.threads=1", "train.patience=10", "eval.bootstrap=20", "model.stage1_epochs=2",
]


def rf_config(*extra: str) -> Config:
    return build_config({}, [*RF, *extra])


class Interrupt(Exception):
    """Raised by :class:`StopAt` to interrupt a run between two epochs (after a checkpoint was written)."""


class StopAt(Callback):
    """Interrupts training at the first step of epoch ``epoch`` (epoch - 1 is checkpointed by then)."""

    def __init__(self, epoch: int) -> None:
        self.epoch, self.current = epoch, 0

    def on_epoch_start(self, trainer: Any, epoch: int) -> None:
        self.current = epoch

    def on_step_end(self, trainer: Any, record: dict[str, Any]) -> None:
        if self.current == self.epoch:
            raise Interrupt(f"stopped in epoch {self.epoch}")


class WatchItems(Callback):
    """Per epoch: stage, whether I trains, I at the epoch start (after re-encoding), I after the last step."""

    def __init__(self) -> None:
        self.epochs: list[dict[str, Any]] = []
        self.last: torch.Tensor | None = None

    def on_epoch_start(self, trainer: Any, epoch: int) -> None:
        m = trainer.model
        self.epochs.append({"epoch": epoch, "start": m.item_matrix.detach().clone(),
                            "trainable": bool(m.item_matrix.requires_grad)})

    def on_step_end(self, trainer: Any, record: dict[str, Any]) -> None:
        self.epochs[-1]["end"] = trainer.model.item_matrix.detach().clone()

    def on_epoch_end(self, trainer: Any, record: dict[str, Any]) -> None:
        self.epochs[-1]["stage"] = record["stage"]
        self.epochs[-1]["record"] = dict(record)
