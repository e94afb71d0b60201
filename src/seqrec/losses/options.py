"""Option groups of the functional losses: how negatives are drawn, and how a loss is computed and reduced.

They mirror the ``loss`` config section (see :func:`seqrec.losses.make_loss`): :class:`NegativeOptions` holds
``num_negatives``, ``sampler``, ``shared_negatives`` (here ``shared``), ``popularity_alpha`` and ``logq`` plus
the training item counts; :class:`LossOptions` holds ``chunk_size``, ``label_smoothing``, ``filter_eps`` and
``kernel`` plus ``ignore_index`` and ``reduction``. Frozen, so one instance can be a default argument and be
shared between calls; change a field with :func:`dataclasses.replace`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from torch import Tensor

from seqrec.losses.sampling import NegativeSampler

REDUCTIONS = ("mean", "sum", "none")
KERNELS = ("auto", "torch", "triton")


@dataclass(frozen=True)
class NegativeOptions:
    """Which negatives a sampled loss scores against each positive.

    ``sampler``: ``"uniform"``, ``"popularity"`` (needs ``item_counts`` (V,), p ∝ count**popularity_alpha) or
    ``"in_batch"`` (other rows' targets), or a prebuilt :class:`NegativeSampler` (then ``item_counts`` and
    ``popularity_alpha`` are unused). ``shared``: one ``(K,)`` set for the whole batch instead of ``(M, K)``
    per row. ``logq`` (softmax losses; the binary ones never correct): subtract ``log(K q)`` from negative
    logits, None = only for non-uniform samplers (for uniform it is a constant shift).
    """

    num_negatives: int  # K per positive (or in the shared set)
    sampler: NegativeSampler | str = "uniform"
    shared: bool = False
    item_counts: np.ndarray | Tensor | None = field(default=None, compare=False, repr=False)  # (V,)
    popularity_alpha: float = 0.75
    logq: bool | None = None


@dataclass(frozen=True)
class LossOptions:
    """How a loss is computed and reduced; the defaults are those of every functional loss.

    ``chunk_size``: catalogue columns per chunk (exact CE) or rows per chunk (sampled losses); None: automatic.
    ``ignore_index``: target id of padding rows. ``label_smoothing``: softmax losses only. ``filter_eps``: drop
    gradient entries with ``|softmax - onehot| < filter_eps`` (CCE gradient filtering; softmax losses, the loss
    value stays exact). ``reduction``: ``"mean"`` over non-padding rows (0 for an all-padding batch), ``"sum"``
    or ``"none"`` (``(N,)``, 0 at padding rows). ``kernel``: implementation of the fused sampled softmax
    (CCE⁻, SCE): ``"torch"`` (chunked PyTorch), ``"triton"`` (:mod:`seqrec.losses.kernels`) or ``"auto"``
    (Triton for CUDA tensors when installed); the other losses always run PyTorch.
    """

    chunk_size: int | None = None
    ignore_index: int = 0
    label_smoothing: float = 0.0
    filter_eps: float | None = None
    reduction: str = "mean"
    kernel: str = "auto"

    def __post_init__(self) -> None:
        if self.reduction not in REDUCTIONS:
            raise ValueError(f"reduction must be 'mean', 'sum' or 'none', got {self.reduction!r}")
        if self.kernel not in KERNELS:
            raise ValueError(f"kernel must be 'auto', 'torch' or 'triton', got {self.kernel!r}")
