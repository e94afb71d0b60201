"""Triton forward/backward for the negatives part of CCE⁻ (sampled softmax CE without gathered tensors).

Follows Algorithms 1-2 of Mezentsev et al. 2025 ("Faster and Memory-Efficient Training of Sequential
Recommendation Models for Large Catalogs"): a program owns
``BLOCK_M`` rows, streams their ``K`` negative ids in ``BLOCK_K`` tiles, loads the referenced item embeddings
straight from the weight matrix (nothing is gathered in global memory), and keeps an online log-sum-exp in
fp32 that starts from the positive logit. The backward recomputes the tile logits, forms
``softmax - eps/n`` (label smoothing), optionally filters ``|coef| < filter_eps`` (gradient filtering, as in
CCE), accumulates ``grad_hidden`` in registers and scatters ``grad_weight`` with atomic adds.

The positive term (``z⁺`` and its gradient) is a cheap ``(M, D)`` operation done in PyTorch by the caller
(:class:`TritonSampledCE`). Shared negatives are passed as a ``(M, K)`` view with row stride 0.

Only the softmax (CE⁻) mode is implemented; BCE/gBCE/SCE use the PyTorch fused path. Tested on CPU with
``TRITON_INTERPRET=1`` (tests/losses/test_triton.py); GPU performance was not measured in this work.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl
from torch import Tensor


@triton.jit
def _cce_neg_fwd(
    h_ptr, w_ptr, neg_ptr, logq_ptr, t_ptr, zpos_ptr, lse_ptr, zsum_ptr, cnt_ptr,
    M, K, D,
    stride_hm, stride_wv, stride_nm, stride_nk, stride_qm, stride_qk,
    HAS_LOGQ: tl.constexpr, SMOOTH: tl.constexpr,
    BLOCK_M: tl.constexpr, BLOCK_K: tl.constexpr, BLOCK_D: tl.constexpr,
):  # fmt: skip
    pid = tl.program_id(0)
    rows = pid * BLOCK_M + tl.arange(0, BLOCK_M)  # (BM,)
    rmask = rows < M
    dims = tl.arange(0, BLOCK_D)
    dmask = dims < D
    h = tl.load(h_ptr + rows[:, None] * stride_hm + dims[None, :], mask=rmask[:, None] & dmask[None, :], other=0.0)
    h = h.to(tl.float32)  # (BM, BD)
    tgt = tl.load(t_ptr + rows, mask=rmask, other=0)
    zpos = tl.load(zpos_ptr + rows, mask=rmask, other=0.0)
    m_i = zpos  # running max, starts at the positive logit
    s_i = tl.full((BLOCK_M,), 1.0, tl.float32)  # running sum of exp(z - m_i)
    zsum = zpos
    cnt = tl.full((BLOCK_M,), 1.0, tl.float32)
    for k0 in range(0, K, BLOCK_K):
        ks = k0 + tl.arange(0, BLOCK_K)
        kmask = ks < K
        mk = rmask[:, None] & kmask[None, :]
        ids = tl.load(neg_ptr + rows[:, None] * stride_nm + ks[None, :] * stride_nk, mask=mk, other=0)
        w = tl.load(
            w_ptr + ids[:, :, None].to(tl.int64) * stride_wv + dims[None, None, :],
            mask=mk[:, :, None] & dmask[None, None, :],
            other=0.0,
        ).to(tl.float32)  # (BM, BK, BD)
        z = tl.sum(w * h[:, None, :], axis=2)  # (BM, BK)
        if HAS_LOGQ:
            z -= tl.load(logq_ptr + rows[:, None] * stride_qm + ks[None, :] * stride_qk, mask=mk, other=0.0)
        live = mk & (ids != tgt[:, None])  # accidental hits and padding lanes are dead
        z = tl.where(live, z, float("-inf"))
        m_new = tl.maximum(m_i, tl.max(z, axis=1))
        s_i = s_i * tl.exp(m_i - m_new) + tl.sum(tl.exp(z - m_new[:, None]), axis=1)
        m_i = m_new
        if SMOOTH:
            zsum += tl.sum(tl.where(live, z, 0.0), axis=1)
            cnt += tl.sum(live.to(tl.float32), axis=1)
    tl.store(lse_ptr + rows, m_i + tl.log(s_i), mask=rmask)
    if SMOOTH:
        tl.store(zsum_ptr + rows, zsum, mask=rmask)
        tl.store(cnt_ptr + rows, cnt, mask=rmask)


@triton.jit
def _cce_neg_bwd(
    h_ptr, w_ptr, neg_ptr, logq_ptr, t_ptr, lse_ptr, cnt_ptr, g_ptr, gh_ptr, gw_ptr,
    M, K, D, smoothing, filter_eps,
    stride_hm, stride_wv, stride_nm, stride_nk, stride_qm, stride_qk, stride_gwv,
    HAS_LOGQ: tl.constexpr, SMOOTH: tl.constexpr, FILTER: tl.constexpr, NEED_W: tl.constexpr,
    BLOCK_M: tl.constexpr, BLOCK_K: tl.constexpr, BLOCK_D: tl.constexpr,
):  # fmt: skip
    pid = tl.program_id(0)
    rows = pid * BLOCK_M + tl.arange(0, BLOCK_M)
    rmask = rows < M
    dims = tl.arange(0, BLOCK_D)
    dmask = dims < D
    h = tl.load(h_ptr + rows[:, None] * stride_hm + dims[None, :], mask=rmask[:, None] & dmask[None, :], other=0.0)
    h = h.to(tl.float32)
    tgt = tl.load(t_ptr + rows, mask=rmask, other=0)
    lse = tl.load(lse_ptr + rows, mask=rmask, other=0.0)
    g = tl.load(g_ptr + rows, mask=rmask, other=0.0)
    if SMOOTH:
        s = smoothing / tl.load(cnt_ptr + rows, mask=rmask, other=1.0)
    gh = tl.zeros((BLOCK_M, BLOCK_D), tl.float32)
    for k0 in range(0, K, BLOCK_K):
        ks = k0 + tl.arange(0, BLOCK_K)
        kmask = ks < K
        mk = rmask[:, None] & kmask[None, :]
        ids = tl.load(neg_ptr + rows[:, None] * stride_nm + ks[None, :] * stride_nk, mask=mk, other=0)
        wmask = mk[:, :, None] & dmask[None, None, :]
        w = tl.load(w_ptr + ids[:, :, None].to(tl.int64) * stride_wv + dims[None, None, :], mask=wmask, other=0.0)
        w = w.to(tl.float32)
        z = tl.sum(w * h[:, None, :], axis=2)
        if HAS_LOGQ:
            z -= tl.load(logq_ptr + rows[:, None] * stride_qm + ks[None, :] * stride_qk, mask=mk, other=0.0)
        live = mk & (ids != tgt[:, None])
        coef = tl.where(live, tl.exp(z - lse[:, None]), 0.0)
        if SMOOTH:
            coef = tl.where(live, coef - s[:, None], 0.0)
        if FILTER:
            coef = tl.where(tl.abs(coef) < filter_eps, 0.0, coef)
        coef = coef * g[:, None]  # (BM, BK)
        gh += tl.sum(coef[:, :, None] * w, axis=1)
        if NEED_W:
            upd = coef[:, :, None] * h[:, None, :]  # (BM, BK, BD)
            keep = wmask & (coef != 0.0)[:, :, None]
            tl.atomic_add(gw_ptr + ids[:, :, None].to(tl.int64) * stride_gwv + dims[None, None, :], upd, mask=keep)
    tl.store(gh_ptr + rows[:, None] * D + dims[None, :], gh, mask=rmask[:, None] & dmask[None, :])


def _blocks(device: torch.device, D: int) -> tuple[int, int, int]:
    block_d = max(16, triton.next_power_of_2(D))
    if device.type == "cuda":
        return 16, max(16, 4096 // block_d), block_d
    return 4, 8, block_d  # interpreter: small tiles keep CPU emulation fast


class TritonSampledCE(torch.autograd.Function):
    """Same contract as :class:`seqrec.losses.sampled.FusedSampledLoss` in ``softmax`` mode (per-row loss)."""

    @staticmethod
    def forward(  # type: ignore[override]
        ctx,
        h: Tensor,  # (M, D)
        w: Tensor,  # (V, D)
        t: Tensor,  # (M,) int64
        neg: Tensor,  # (K,) or (M, K) int32
        log_q: Tensor | None,  # same shape as neg, fp32
        label_smoothing: float,
        filter_eps: float | None,
    ) -> Tensor:
        M, D = h.shape
        K = neg.shape[-1]
        h_, w_ = h.contiguous(), w.contiguous()
        neg2 = neg.expand(M, K) if neg.dim() == 1 else neg.contiguous()
        q2 = None
        if log_q is not None:
            q2 = (log_q.expand(M, K) if log_q.dim() == 1 else log_q.contiguous()).float()
        t32 = t.to(torch.int32).contiguous()
        z_pos = (h_.float() * w_[t].float()).sum(dim=1).contiguous()  # (M,)
        lse = torch.empty(M, device=h.device, dtype=torch.float32)
        smooth = label_smoothing > 0
        zsum = torch.empty(M, device=h.device, dtype=torch.float32) if smooth else lse
        cnt = torch.empty(M, device=h.device, dtype=torch.float32) if smooth else lse
        bm, bk, bd = _blocks(h.device, D)
        grid = (triton.cdiv(M, bm),)
        q_arg = q2 if q2 is not None else lse
        q_strides = (q2.stride(0), q2.stride(1)) if q2 is not None else (0, 0)
        _cce_neg_fwd[grid](
            h_, w_, neg2, q_arg, t32, z_pos, lse, zsum, cnt,
            M, K, D,
            h_.stride(0), w_.stride(0), neg2.stride(0), neg2.stride(1), *q_strides,
            HAS_LOGQ=q2 is not None, SMOOTH=smooth, BLOCK_M=bm, BLOCK_K=bk, BLOCK_D=bd,
        )  # fmt: skip
        if smooth:
            loss = lse - (1 - label_smoothing) * z_pos - label_smoothing * zsum / cnt
        else:
            loss = lse - z_pos
        ctx.save_for_backward(h_, w_, t, neg2, q2, z_pos, lse, cnt if smooth else None)
        ctx.cfg = (label_smoothing, filter_eps, q_strides)
        return loss

    @staticmethod
    def backward(ctx, grad_out: Tensor):  # type: ignore[override]
        h, w, t, neg2, q2, z_pos, lse, cnt = ctx.saved_tensors
        label_smoothing, filter_eps, q_strides = ctx.cfg
        M, D = h.shape
        K = neg2.shape[1]
        need_h, need_w = ctx.needs_input_grad[0], ctx.needs_input_grad[1]
        g = grad_out.float().contiguous()
        grad_h = torch.empty(M, D, device=h.device, dtype=torch.float32)
        grad_w = torch.zeros(w.shape, device=w.device, dtype=torch.float32) if need_w else grad_h
        smooth = label_smoothing > 0
        bm, bk, bd = _blocks(h.device, D)
        _cce_neg_bwd[(triton.cdiv(M, bm),)](
            h, w, neg2, q2 if q2 is not None else lse, t.to(torch.int32), lse, cnt if smooth else lse, g,
            grad_h, grad_w,
            M, K, D, float(label_smoothing), float(filter_eps or 0.0),
            h.stride(0), w.stride(0), neg2.stride(0), neg2.stride(1), *q_strides, grad_w.stride(0),
            HAS_LOGQ=q2 is not None, SMOOTH=smooth, FILTER=bool(filter_eps), NEED_W=need_w,
            BLOCK_M=bm, BLOCK_K=bk, BLOCK_D=bd,
        )  # fmt: skip
        # positive term: d loss / d z⁺ = softmax(z⁺) - (1 - eps) - eps / n
        cp = torch.exp(z_pos - lse) - (1 - label_smoothing)
        if smooth:
            cp = cp - label_smoothing / cnt
        if filter_eps:
            cp = cp.masked_fill(cp.abs() < filter_eps, 0.0)
        cp = cp * g
        w_t = w[t].float()
        gh = (grad_h + cp[:, None] * w_t).to(h.dtype) if need_h else None
        gw = None
        if need_w:
            grad_w.index_add_(0, t, cp[:, None] * h.float())
            gw = grad_w.to(w.dtype)
        return gh, gw, None, None, None, None, None


def triton_sampled_ce(
    h: Tensor, w: Tensor, t: Tensor, neg: Tensor, log_q: Tensor | None, label_smoothing: float, filter_eps
) -> Tensor:
    """Per-row CE⁻ losses via the Triton kernels (inputs already compacted to valid rows)."""
    return TritonSampledCE.apply(h, w, t, neg, log_q, float(label_smoothing), filter_eps)
