"""Public functional API: every loss takes ``(hidden (N, D), weight (V, D), targets (N,))`` plus option groups.

``negatives`` (:class:`NegativeOptions`) says which negatives a sampled loss scores, ``options``
(:class:`LossOptions`) how the loss is computed and reduced; ``fused=False`` picks the materialised reference.
``targets == options.ignore_index`` (0) rows are padding; weight row 0 is the padding item (never
scored/sampled). All return a scalar for ``reduction="mean"|"sum"`` (mean over non-padding rows; 0 for an
all-padding batch) or ``(N,)`` for ``"none"`` (0 at padding rows). All accept inputs requiring grad and return
gradients for both ``hidden`` and ``weight``; randomness comes only from ``generator``.

    sampled_cross_entropy(h, w, t, NegativeOptions(127, sampler="popularity", item_counts=counts), generator=g)
    linear_cross_entropy(h, w, t, options=LossOptions(label_smoothing=0.1))
"""

from __future__ import annotations

import torch
from torch import Tensor

from seqrec.losses.ce import chunked_cross_entropy
from seqrec.losses.options import LossOptions, NegativeOptions
from seqrec.losses.sampled import gbce_beta, sampled_loss
from seqrec.losses.sampling import NegativeSampler
from seqrec.losses.sce import sce_negatives

__all__ = ["bce_loss", "gbce_loss", "linear_cross_entropy", "sampled_cross_entropy", "sce_loss"]


def _use_logq(logq: bool | None, sampler: str) -> bool:
    """Default: correct for the proposal when it is not uniform (for uniform it is only a constant shift)."""
    return (sampler != "uniform") if logq is None else logq


def _sampler_fn(negatives: NegativeOptions, num_items: int, logq: bool | None, generator: torch.Generator | None):
    """``(valid targets, valid hidden) -> (ids, log_q | None)`` for :func:`sampled_loss`."""
    sampler = negatives.sampler
    if isinstance(sampler, str):
        sampler = NegativeSampler(sampler, num_items, negatives.item_counts, negatives.popularity_alpha)
    use_logq = _use_logq(logq, sampler.sampler)

    def draw(t: Tensor, h: Tensor) -> tuple[Tensor, Tensor | None]:
        neg = sampler(negatives.num_negatives, t, shared=negatives.shared, generator=generator)
        return neg.ids, (neg.log_q if use_logq else None)

    return draw


def linear_cross_entropy(
    hidden: Tensor,  # (N, D)
    weight: Tensor,  # (V, D), row 0 = padding
    targets: Tensor,  # (N,) int64, 0 = padding
    negatives: NegativeOptions | None = None,
    *,
    options: LossOptions = LossOptions(),
    generator: torch.Generator | None = None,
) -> Tensor:
    """Cross-entropy of ``hidden @ weight.T`` without materialising the logits.

    ``negatives=None``: exact full-catalogue CE (chunked CCE; ``options.chunk_size``: catalogue columns).
    Otherwise sampled CE over the positive and ``negatives.num_negatives`` negatives (fused CCE⁻;
    ``chunk_size``: rows per chunk), see :func:`sampled_cross_entropy`. ``options.filter_eps`` drops gradient
    entries with ``|softmax - onehot| < filter_eps`` (gradient filtering of CCE; the loss value stays exact).
    """
    if negatives is None:
        return chunked_cross_entropy(
            hidden,
            weight,
            targets,
            chunk_size=options.chunk_size,
            ignore_index=options.ignore_index,
            label_smoothing=options.label_smoothing,
            filter_eps=options.filter_eps,
            reduction=options.reduction,
        )
    return sampled_cross_entropy(hidden, weight, targets, negatives, options=options, generator=generator)


def sampled_cross_entropy(
    hidden: Tensor,  # (N, D)
    weight: Tensor,  # (V, D)
    targets: Tensor,  # (N,)
    negatives: NegativeOptions,
    *,
    options: LossOptions = LossOptions(),
    generator: torch.Generator | None = None,
    fused: bool = True,
) -> Tensor:
    """Sampled softmax CE (CE⁻): positive vs ``negatives.num_negatives`` negatives per row (or shared).

    Sampler and logQ correction: see :class:`NegativeOptions`; accidental hits are masked. ``fused=True`` is
    CCE⁻ (bounded memory, ``options.kernel`` picks PyTorch or Triton); ``fused=False`` the materialised
    reference.
    """
    draw = _sampler_fn(negatives, weight.shape[0], negatives.logq, generator)
    return sampled_loss(hidden, weight, targets, draw, mode="softmax", fused=fused, options=options)


def bce_loss(
    hidden: Tensor,
    weight: Tensor,
    targets: Tensor,
    negatives: NegativeOptions = NegativeOptions(1),
    *,
    options: LossOptions = LossOptions(),
    generator: torch.Generator | None = None,
    fused: bool = True,
) -> Tensor:
    """SASRec's binary CE: ``softplus(-z⁺) + sum_k softplus(z_k)`` (one negative per position by default).

    No logQ correction; ``options.label_smoothing`` must be 0, ``filter_eps`` and ``kernel`` do not apply.
    """
    draw = _sampler_fn(negatives, weight.shape[0], False, generator)
    return sampled_loss(hidden, weight, targets, draw, mode="binary", beta=1.0, fused=fused, options=options)


def gbce_loss(
    hidden: Tensor,
    weight: Tensor,
    targets: Tensor,
    negatives: NegativeOptions = NegativeOptions(256),
    *,
    t: float = 0.75,
    options: LossOptions = LossOptions(),
    generator: torch.Generator | None = None,
    fused: bool = True,
) -> Tensor:
    """gBCE of gSASRec (Petrov & Macdonald 2023): ``beta * softplus(-z⁺) + sum_k softplus(z_k)``.

    ``beta = alpha (t (1 - 1/alpha) + 1/alpha)``, ``alpha = K / (V - 1)``; ``t = 0`` is BCE with K negatives.
    The calibration assumes uniform negatives (as in the paper); other samplers are allowed but uncalibrated.
    Options as for :func:`bce_loss`.
    """
    draw = _sampler_fn(negatives, weight.shape[0], False, generator)
    beta = gbce_beta(negatives.num_negatives, weight.shape[0], t)
    return sampled_loss(hidden, weight, targets, draw, mode="binary", beta=beta, fused=fused, options=options)


def sce_loss(
    hidden: Tensor,
    weight: Tensor,
    targets: Tensor,
    num_negatives: int = 256,
    *,
    num_buckets: int | None = None,
    options: LossOptions = LossOptions(),
    generator: torch.Generator | None = None,
    fused: bool = True,
) -> Tensor:
    """Scalable CE (Mezentsev et al. 2024): CE over the positive and ``num_negatives`` bucketed hard negatives
    (``num_buckets`` random projections, None: sqrt(rows)); see :mod:`seqrec.losses.sce`."""

    def draw(t: Tensor, h: Tensor) -> tuple[Tensor, None]:
        return sce_negatives(h, weight, num_negatives, num_buckets, generator), None

    return sampled_loss(hidden, weight, targets, draw, mode="softmax", fused=fused, options=options)
