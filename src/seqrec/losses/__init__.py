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

The trainer calls ``make_loss(cfg.loss, data.item_popularity)(hidden, weight, targets, generator)``; every
registry entry builds a :class:`Loss`. The functional API (:mod:`seqrec.losses.functional`) takes the same
settings as two option groups, :class:`NegativeOptions` (which negatives) and :class:`LossOptions` (chunking,
smoothing, filtering, reduction, ``kernel``), see :mod:`seqrec.losses.options`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Protocol

import numpy as np
from torch import Generator, Tensor

from seqrec.errors import ConfigError
from seqrec.losses.ce import chunked_cross_entropy, materialized_cross_entropy
from seqrec.losses.functional import (
    bce_loss,
    gbce_loss,
    linear_cross_entropy,
    sampled_cross_entropy,
    sce_loss,
)
from seqrec.losses.options import LossOptions, NegativeOptions
from seqrec.losses.sampling import NegativeSampler

if TYPE_CHECKING:  # annotations only: seqrec.config may import this package lazily (loss.name validation)
    from seqrec.config import LossConfig

__all__ = [
    "DEFAULT_NEGATIVES",
    "LOSSES",
    "Loss",
    "LossOptions",
    "LossSpec",
    "NegativeOptions",
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


class Loss(Protocol):
    """A bound training loss: ``(hidden (N, D), weight (V, D), targets (N,), generator) -> scalar``."""

    def __call__(
        self, hidden: Tensor, weight: Tensor, targets: Tensor, generator: Generator | None = None
    ) -> Tensor: ...


# Negatives per row when ``loss.num_negatives`` is None.
DEFAULT_NEGATIVES: dict[str, int] = {"ce_neg": 127, "cce_neg": 127, "bce": 1, "gbce": 256, "sce": 256}


class _Sampled:
    """Binds a sampled loss to its options; the sampler is built once, on first use (it needs V)."""

    def __init__(self, fn: Callable[..., Tensor], negatives: NegativeOptions, options: LossOptions, **kw) -> None:
        self.fn, self.negatives, self.options, self.kw = fn, negatives, options, kw
        self.sampler: NegativeSampler | None = None

    def __call__(self, hidden: Tensor, weight: Tensor, targets: Tensor, generator: Generator | None = None) -> Tensor:
        neg = self.negatives
        if self.sampler is None or self.sampler.num_items != weight.shape[0]:
            self.sampler = NegativeSampler(neg.sampler, weight.shape[0], neg.item_counts, neg.popularity_alpha)
        neg = replace(neg, sampler=self.sampler)
        return self.fn(hidden, weight, targets, neg, options=self.options, generator=generator, **self.kw)


def shared_default(cfg: LossConfig) -> bool:
    """``loss.shared_negatives`` with its per-loss default: per row for bce/gbce, shared for ce_neg/cce_neg."""
    if cfg.shared_negatives is not None:
        return cfg.shared_negatives
    return cfg.name not in ("bce", "gbce")


def _negatives(cfg: LossConfig, item_counts: np.ndarray | None) -> NegativeOptions:
    return NegativeOptions(
        num_negatives=cfg.num_negatives or DEFAULT_NEGATIVES[cfg.name],
        sampler=cfg.sampler,
        shared=shared_default(cfg),
        item_counts=item_counts,
        popularity_alpha=cfg.popularity_alpha,
        logq=cfg.logq,  # the binary losses never correct
    )


def _options(cfg: LossConfig, kernel: str = "auto") -> LossOptions:
    """``filter_eps`` and ``kernel`` only act on the fused softmax losses (the binary ones ignore them)."""
    return LossOptions(
        chunk_size=cfg.chunk_size, label_smoothing=cfg.label_smoothing, filter_eps=cfg.filter_eps, kernel=kernel
    )


def _ce(cfg: LossConfig, item_counts: np.ndarray | None) -> Loss:
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


def _ce_materialized(cfg: LossConfig, item_counts: np.ndarray | None) -> Loss:
    def loss(hidden: Tensor, weight: Tensor, targets: Tensor, generator: Generator | None = None) -> Tensor:
        return materialized_cross_entropy(hidden, weight, targets, label_smoothing=cfg.label_smoothing)

    return loss


def _ce_neg(fused: bool) -> Callable[[LossConfig, np.ndarray | None], Loss]:
    def build(cfg: LossConfig, item_counts: np.ndarray | None) -> Loss:
        options = _options(cfg, kernel=cfg.kernel)  # the reference (fused=False) ignores chunk/filter/kernel
        return _Sampled(sampled_cross_entropy, _negatives(cfg, item_counts), options, fused=fused)

    return build


def _bce(cfg: LossConfig, item_counts: np.ndarray | None) -> Loss:
    _no_smoothing(cfg)
    return _Sampled(bce_loss, _negatives(cfg, item_counts), _options(cfg))


def _gbce(cfg: LossConfig, item_counts: np.ndarray | None) -> Loss:
    _no_smoothing(cfg)
    return _Sampled(gbce_loss, _negatives(cfg, item_counts), _options(cfg), t=cfg.gbce_t)


def _sce(cfg: LossConfig, item_counts: np.ndarray | None) -> Loss:
    # loss.kernel is documented for cce_neg; SCE keeps the "auto" choice it always had
    options = _options(cfg)
    num_negatives = cfg.num_negatives or DEFAULT_NEGATIVES["sce"]

    def loss(hidden: Tensor, weight: Tensor, targets: Tensor, generator: Generator | None = None) -> Tensor:
        return sce_loss(
            hidden, weight, targets, num_negatives, num_buckets=cfg.sce_buckets, options=options, generator=generator
        )

    return loss


def _no_smoothing(cfg: LossConfig) -> None:
    if cfg.label_smoothing > 0:
        raise ConfigError(f"config key 'loss.label_smoothing': not defined for loss {cfg.name!r} (use 0)")


@dataclass(frozen=True)
class LossSpec:
    build: Callable[[LossConfig, np.ndarray | None], Loss]  # config (+ item counts) -> bound loss
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


def make_loss(config: LossConfig, item_counts: np.ndarray | None = None) -> Loss:
    """Bind a :class:`LossConfig` (and the ``(V,)`` training item counts, for popularity sampling)."""
    if config.name not in LOSSES:
        allowed = ", ".join(LOSSES)
        raise ConfigError(f"config key 'loss.name': unknown loss {config.name!r} (allowed: {allowed})")
    if config.sampler == "popularity" and item_counts is None and config.name in DEFAULT_NEGATIVES:
        raise ConfigError("config key 'loss.sampler': 'popularity' needs training item counts")
    return LOSSES[config.name].build(config, item_counts)
