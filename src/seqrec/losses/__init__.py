"""Training losses over a large item catalogue: ``(hidden (N, D), weight (V, D), targets (N,)) -> scalar``.

Conventions shared by every loss (see :data:`LOSSES`):

* ``targets == 0`` marks padding rows; they are ignored and ``mean`` averages over the remaining rows (an
  all-padding batch gives loss 0 with zero gradients, never NaN).
* ``weight`` row 0 is the padding item: it is never scored, never a target and never sampled as a negative.
* Randomness (negative sampling, SCE projections) comes only from the ``generator`` argument.

The trainer calls ``make_loss(cfg.loss, data.item_popularity)(hidden, weight, targets, generator)``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import torch
from torch import Generator, Tensor

from seqrec.config import LossConfig
from seqrec.errors import ConfigError
from seqrec.losses.ce import chunked_cross_entropy, materialized_cross_entropy

__all__ = [
    "LOSSES",
    "LossFn",
    "chunked_cross_entropy",
    "linear_cross_entropy",
    "make_loss",
    "materialized_cross_entropy",
]


class LossFn(Protocol):
    def __call__(
        self, hidden: Tensor, weight: Tensor, targets: Tensor, generator: torch.Generator | None = None
    ) -> Tensor: ...


def linear_cross_entropy(
    hidden: Tensor,  # (N, D)
    weight: Tensor,  # (V, D), row 0 = padding
    targets: Tensor,  # (N,) int64, 0 = padding
    *,
    chunk_size: int | None = None,
    ignore_index: int = 0,
    label_smoothing: float = 0.0,
    filter_eps: float | None = None,
    reduction: str = "mean",
) -> Tensor:
    """Exact full-catalogue cross-entropy without materialising the ``(N, V)`` logits (CCE)."""
    return chunked_cross_entropy(
        hidden,
        weight,
        targets,
        chunk_size=chunk_size,
        ignore_index=ignore_index,
        label_smoothing=label_smoothing,
        filter_eps=filter_eps,
        reduction=reduction,
    )


def _ce(cfg: LossConfig, item_counts: np.ndarray | None) -> Callable[..., Tensor]:
    def loss(hidden: Tensor, weight: Tensor, targets: Tensor, generator: Generator | None = None) -> Tensor:
        return chunked_cross_entropy(
            hidden,
            weight,
            targets,
            chunk_size=cfg.chunk_size,
            label_smoothing=cfg.label_smoothing,
            filter_eps=cfg.filter_eps,
        )

    return loss


def _ce_materialized(cfg: LossConfig, item_counts: np.ndarray | None) -> Callable[..., Tensor]:
    def loss(hidden: Tensor, weight: Tensor, targets: Tensor, generator: Generator | None = None) -> Tensor:
        return materialized_cross_entropy(hidden, weight, targets, label_smoothing=cfg.label_smoothing)

    return loss


@dataclass(frozen=True)
class LossSpec:
    build: Callable[[LossConfig, np.ndarray | None], Callable[..., Tensor]]  # config -> bound loss
    doc: str  # one line for docs and error messages


LOSSES: dict[str, LossSpec] = {
    "ce": LossSpec(_ce, "exact full-catalogue CE, chunked (CCE): fp32 LSE only, logits recomputed"),
    "ce_materialized": LossSpec(_ce_materialized, "exact CE on materialised (N, V) logits (reference)"),
}


def make_loss(config: LossConfig, item_counts: np.ndarray | None = None) -> LossFn:
    """Bind a :class:`LossConfig` (and the ``(V,)`` training item counts, for popularity sampling)."""
    if config.name not in LOSSES:
        allowed = ", ".join(LOSSES)
        raise ConfigError(f"config key 'loss.name': unknown loss {config.name!r} (allowed: {allowed})")
    return LOSSES[config.name].build(config, item_counts)
