"""Callbacks of the training loop: what happens around the steps, without a branch inside ``fit``.

``fit`` calls, on rank 0 of a process group only (the callbacks write and print), except callbacks whose
``every_rank`` is True (training steps such as Recformer's item re-encoding, which every rank must run alike):

- ``on_fit_start(trainer)`` once, after a resume restored the state (so writers can replay its history);
- ``on_epoch_start(trainer, epoch)`` before each epoch's first step;
- ``on_step_end(trainer, record)`` after each optimizer step (``record``: loss, grad_norm, lr, step);
- ``on_validation_start(trainer, record)`` before an epoch's validation (``record``: the epoch's entry so far);
- ``on_epoch_end(trainer, record)`` after each epoch (``record``: the epoch's history entry, with ``valid``
  metrics when it was validated), before the checkpoint and the early-stopping decision;
- ``on_fit_end(trainer)`` once, also when training stopped with an error.

Shipped: :class:`ConsoleLog` (one line per epoch), :class:`HistoryFiles` (``history.jsonl`` + ``history.csv``)
and :class:`TrackerLog` (TensorBoard / W&B / MLflow, see :mod:`seqrec.train.tracking`). A new training mode
(pre-training, two-stage fine-tuning, adapters) adds a callback or a step, not a branch inside ``fit``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from seqrec.io import atomic_write_text
from seqrec.train.tracking import HistoryWriter, Tracker

if TYPE_CHECKING:
    from seqrec.train.trainer import Trainer


class Callback:
    """No-op base: override what you need."""

    every_rank: ClassVar[bool] = False  # True: passed to fit on every rank (it changes the training, not the logs)

    def on_fit_start(self, trainer: Trainer) -> None:
        pass

    def on_epoch_start(self, trainer: Trainer, epoch: int) -> None:
        pass

    def on_step_end(self, trainer: Trainer, record: dict[str, Any]) -> None:
        pass

    def on_validation_start(self, trainer: Trainer, record: dict[str, Any]) -> None:
        pass

    def on_epoch_end(self, trainer: Trainer, record: dict[str, Any]) -> None:
        pass

    def on_fit_end(self, trainer: Trainer) -> None:
        pass


class ConsoleLog(Callback):
    """``epoch   3  loss 5.6461  grad   0.34    3.9s      615 seq/s valid NDCG@10 0.0812``."""

    def on_epoch_end(self, trainer: Trainer, record: dict[str, Any]) -> None:
        monitor = trainer.config.train.monitor
        valid_txt = f" valid {monitor} {record['valid'][monitor]:.4f}" if "valid" in record else ""
        trainer.console.print(
            f"epoch {record['epoch']:3d}  loss {record['train_loss']:.4f}  grad {record['grad_norm_max']:6.2f}  "
            f"{record['epoch_time_s']:5.1f}s  {record['throughput_seq_s']:7.0f} seq/s{valid_txt}"
        )


class HistoryFiles(Callback):
    """``<dir>/history.jsonl`` and ``<dir>/history.csv``, rewritten atomically after every epoch."""

    def __init__(self, directory: str | Path) -> None:
        self.directory = Path(directory)
        self.lines: list[str] = []
        self.csv = HistoryWriter(self.directory / "history.csv")

    def on_fit_start(self, trainer: Trainer) -> None:
        for record in trainer.state.history:  # a resumed run: the restored epochs first
            self._append(record)

    def on_epoch_end(self, trainer: Trainer, record: dict[str, Any]) -> None:
        self._append(record)

    def _append(self, record: dict[str, Any]) -> None:
        self.lines.append(json.dumps(record))
        atomic_write_text(self.directory / "history.jsonl", "\n".join(self.lines) + "\n")
        self.csv.append(record)


class TrackerLog(Callback):
    """Per-step and per-epoch scalars to an experiment tracker; closes it at the end."""

    def __init__(self, tracker: Tracker) -> None:
        self.tracker = tracker

    def on_step_end(self, trainer: Trainer, record: dict[str, Any]) -> None:
        self.tracker.log({f"train/{k}": v for k, v in record.items() if k != "step"}, step=record["step"])

    def on_epoch_end(self, trainer: Trainer, record: dict[str, Any]) -> None:
        flat = {f"epoch/{k}": v for k, v in record.items() if isinstance(v, int | float) and k != "epoch"}
        flat.update({f"valid/{k}": v for k, v in record.get("valid", {}).items()})
        self.tracker.log(flat, step=trainer.scheduler.last_epoch)

    def on_fit_end(self, trainer: Trainer) -> None:
        self.tracker.close()
