"""Training losses over a large item catalogue: ``(hidden (N, D), weight (V, D), targets (N,)) -> scalar``.

Conventions shared by every loss:

* ``targets == 0`` marks padding rows; they are ignored and ``mean`` averages over the remaining rows (an
  all-padding batch gives loss 0 with zero gradients, never NaN).
* ``weight`` row 0 is the padding item: it is never scored, never a target and never sampled as a negative.
* Randomness (negative sampling, SCE projections) comes only from the ``generator`` argument.

Registry (:data:`LOSSES`, the ``loss.name`` config key):

==================  ==========================================================================================
``ce``              exact full-catalogue CE, chunked (CCE): fp32 LSE only, logits recomputed in backward
``ce_materialized`` exact CE on materialised ``(N, V)`` logits + ``F.cross_entropy`` (reference)
``ce_neg``          sampled CE (CE⁻), materialised: gathers ``(N, K, D)`` negatives, autograd (reference)
``cce_neg``         sampled CE, fused (CCE⁻): row chunks, int32 indices, fp32 LSE; Triton kernel on CUDA
``bce``             SASRec binary CE, ``num_negatives`` (default 1) negatives per position, fused
``gbce``            gSASRec generalised BCE (``gbce_t``), default 256 negatives, fused
``sce``             Scalable CE: bucketed hard negatives via random projections (``sce_buckets``), fused
==================  ==========================================================================================

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
from seqrec.losses.functional import (
    bce_loss,
    gbce_loss,
    linear_cross_entropy,
    sampled_cross_entropy,
    sce_loss,
)
from seqrec.losses.sampling import NegativeSampler

__all__ = [
    "DEFAULT_NEGATIVES",
    "LOSSES",
    "LossFn",
    "LossSpec",
    "NegativeSampler",
    "bce_loss",
    "chunked_cross_entropy",
    "gbce_loss",
    "linear_cross_entropy",
    "make_loss",
    "materialized_cross_entropy",
    "sampled_cross_entropy",
    "sce_loss",
]


class LossFn(Protocol):
    def __call__(
        self, hidden: Tensor, weight: Tensor, targets: Tensor, generator: torch.Generator | None = None
    ) -> Tensor: ...


# Negatives per row when ``loss.num_negatives`` is None.
DEFAULT_NEGATIVES: dict[str, int] = {"ce_neg": 127, "cce_neg": 127, "bce": 1, "gbce": 256, "sce": 256}

Bound = Callable[[Tensor, Tensor, Tensor, Generator | None], Tensor]


class _Sampled:
    """Binds a config to a sampled loss; the sampler is built once, on first use (needs V)."""

    def __init__(self, fn: Callable[..., Tensor], cfg: LossConfig, item_counts: np.ndarray | None, **kw) -> None:
        self.fn, self.cfg, self.item_counts, self.kw = fn, cfg, item_counts, kw
        self.sampler: NegativeSampler | None = None

    def __call__(self, hidden: Tensor, weight: Tensor, targets: Tensor, generator: Generator | None = None):
        cfg = self.cfg
        if self.sampler is None or self.sampler.num_items != weight.shape[0]:
            self.sampler = NegativeSampler(cfg.sampler, weight.shape[0], self.item_counts, cfg.popularity_alpha)
        return self.fn(
            hidden,
            weight,
            targets,
            num_negatives=cfg.num_negatives or DEFAULT_NEGATIVES[cfg.name],
            sampler=self.sampler,
            shared_negatives=shared_default(cfg),
            generator=generator,
            chunk_size=cfg.chunk_size,
            **self.kw,
        )


def shared_default(cfg: LossConfig) -> bool:
    """``loss.shared_negatives`` with its per-loss default: per row for bce/gbce, shared for ce_neg/cce_neg."""
    if cfg.shared_negatives is not None:
        return cfg.shared_negatives
    return cfg.name not in ("bce", "gbce")


def _ce(cfg: LossConfig, item_counts: np.ndarray | None) -> Bound:
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


def _ce_materialized(cfg: LossConfig, item_counts: np.ndarray | None) -> Bound:
    def loss(hidden: Tensor, weight: Tensor, targets: Tensor, generator: Generator | None = None) -> Tensor:
        return materialized_cross_entropy(hidden, weight, targets, label_smoothing=cfg.label_smoothing)

    return loss


def _ce_neg(fused: bool) -> Callable[[LossConfig, np.ndarray | None], Bound]:
    def build(cfg: LossConfig, item_counts: np.ndarray | None) -> Bound:
        extra = {"filter_eps": cfg.filter_eps} if fused else {}
        return _Sampled(
            sampled_cross_entropy,
            cfg,
            item_counts,
            fused=fused,
            logq=cfg.logq,
            label_smoothing=cfg.label_smoothing,
            backend=cfg.kernel,
            **extra,
        )

    return build


def _bce(cfg: LossConfig, item_counts: np.ndarray | None) -> Bound:
    _no_smoothing(cfg)
    return _Sampled(bce_loss, cfg, item_counts)


def _gbce(cfg: LossConfig, item_counts: np.ndarray | None) -> Bound:
    _no_smoothing(cfg)
    return _Sampled(gbce_loss, cfg, item_counts, t=cfg.gbce_t)


def _sce(cfg: LossConfig, item_counts: np.ndarray | None) -> Bound:
    def loss(hidden: Tensor, weight: Tensor, targets: Tensor, generator: Generator | None = None) -> Tensor:
        return sce_loss(
            hidden,
            weight,
            targets,
            num_negatives=cfg.num_negatives or DEFAULT_NEGATIVES["sce"],
            num_buckets=cfg.sce_buckets,
            generator=generator,
            chunk_size=cfg.chunk_size,
            label_smoothing=cfg.label_smoothing,
            filter_eps=cfg.filter_eps,
        )

    return loss


def _no_smoothing(cfg: LossConfig) -> None:
    if cfg.label_smoothing > 0:
        raise ConfigError(f"config key 'loss.label_smoothing': not defined for loss {cfg.name!r} (use 0)")


@dataclass(frozen=True)
class LossSpec:
    build: Callable[[LossConfig, np.ndarray | None], Bound]  # config (+ item counts) -> bound loss
    doc: str  # one line for docs and error messages


LOSSES: dict[str, LossSpec] = {
    "ce": LossSpec(_ce, "exact full-catalogue CE, chunked (CCE): fp32 LSE only, logits recomputed"),
    "ce_materialized": LossSpec(_ce_materialized, "exact CE on materialised (N, V) logits (reference)"),
    "ce_neg": LossSpec(_ce_neg(fused=False), "sampled CE (CE-), materialised (N, K, D) gather (reference)"),
    "cce_neg": LossSpec(_ce_neg(fused=True), "sampled CE, fused (CCE-): chunked rows, int32 indices"),
    "bce": LossSpec(_bce, "SASRec binary CE with sampled negatives (default 1 per position)"),
    "gbce": LossSpec(_gbce, "gSASRec generalised BCE (gbce_t), default 256 negatives"),
    "sce": LossSpec(_sce, "Scalable CE: bucketed hard negatives via random projections"),
}


def make_loss(config: LossConfig, item_counts: np.ndarray | None = None) -> LossFn:
    """Bind a :class:`LossConfig` (and the ``(V,)`` training item counts, for popularity sampling)."""
    if config.name not in LOSSES:
        allowed = ", ".join(LOSSES)
        raise ConfigError(f"config key 'loss.name': unknown loss {config.name!r} (allowed: {allowed})")
    if config.sampler == "popularity" and item_counts is None and config.name in DEFAULT_NEGATIVES:
        raise ConfigError("config key 'loss.sampler': 'popularity' needs training item counts")
    return LOSSES[config.name].build(config, item_counts)
