"""Public functional API: every loss takes ``(hidden (N, D), weight (V, D), targets (N,))`` plus keywords.

``targets == ignore_index`` (0) rows are padding; weight row 0 is the padding item (never scored/sampled).
All return a scalar for ``reduction="mean"|"sum"`` (mean over non-padding rows; 0 for an all-padding batch) or
``(N,)`` for ``"none"`` (0 at padding rows). All accept inputs requiring grad and return gradients for both
``hidden`` and ``weight``; randomness comes only from ``generator``.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from seqrec.losses.ce import chunked_cross_entropy
from seqrec.losses.sampled import gbce_beta, sampled_loss
from seqrec.losses.sampling import NegativeSampler
from seqrec.losses.sce import sce_negatives

__all__ = ["bce_loss", "gbce_loss", "linear_cross_entropy", "sampled_cross_entropy", "sce_loss"]


def _use_logq(logq: bool | None, sampler: str) -> bool:
    """Default: correct for the proposal when it is not uniform (for uniform it is only a constant shift)."""
    return (sampler != "uniform") if logq is None else logq


def _sampler_fn(
    sampler: NegativeSampler | str,
    num_items: int,
    num_negatives: int,
    shared: bool,
    item_counts: np.ndarray | Tensor | None,
    popularity_alpha: float,
    logq: bool | None,
    generator: torch.Generator | None,
):
    if isinstance(sampler, str):
        sampler = NegativeSampler(sampler, num_items, item_counts, popularity_alpha)
    use_logq = _use_logq(logq, sampler.sampler)

    def draw(t: Tensor, h: Tensor) -> tuple[Tensor, Tensor | None]:
        neg = sampler(num_negatives, t, shared=shared, generator=generator)
        return neg.ids, (neg.log_q if use_logq else None)

    return draw


def linear_cross_entropy(
    hidden: Tensor,  # (N, D)
    weight: Tensor,  # (V, D), row 0 = padding
    targets: Tensor,  # (N,) int64, 0 = padding
    *,
    num_negatives: int | None = None,
    sampler: NegativeSampler | str = "uniform",
    chunk_size: int | None = None,
    ignore_index: int = 0,
    label_smoothing: float = 0.0,
    filter_eps: float | None = None,
    reduction: str = "mean",
    shared_negatives: bool = False,
    item_counts: np.ndarray | Tensor | None = None,
    popularity_alpha: float = 0.75,
    logq: bool | None = None,
    generator: torch.Generator | None = None,
    backend: str = "auto",
) -> Tensor:
    """Cross-entropy of ``hidden @ weight.T`` without materialising the logits.

    ``num_negatives=None``: exact full-catalogue CE (chunked CCE; ``chunk_size``: catalogue columns).
    An int: sampled CE over the positive and that many negatives (fused CCE⁻; ``chunk_size``: rows per chunk),
    see :func:`sampled_cross_entropy` for the sampling keywords. ``filter_eps`` drops gradient entries with
    ``|softmax - onehot| < filter_eps`` (gradient filtering of CCE; the loss value stays exact).
    """
    if num_negatives is None:
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
    return sampled_cross_entropy(
        hidden,
        weight,
        targets,
        num_negatives=num_negatives,
        sampler=sampler,
        shared_negatives=shared_negatives,
        item_counts=item_counts,
        popularity_alpha=popularity_alpha,
        logq=logq,
        generator=generator,
        fused=True,
        chunk_size=chunk_size,
        ignore_index=ignore_index,
        label_smoothing=label_smoothing,
        filter_eps=filter_eps,
        reduction=reduction,
        backend=backend,
    )


def sampled_cross_entropy(
    hidden: Tensor,  # (N, D)
    weight: Tensor,  # (V, D)
    targets: Tensor,  # (N,)
    *,
    num_negatives: int,
    sampler: NegativeSampler | str = "uniform",
    shared_negatives: bool = False,
    item_counts: np.ndarray | Tensor | None = None,
    popularity_alpha: float = 0.75,
    logq: bool | None = None,
    generator: torch.Generator | None = None,
    fused: bool = True,
    chunk_size: int | None = None,
    ignore_index: int = 0,
    label_smoothing: float = 0.0,
    filter_eps: float | None = None,
    reduction: str = "mean",
    backend: str = "auto",
) -> Tensor:
    """Sampled softmax CE (CE⁻): positive vs ``num_negatives`` negatives per row (or shared by the batch).

    ``sampler``: ``"uniform"``, ``"popularity"`` (needs ``item_counts`` (V,), p ∝ count**popularity_alpha) or
    ``"in_batch"`` (other rows' targets), or a prebuilt :class:`NegativeSampler`. ``logq``: subtract
    ``log(K q)`` from negative logits (None: only for non-uniform samplers). Accidental hits are masked.
    ``fused=True`` is CCE⁻ (bounded memory); ``fused=False`` the materialised reference. ``backend`` of the
    fused form: ``"torch"`` (chunked PyTorch), ``"triton"`` (kernels in :mod:`seqrec.losses.kernels`) or
    ``"auto"`` (Triton for CUDA tensors when installed).
    """
    draw = _sampler_fn(
        sampler,
        weight.shape[0],
        num_negatives,
        shared_negatives,
        item_counts,
        popularity_alpha,
        logq,
        generator,
    )
    return sampled_loss(
        hidden,
        weight,
        targets,
        draw,
        mode="softmax",
        fused=fused,
        label_smoothing=label_smoothing,
        filter_eps=filter_eps,
        chunk_size=chunk_size,
        ignore_index=ignore_index,
        reduction=reduction,
        backend=backend,
    )


def bce_loss(
    hidden: Tensor,
    weight: Tensor,
    targets: Tensor,
    *,
    num_negatives: int = 1,
    sampler: NegativeSampler | str = "uniform",
    shared_negatives: bool = False,
    item_counts: np.ndarray | Tensor | None = None,
    popularity_alpha: float = 0.75,
    generator: torch.Generator | None = None,
    fused: bool = True,
    chunk_size: int | None = None,
    ignore_index: int = 0,
    reduction: str = "mean",
) -> Tensor:
    """SASRec's binary CE: ``softplus(-z⁺) + sum_k softplus(z_k)`` (one negative per position by default)."""
    draw = _sampler_fn(
        sampler,
        weight.shape[0],
        num_negatives,
        shared_negatives,
        item_counts,
        popularity_alpha,
        False,
        generator,
    )
    return sampled_loss(
        hidden,
        weight,
        targets,
        draw,
        mode="binary",
        beta=1.0,
        fused=fused,
        chunk_size=chunk_size,
        ignore_index=ignore_index,
        reduction=reduction,
    )


def gbce_loss(
    hidden: Tensor,
    weight: Tensor,
    targets: Tensor,
    *,
    num_negatives: int = 256,
    t: float = 0.75,
    sampler: NegativeSampler | str = "uniform",
    shared_negatives: bool = False,
    item_counts: np.ndarray | Tensor | None = None,
    popularity_alpha: float = 0.75,
    generator: torch.Generator | None = None,
    fused: bool = True,
    chunk_size: int | None = None,
    ignore_index: int = 0,
    reduction: str = "mean",
) -> Tensor:
    """gBCE of gSASRec (Petrov & Macdonald 2023): ``beta * softplus(-z⁺) + sum_k softplus(z_k)``.

    ``beta = alpha (t (1 - 1/alpha) + 1/alpha)``, ``alpha = K / (V - 1)``; ``t = 0`` is BCE with K negatives.
    The calibration assumes uniform negatives (as in the paper); other samplers are allowed but uncalibrated.
    """
    draw = _sampler_fn(
        sampler,
        weight.shape[0],
        num_negatives,
        shared_negatives,
        item_counts,
        popularity_alpha,
        False,
        generator,
    )
    return sampled_loss(
        hidden,
        weight,
        targets,
        draw,
        mode="binary",
        beta=gbce_beta(num_negatives, weight.shape[0], t),
        fused=fused,
        chunk_size=chunk_size,
        ignore_index=ignore_index,
        reduction=reduction,
    )


def sce_loss(
    hidden: Tensor,
    weight: Tensor,
    targets: Tensor,
    *,
    num_negatives: int = 256,
    num_buckets: int | None = None,
    generator: torch.Generator | None = None,
    fused: bool = True,
    chunk_size: int | None = None,
    ignore_index: int = 0,
    label_smoothing: float = 0.0,
    filter_eps: float | None = None,
    reduction: str = "mean",
) -> Tensor:
    """Scalable CE (Mezentsev et al. 2024): CE over the positive and ``num_negatives`` bucketed hard negatives
    (``num_buckets`` random projections, None: sqrt(rows)); see :mod:`seqrec.losses.sce`."""

    def draw(t: Tensor, h: Tensor) -> tuple[Tensor, None]:
        return sce_negatives(h, weight, num_negatives, num_buckets, generator), None

    return sampled_loss(
        hidden,
        weight,
        targets,
        draw,
        mode="softmax",
        fused=fused,
        label_smoothing=label_smoothing,
        filter_eps=filter_eps,
        chunk_size=chunk_size,
        ignore_index=ignore_index,
        reduction=reduction,
    )
