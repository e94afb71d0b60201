"""Recformer's two-stage fine-tuning (the seed's Algorithm 1) as a training step of the shared loop.

:class:`TextStages` is a callback that runs on every rank (``every_rank``), so ``fit`` keeps no model branch:

- stage 1, at every epoch start: ``I <- Encode(M)`` (all items, eval mode, no grad, large batches), then the
  encoder trains against I. Before each validation I is encoded again from the weights just trained, so the
  validated and best-kept (M, I) agree; the next epoch start then finds I current and does not repeat the work.
  Early stopping on ``train.monitor`` (valid NDCG@10) with ``train.patience`` ends the stage, or
  ``model.stage1_epochs``;
- stage 2: ``M <- M'`` (the best stage-1 weights, I' with them), then training goes on against I' (never
  re-encoded) with its own patience (``model.stage2_patience``, default ``train.patience``); only an epoch
  better than every earlier one (stage 1 included, Algorithm 1's ``p' > p``) becomes the best. The optimizer
  and its schedule go on (as in the released code).

``train.epochs`` bounds both stages together. Each epoch's history record gets ``stage`` (1 or 2), the epoch
that ended stage 1 gets ``stage_end``: a resumed run reads its stage from the restored history, so
``--resume`` continues either stage exactly (a stage-1 I is re-encoded from the restored weights, which gives
the same tensor; a stage-2 I is the restored one).

``model.item_matrix`` picks the seed's ablation variant (table in
:data:`seqrec.models.recformer.ITEM_MATRIX_VARIANTS`): ``fix`` (default) is Algorithm 1; ``original`` trains I as
a free table in stage 2 (the slides' "Original" row: Trainable item embedding in fine-tuning); ``variable``
trains it in stage 1 (re-encoded at every epoch start, then updated by the optimizer; no re-encoding before
validation, which would discard that) and freezes it in stage 2; ``training_only`` stops after stage 1;
``finetune_only`` skips stage 1: I is encoded once from the initial (pre-trained) weights and trained in stage
2. A trained I has its AdamW moments reset whenever it is (re-)initialised. Variants that train I need one
process (DDP registers trainable parameters once, and I's trainability changes between stages).
"""

from __future__ import annotations

from typing import Any

from seqrec import distributed
from seqrec.config import Config
from seqrec.errors import ConfigError
from seqrec.models.base import SequenceModel
from seqrec.models.recformer import ITEM_MATRIX_VARIANTS
from seqrec.train.callbacks import Callback
from seqrec.train.text_setup import is_text_model
from seqrec.train.trainer import Trainer


class TextStages(Callback):
    """Item re-encoding and the two fine-tuning stages of one Recformer run (see the module docstring)."""

    every_rank = True

    def __init__(self, model: SequenceModel, config: Config) -> None:
        mc, tc = model.config, config.train  # type: ignore[attr-defined]
        self.variant = mc.item_matrix
        self.has_stage1, self.train1, self.has_stage2, self.train2 = ITEM_MATRIX_VARIANTS[self.variant]
        self.stage = 1 if self.has_stage1 else 2
        self.patience, self.patience2 = tc.patience, mc.stage2_patience or tc.patience
        self.stage1_epochs: int | None = mc.stage1_epochs
        if self.stage1_epochs is not None and self.stage1_epochs % tc.eval_every:
            raise ConfigError(f"config key 'model.stage1_epochs': {self.stage1_epochs} must be a multiple of "
                              f"train.eval_every={tc.eval_every} (stage 2 starts from a validated epoch)")
        if distributed.world_size() > 1 and (self.train1 or self.train2):
            raise ConfigError(f"config key 'model.item_matrix': {self.variant!r} trains the item matrix in one "
                              f"stage, which needs one process (use fix or training_only with --devices)")
        self.encoded_at: int | None = None  # optimizer step at which I was last encoded (None: unknown)
        self.announce = ""  # the stage switch, printed when the next epoch starts

    # ---- helpers --------------------------------------------------------------------------------------------

    def trainable(self) -> bool:
        return self.train1 if self.stage == 1 else self.train2

    def _set_stage(self, trainer: Trainer, stage: int) -> None:
        self.stage = stage
        trainer.model.set_item_trainable(self.trainable())  # type: ignore[operator]
        if self.trainable():
            trainer.optimizer.state.pop(trainer.model.item_matrix, None)  # fresh moments for a new table

    def encode(self, trainer: Trainer) -> None:
        """I <- Encode(M); a trained I starts again from the encoding (fresh AdamW moments)."""
        trainer.model.refresh_item_matrix()  # type: ignore[operator]
        self.encoded_at = trainer.scheduler.last_epoch
        if self.trainable():
            trainer.optimizer.state.pop(trainer.model.item_matrix, None)

    def _say(self, trainer: Trainer, text: str) -> None:
        if trainer.rank == 0:
            trainer.console.print(text, highlight=False)

    # ---- loop hooks -------------------------------------------------------------------------------------------

    def on_fit_start(self, trainer: Trainer) -> None:
        history = trainer.state.history
        stage = 1 if self.has_stage1 else 2
        if history and (history[-1].get("stage") == 2 or history[-1].get("stage_end")):
            stage = 2
        self.stage = stage
        trainer.model.set_item_trainable(self.trainable())  # type: ignore[operator]
        self.encoded_at = None
        if stage == 2 and not history:  # finetune_only: I once from the initial weights, then trained
            self.encode(trainer)

    def on_epoch_start(self, trainer: Trainer, epoch: int) -> None:
        if self.announce:  # said here, after the console line of the epoch that ended stage 1
            self._say(trainer, self.announce)
            self.announce = ""
        if self.stage == 1 and (self.train1 or self.encoded_at != trainer.scheduler.last_epoch):
            self.encode(trainer)

    def on_validation_start(self, trainer: Trainer, record: dict[str, Any]) -> None:
        if self.stage == 1 and not self.train1:
            self.encode(trainer)

    def on_epoch_end(self, trainer: Trainer, record: dict[str, Any]) -> None:
        record["stage"] = self.stage
        state, epoch = trainer.state, record["epoch"]
        if self.stage == 2:
            # should_stop compares with train.patience: offset the count so stage 2 stops after its own patience
            if "valid" in record and state.best_epoch == epoch:
                state.bad_epochs = self.patience - self.patience2
            return
        capped = self.stage1_epochs is not None and epoch >= self.stage1_epochs
        if not (trainer.should_stop or capped) or epoch >= trainer.config.train.epochs:
            return
        if not self.has_stage2:  # training_only: the run ends with stage 1
            state.bad_epochs = max(state.bad_epochs, self.patience)
            return
        record["stage_end"] = True
        trainer.restore_best()  # M <- M', I <- I'
        self._set_stage(trainer, 2)
        state.bad_epochs = self.patience - self.patience2
        self.announce = (f"stage 2 after epoch {epoch}, from epoch {state.best_epoch}'s weights (valid "
                         f"{trainer.config.train.monitor} {state.best_score:.4f}): item matrix "
                         f"{'trained' if self.train2 else 'frozen'}, patience {self.patience2}")


def training_steps(model: SequenceModel, config: Config) -> list[Callback]:
    """The model's every-rank training steps: :class:`TextStages` for text models, none for ID models."""
    return [TextStages(model, config)] if is_text_model(model) else []
