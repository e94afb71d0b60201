"""Exact full-catalogue cross-entropy: a materialised reference and a chunked, memory-efficient "CCE".

Both compute, for every non-padding row ``i`` with target ``t_i``,

    loss_i = (1 - eps) * (lse_i - z_{i,t_i}) + eps * (lse_i - mean_j z_{i,j}),   z = hidden @ weight[1:].T

i.e. ``F.cross_entropy`` with ``label_smoothing=eps`` over the real items ``1..V-1``.

Deviation from a plain ``F.cross_entropy(hidden @ weight.T, targets)``: **column 0 (the padding item) is not
part of the softmax** — it can never be a target, so scoring it only leaks gradient into the padding row of
a tied embedding. Every loss in :mod:`seqrec.losses` follows this convention (samplers never draw item 0
either).

:class:`ChunkedLinearCE` follows Cut Cross-Entropy (Wijmans et al. 2024, "Cut Your Losses in Large-
Vocabulary Language Models") as adopted for recommenders by CCE/CCE⁻ (Mezentsev et al. 2025, "Memory-
efficient training of sequential recommenders"): the
forward pass streams over catalogue chunks keeping an online log-sum-exp in fp32 and stores only the
``(M,)`` LSE; the backward pass recomputes each chunk's logits, forms ``softmax - onehot`` in fp32 and
accumulates both gradients. Label smoothing needs nothing extra: ``sum_j z_ij = hidden_i . sum_j w_j``.
Gradient filtering (``filter_eps``) drops entries with ``|softmax - onehot| < filter_eps`` and skips
catalogue columns whose entries are all dropped (the PyTorch analogue of CCE's block skipping). It is an
approximation of the gradient only; the loss value is exact.

On one CPU thread and for catalogues up to ``TORCH_LCE_MAX_ITEMS`` items :func:`chunked_cross_entropy`
(``method="auto"``) calls PyTorch's own chunked ``F.linear_cross_entropy`` instead (``LinearCrossEntropyOptions``):
it chunks over rows and forms the gradient during the forward pass, one logit matmul and one ``exp`` fewer than
CCE's recomputation. Measured (fp32, D = 64, forward + backward, CCE vs PyTorch): one thread, the other core busy,
3,700 rows: 84 vs 49 ms at 1,683 items (ML-100K), 270 vs 144 ms at 3,417 (ML-1M), 802 vs 599 ms at 10,000, on
par at 20,000; one thread, idle: 66 vs 54 (2,560 rows, 1,683 items) and 183 vs 152 ms (3,417); but on two threads
48 vs 49 and 98 vs 137 ms, so CCE keeps multi-threaded CPU runs, CUDA (not measured), the large catalogues,
reductions ``"none"``, label smoothing (PyTorch's chunked path has none), gradient filtering, explicit
``chunk_size`` and autocast, and stays the reference fast path.

This is plain PyTorch (CPU and CUDA); :mod:`seqrec.losses.kernels` holds the optional Triton kernels.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

Reduction = str  # "mean" | "sum" | "none"

# Elements of one (rows x chunk) logit block; 2**20 fp32 = 4 MiB. On CPU (N=8192, D=64, V=1e5) chunks of
# 128..512 columns ran within 5% of each other, so the smaller block wins on memory; GPUs like bigger blocks.
_CPU_BLOCK_ELEMS = 2**20
_GPU_BLOCK_ELEMS = 2**26
# Up to this many real items, "auto" uses PyTorch's row-chunked linear_cross_entropy (see the module docstring).
TORCH_LCE_MAX_ITEMS = 16384
_CPU_LCE_BLOCK_ELEMS = 2**21  # rows per chunk = this / items (1,227 rows at ML-1M's 3,416 items): 2**20..2**22 ran
# within 7% of each other at 3,417 and 20,000 items on one thread


def auto_chunk_size(num_rows: int, num_items: int, device: torch.device) -> int:
    """Catalogue columns per chunk so that one ``(num_rows, chunk)`` fp32 block stays near a budget."""
    budget = _GPU_BLOCK_ELEMS if device.type == "cuda" else _CPU_BLOCK_ELEMS
    chunk = budget // max(num_rows, 1)
    chunk = max(128, (chunk // 128) * 128)
    return int(min(chunk, max(num_items, 1)))


def compute_dtype(device: torch.device, *tensors: Tensor) -> torch.dtype:
    """The matmul dtype autocast would use here (bf16/fp16 under autocast, else the inputs' common dtype)."""
    if torch.is_autocast_enabled(device.type):
        return torch.get_autocast_dtype(device.type)
    return torch.result_type(*tensors) if len(tensors) > 1 else tensors[0].dtype


def reduce_rows(row_loss: Tensor, n_valid: int, reduction: Reduction) -> Tensor:
    """Reduce per-valid-row losses; ``mean`` of an empty batch is 0 (not NaN)."""
    if reduction == "sum":
        return row_loss.sum()
    if reduction == "mean":
        return row_loss.sum() / max(n_valid, 1)
    raise ValueError(f"reduction must be 'mean', 'sum' or 'none', got {reduction!r}")


def check_inputs(hidden: Tensor, weight: Tensor, targets: Tensor) -> None:
    if hidden.dim() != 2 or weight.dim() != 2 or targets.dim() != 1:
        raise ValueError(
            f"expected hidden (N, D), weight (V, D), targets (N,), got {tuple(hidden.shape)}, "
            f"{tuple(weight.shape)}, {tuple(targets.shape)}"
        )
    if hidden.shape[1] != weight.shape[1] or hidden.shape[0] != targets.shape[0]:
        raise ValueError(
            f"shape mismatch: hidden {tuple(hidden.shape)}, weight {tuple(weight.shape)}, "
            f"targets {tuple(targets.shape)}"
        )
    if targets.dtype not in (torch.int64, torch.int32):
        raise ValueError(f"targets must be int64, got {targets.dtype}")


# ----------------------------------------------------------------------------------------------------------
# Reference


def materialized_cross_entropy(
    hidden: Tensor,  # (N, D)
    weight: Tensor,  # (V, D), row 0 = padding
    targets: Tensor,  # (N,) int64, 0 = padding
    *,
    ignore_index: int = 0,
    label_smoothing: float = 0.0,
    reduction: Reduction = "mean",
) -> Tensor:
    """Plain reference: full ``(N, V-1)`` logits + ``F.cross_entropy``. Autograd does the backward."""
    check_inputs(hidden, weight, targets)
    valid = targets != ignore_index  # (N,)
    logits = hidden @ weight[1:].T  # (N, V-1)
    shifted = torch.where(valid, targets - 1, torch.full_like(targets, -100))
    kw = dict(ignore_index=-100, label_smoothing=label_smoothing)
    if reduction == "none":
        return F.cross_entropy(logits, shifted, reduction="none", **kw)
    total = F.cross_entropy(logits, shifted, reduction="sum", **kw)
    return reduce_rows(total.reshape(1), int(valid.sum()), reduction)


# ----------------------------------------------------------------------------------------------------------
# Chunked (CCE)


class ChunkedLinearCE(torch.autograd.Function):
    """Per-row CE over catalogue chunks; saves the fp32 LSE only. Inputs are compacted (no padding rows).

    forward(h (M, D), w (V', D) = weight[1:], t (M,) in [0, V'), eps, chunk, filter_eps, dtype) -> (M,) fp32
    """

    @staticmethod
    def forward(  # type: ignore[override]
        ctx,
        h: Tensor,
        w: Tensor,
        t: Tensor,
        label_smoothing: float,
        chunk: int,
        filter_eps: float | None,
        dtype: torch.dtype,
    ) -> Tensor:
        hc, wc = h.to(dtype), w.to(dtype)
        M, V = h.shape[0], w.shape[0]
        m = torch.full((M,), float("-inf"), device=h.device, dtype=torch.float32)  # running max (M,)
        s = torch.zeros(M, device=h.device, dtype=torch.float32)  # running sum of exp (M,)
        for c0 in range(0, V, chunk):
            logits = (hc @ wc[c0 : c0 + chunk].T).float()  # (M, C) fp32
            m_new = torch.maximum(m, logits.amax(dim=1))
            s = s * torch.exp(m - m_new) + logits.sub_(m_new[:, None]).exp_().sum(dim=1)
            m = m_new
        lse = m + torch.log(s)  # (M,)
        z_t = (hc * wc[t]).sum(dim=1, dtype=torch.float32)  # (M,) target logits
        loss = lse - z_t
        w_sum = None
        if label_smoothing > 0:
            w_sum = wc.sum(dim=0, dtype=torch.float32)  # (D,)
            z_mean = (hc.float() @ w_sum) / V  # (M,)
            loss = lse - (1 - label_smoothing) * z_t - label_smoothing * z_mean
        ctx.save_for_backward(h, w, t, lse)
        ctx.cfg = (label_smoothing, chunk, filter_eps, dtype)
        return loss

    @staticmethod
    def backward(ctx, grad_loss: Tensor):  # type: ignore[override]
        h, w, t, lse = ctx.saved_tensors
        label_smoothing, chunk, filter_eps, dtype = ctx.cfg
        need_h, need_w = ctx.needs_input_grad[0], ctx.needs_input_grad[1]
        hc, wc = h.to(dtype), w.to(dtype)
        M, V = h.shape[0], w.shape[0]
        g = grad_loss.float()  # (M,)
        grad_h = torch.zeros(M, h.shape[1], device=h.device, dtype=torch.float32) if need_h else None
        grad_w = torch.zeros(V, w.shape[1], device=w.device, dtype=torch.float32) if need_w else None
        rows = torch.arange(M, device=h.device)
        for c0 in range(0, V, chunk):
            w_blk = wc[c0 : c0 + chunk]  # (C, D)
            C = w_blk.shape[0]
            coef = (hc @ w_blk.T).float().sub_(lse[:, None]).exp_()  # (M, C) softmax
            hit = (t >= c0) & (t < c0 + C)  # rows whose target is in this chunk
            coef[rows[hit], t[hit] - c0] -= 1 - label_smoothing
            if label_smoothing > 0:
                coef.sub_(label_smoothing / V)
            cols = None
            if filter_eps is not None and filter_eps > 0:
                coef.masked_fill_(coef.abs() < filter_eps, 0.0)
                keep = (coef != 0).any(dim=0).nonzero().squeeze(1)  # (C',)
                if keep.numel() == 0:
                    continue
                if keep.numel() < C // 2:  # sparse enough: only touch surviving columns
                    cols = keep
            coef.mul_(g[:, None])
            if cols is not None:
                coef_d = coef[:, cols].to(dtype)  # (M, C')
                w_d = w_blk[cols]
                if need_h:
                    grad_h += (coef_d @ w_d).float()
                if need_w:
                    grad_w.index_add_(0, cols + c0, (coef_d.T @ hc).float())
            else:
                coef_d = coef.to(dtype)
                if need_h:
                    grad_h += (coef_d @ w_blk).float()
                if need_w:
                    grad_w[c0 : c0 + C] = (coef_d.T @ hc).float()
        if need_h:
            grad_h = grad_h.to(h.dtype)
        if need_w:
            grad_w = grad_w.to(w.dtype)
        return grad_h, grad_w, None, None, None, None, None


def chunked_cross_entropy(
    hidden: Tensor,  # (N, D)
    weight: Tensor,  # (V, D), row 0 = padding
    targets: Tensor,  # (N,) int64, 0 = padding
    *,
    chunk_size: int | None = None,
    ignore_index: int = 0,
    label_smoothing: float = 0.0,
    filter_eps: float | None = None,
    reduction: Reduction = "mean",
    method: str = "auto",
) -> Tensor:
    """Exact CE without materialising logits; padding rows are compacted out before any matmul.

    ``method``: ``"columns"`` (CCE, :class:`ChunkedLinearCE`), ``"rows"`` (PyTorch's chunked
    ``linear_cross_entropy``; scalar reductions, no filtering, no autocast) or ``"auto"`` (rows where they are
    faster and apply, see the module docstring).
    """
    if method not in ("auto", "rows", "columns"):
        raise ValueError(f"method must be 'auto', 'rows' or 'columns', got {method!r}")
    check_inputs(hidden, weight, targets)
    valid = targets != ignore_index  # (N,)
    idx = valid.nonzero().squeeze(1)  # (M,)
    n_valid = int(idx.numel())
    all_valid = n_valid == targets.shape[0]
    h = hidden if all_valid else hidden.index_select(0, idx)  # (M, D)
    t = (targets if all_valid else targets.index_select(0, idx)) - 1  # (M,) in [0, V-1)
    w = weight[1:]  # (V-1, D) view
    if n_valid == 0:
        row = hidden.sum() * 0 + weight.sum() * 0
        row = row.to(torch.promote_types(row.dtype, torch.float32))  # keeps both inputs in the graph, zero grads
        if reduction == "none":
            return row.expand(targets.shape[0]).clone()
        return row
    rows_apply = (reduction != "none" and not filter_eps and not label_smoothing
                  and not torch.is_autocast_enabled(hidden.device.type)
                  and hasattr(torch.nn, "LinearCrossEntropyOptions"))  # recent PyTorch (2.13 has it)
    if method == "rows" and not rows_apply:
        raise ValueError(
            "method='rows' needs reduction 'mean' or 'sum', no label smoothing, no filter_eps and no autocast"
        )
    if method == "rows" or (method == "auto" and rows_apply and chunk_size is None
                            and w.shape[0] <= TORCH_LCE_MAX_ITEMS
                            and hidden.device.type == "cpu" and torch.get_num_threads() == 1):
        return _torch_linear_cross_entropy(h, w, t.long(), reduction)
    dtype = compute_dtype(hidden.device, hidden, weight)
    chunk = chunk_size or auto_chunk_size(n_valid, w.shape[0], hidden.device)
    with torch.autocast(hidden.device.type, enabled=False):
        row_loss = ChunkedLinearCE.apply(h, w, t, float(label_smoothing), int(chunk), filter_eps, dtype)
    if reduction == "none":
        if all_valid:
            return row_loss
        out = torch.zeros(targets.shape[0], device=hidden.device, dtype=row_loss.dtype)
        return out.index_put((idx,), row_loss)
    return reduce_rows(row_loss, n_valid, reduction)


def _torch_linear_cross_entropy(h: Tensor, w: Tensor, t: Tensor, reduction: Reduction) -> Tensor:
    """PyTorch's chunked fused CE on compacted rows ``h`` (M, D), ``w`` (V', D), ``t`` (M,) in [0, V')."""
    if h.device.type == "cuda":
        options = torch.nn.LinearCrossEntropyOptions()  # PyTorch's per-device picks (measured on A100)
    else:
        rows = max(64, _CPU_LCE_BLOCK_ELEMS // max(w.shape[0], 1))
        options = torch.nn.LinearCrossEntropyOptions(batch_chunk_size=rows, chunking_method=None)
    return F.linear_cross_entropy(h, w, t, reduction=reduction, options=options)
