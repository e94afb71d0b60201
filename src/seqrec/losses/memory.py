"""The loss's own working memory per training step, estimated from its settings (the loss study's "loss share").

Peak memory is measured per run (RSS on CPU, the allocator's peak on CUDA) and covers everything: the model's
weights, optimiser state and activations, the batch, the loss. This module estimates the part that belongs to
the loss, from how each implementation in :mod:`seqrec.losses` allocates, so a study can say how much of a
cell's memory its loss settings cost. ``rows`` is the number of scored positions, ``batch_size * max_len`` at
most (padding rows are compacted out first, so this is an upper bound). All figures in bytes, fp32 compute.

==================  ==========================================================================================
``ce_materialized`` the ``(M, N)`` logits, their log-softmax and its gradient: ``3 M N``
``ce``              one logit block (rows x columns, bounded by the chunk budget) with its exp and gradient
                    coefficients, plus the ``(M,)`` LSE; PyTorch's row-chunked path on one CPU thread likewise
``ce_neg``          the reference: shared negatives ``3 M (K+1)`` logits; per row also the ``(M, K, D)`` gather
                    and its gradient
``cce_neg`` etc.    the negative ids (int32; ``(K,)`` shared or ``(M, K)`` per row, with their log-q), one row
                    chunk's gather/outer product and logits, the positive logits and LSE
``sce``             the per-row bucketed ids ``(M, K)`` and the random projections, then as ``cce_neg``
==================  ==========================================================================================

Every estimate adds the gradient the loss hands back, ``(M, D)``, and the ``(V, D)`` gradient of the item
table it accumulates. They are estimates of allocations, not measurements: the allocator's caching and
fragmentation come on top.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from seqrec.losses import DEFAULT_NEGATIVES, shared_default
from seqrec.losses.ce import _CPU_BLOCK_ELEMS, _CPU_LCE_BLOCK_ELEMS, _GPU_BLOCK_ELEMS, TORCH_LCE_MAX_ITEMS
from seqrec.losses.sampled import _CPU_GATHER_ELEMS, _GPU_GATHER_ELEMS

if TYPE_CHECKING:
    from seqrec.config import LossConfig

F32 = 4
I32 = 4


def _gradients(rows: int, num_items: int, dim: int) -> float:
    return float(rows * dim * F32 + (num_items + 1) * dim * F32)  # d hidden (M, D), d item table (V, D)


def _fused_sampled(rows: int, k: int, dim: int, shared: bool, logq: bool, cuda: bool) -> float:
    """The fused sampled losses (cce_neg, bce, gbce, and sce after its bucketing): ids, one chunk, per-row state."""
    ids = (k if shared else rows * k) * I32 * (2 if logq else 1)  # int32 ids (+ fp32 log q of the same shape)
    budget = _GPU_GATHER_ELEMS if cuda else _CPU_GATHER_ELEMS  # seqrec.losses.sampled.auto_row_chunk
    chunk_rows = max(1, min(rows, budget // max(k * (1 if shared else dim), 1)))
    gather = (k * dim if shared else 2 * chunk_rows * k * dim) * F32  # shared (K, D) | gather + outer (R, K, D)
    logits = 3 * chunk_rows * k * F32  # logits, exp, gradient coefficients of one chunk
    per_row = 3 * rows * F32  # z+, LSE, d loss / d z+
    return float(ids + gather + logits + per_row)


def loss_memory_bytes(cfg: LossConfig, rows: int, num_items: int, dim: int, device_type: str = "cpu",
                      threads: int = 1) -> float:
    """Estimated peak working memory of ``cfg``'s loss for ``rows`` scored positions over ``num_items`` real
    items with hidden size ``dim`` (see the module docstring)."""
    name, m, n, d = cfg.name, max(int(rows), 1), max(int(num_items), 1), int(dim)
    cuda = device_type == "cuda"
    grads = _gradients(m, n, d)
    if name == "ce_materialized":
        return 3.0 * m * n * F32 + grads
    if name == "ce":
        torch_rows = (not cuda and threads == 1 and n <= TORCH_LCE_MAX_ITEMS and cfg.chunk_size is None
                      and not cfg.filter_eps and not cfg.label_smoothing)
        if torch_rows:  # PyTorch's row-chunked linear_cross_entropy (seqrec.losses.ce._torch_linear_cross_entropy)
            block = max(64, _CPU_LCE_BLOCK_ELEMS // n) * n
        else:  # CCE column chunks (seqrec.losses.ce.auto_chunk_size)
            budget = _GPU_BLOCK_ELEMS if cuda else _CPU_BLOCK_ELEMS
            cols = cfg.chunk_size or min(n, max(128, (budget // m) // 128 * 128))
            block = m * cols
        return 3.0 * min(block, m * n) * F32 + m * F32 + grads
    k = min(int(cfg.num_negatives or DEFAULT_NEGATIVES[name]), n)
    shared = shared_default(cfg) if name != "sce" else False
    logq = bool(cfg.logq) if cfg.logq is not None else cfg.sampler != "uniform"
    if name == "ce_neg":  # the materialised reference
        if shared:
            return 3.0 * m * (k + 1) * F32 + k * d * F32 + grads
        return 2.0 * m * k * d * F32 + 3.0 * m * (k + 1) * F32 + grads
    if name == "sce":
        buckets = cfg.sce_buckets or max(1, round(math.sqrt(m)))
        projections = (m + n) * buckets * F32
        return projections + _fused_sampled(m, k, d, shared=False, logq=False, cuda=cuda) + grads
    return _fused_sampled(m, k, d, shared, logq and name not in ("bce", "gbce"), cuda) + grads


__all__ = ["loss_memory_bytes"]
