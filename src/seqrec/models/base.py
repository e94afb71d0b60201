"""The one interface every sequence model implements.

A model maps left-padded item-id sequences ``(B, T)`` to hidden states ``(B, T, D)`` and exposes the item table
used for scoring, ``(num_items + 1, D)`` with row 0 = padding. It never computes catalogue logits: losses take
``(hidden, item_weight, targets)`` and evaluation scores ``hidden @ item_weight.T`` in chunks, which is what lets
a fused loss and a lean full-ranking evaluation exist for every model alike.

Training windows arrive as ``(B, T + 1)`` left-padded slices of a user's sequence; ``training_example`` turns
one into ``(inputs, targets)`` (next-item shift for causal models, masking for BERT4Rec). Evaluation calls
``prediction_hidden`` on left-padded histories of length ``T`` and gets the state that predicts the next item.
"""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import Tensor, nn


class SequenceModel(nn.Module):
    """Base class: subclasses set ``Config``/``PRESETS`` and implement ``forward`` and ``item_weight``."""

    Config: ClassVar[type]  # the model's config dataclass
    PRESETS: ClassVar[dict[str, dict]] = {}  # size name -> config field overrides (e.g. "small", "base")
    # Training windows (seqrec.data.windows): None = overlapping by one item, 1 = one window per target position
    # (for models whose training_example predicts only a window's newest item).
    window_stride: ClassVar[int | None] = None
    # True when outputs at real positions do not depend on leading padding (padding keys are masked, positions
    # count from the right, or the recurrence runs over real items only): the trainer and evaluation may then cut
    # a batch to its longest row. Checked per model by tests/models/test_padding_invariance.py.
    padding_invariant: ClassVar[bool] = False

    num_items: int
    max_len: int

    def forward(self, items: Tensor) -> Tensor:  # (B, T) int64, 0 = padding -> (B, T, D)
        raise NotImplementedError

    def item_weight(self) -> Tensor:  # (num_items + 1, D) scoring table; row 0 is padding
        raise NotImplementedError

    def training_example(self, window: Tensor, generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
        """``window`` (B, T + 1) left-padded -> ``(inputs (B, T), targets (B, T))``; target 0 = ignored.

        Default: next-item prediction at every position (causal models).
        """
        inputs = window[:, :-1]
        targets = window[:, 1:].clone()
        targets[inputs == 0] = 0  # a padded input position predicts nothing
        return inputs, targets

    def prediction_hidden(self, history: Tensor) -> Tensor:
        """``history`` (B, T) left-padded -> (B, D): the state that scores the next item."""
        return self.forward(history)[:, -1, :]

    def param_groups(self, weight_decay: float) -> list[dict]:
        """AdamW parameter groups: decay on weight matrices; none on embeddings, norms, biases (any 1-D tensor).

        Models with other needs (adapters, frozen parts, a text encoder's own rules) override this; the trainer
        only calls it. Frozen parameters (``requires_grad=False``) are left out.
        """
        no_decay_ids = set()
        for module in self.modules():
            if isinstance(module, nn.Embedding | nn.LayerNorm):
                no_decay_ids.update(id(p) for p in module.parameters(recurse=False))
        decay, no_decay = [], []
        for p in self.parameters():
            if p.requires_grad:
                (no_decay if p.ndim < 2 or id(p) in no_decay_ids else decay).append(p)
        return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]

    def num_parameters(self) -> int:
        """Exact number of trainable parameters (tied tables counted once)."""
        return sum(p.numel() for p in self.parameters() if p.requires_grad)


def init_normal(module: nn.Module, std: float) -> None:
    """Normal(0, std) weights, zero biases, zero padding rows: the transformer init shared by the models."""
    if isinstance(module, nn.Linear):
        nn.init.normal_(module.weight, std=std)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.Embedding):
        nn.init.normal_(module.weight, std=std)
        if module.padding_idx is not None:
            with torch.no_grad():
                module.weight[module.padding_idx].zero_()
