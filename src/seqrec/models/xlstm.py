"""xLSTM for sequential recommendation (Beck et al., NeurIPS 2024, "xLSTM: Extended Long Short-Term Memory").

A stack of residual xLSTM blocks over the item embeddings, followed by a final LayerNorm; the state after item
t scores item t + 1 by a dot product with the tied item table (trained like SASRec, with full cross-entropy at
every position). Two block kinds, as in the paper (Section 2.4, Figures 10 and 11):

- **mLSTM block** (pre-up-projection): LayerNorm -> up-projection to ``2 * inner`` (a branch and an output
  gate ``z``) -> causal depthwise conv1d + swish -> block-diagonal q, k (from the conv output) and v (from the
  branch) -> mLSTM cell with an exponential input gate, a sigmoid (or exp) forget gate, the max-stabiliser
  ``m`` and a matrix memory ``C`` with normaliser ``n`` -> per-head group norm -> learnable skip from the conv
  output -> ``* swish(z)`` -> down-projection -> dropout, added to the residual stream.
- **sLSTM block** (post-up-projection), at the indices in ``slstm_at``: LayerNorm -> causal conv1d + swish
  feeding the input/forget gates -> sLSTM cell (scalar memory, exponential gating, stabiliser, block-diagonal
  recurrent matrices per head) -> group norm, added to the residual stream; then a pre-LN gated GELU
  feed-forward (factor 4/3), added to the residual stream.

The mLSTM cell is implemented twice from the paper's equations: ``mlstm_parallel`` (training; a (B, H, T, T)
decay matrix built from log-space cumulative forget gates, stabilised by its row maximum, Appendix A.3) and
``mlstm_recurrent`` (the step-by-step recurrence, the reference; ``mlstm_mode="recurrent"`` uses it in
forward). They agree to float rounding (``tests/models/test_xlstm.py``). The sLSTM cell has only the recurrent
form.

Why not the ``xlstm`` PyPI package (2.0.6): it would install without a new torch or CUDA wheels (a pip dry-run
resolves to xlstm, mlstm_kernels, ninja and einops), but its CPU path for the mLSTM block is
``parallel_stabilized_simple``, the same ~40 lines of equations as ``mlstm_parallel`` here, without a padding
mask, and its sLSTM defaults to a CUDA extension compiled with ninja ("vanilla" is the CPU loop). Measured on
one CPU thread, cell forward+backward at B=128, H=4, T=50, d=32 (15 interleaved runs, median): package 48-58
ms, ``mlstm_parallel`` 55-66 ms (the difference is the padding mask); equal outputs in float64 (1e-13). A ~10%
gain on a third of the block's time does not pay for two dependencies and unmasked padding, so the cells are
written out here.

Deviations from the paper / reference code:
- left padding is masked inside the cells: padded positions feed zeros to the convolutions, are excluded as
  keys of the mLSTM (their decay-matrix entries are -inf) and leave the sLSTM state untouched, so the real
  positions see exactly the unpadded sequence; padded rows output zeros;
- the recurrent mLSTM starts from ``m = -inf`` (the reference code starts from 0), which makes it equal to the
  parallel form exactly (with ``m = 0`` the two differ whenever ``exp(-m)`` bounds the normaliser);
- item embeddings are scaled by sqrt(D) (as in SASRec); no positional embeddings (the recurrence orders
  items);
- linear layers use the "small init" normal(0, sqrt(2 / (5 * fan_in))) of the reference code; the gate
  projections start at zero weights with forget-gate biases spread over [3, 6] (long memory at the start).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from seqrec.errors import ConfigError
from seqrec.models.base import SequenceModel

EPS = 1e-6  # added to the mLSTM normaliser


@dataclass
class XLSTMConfig:
    hidden: int = 64  # D: embedding and residual-stream size
    layers: int = 2  # residual xLSTM blocks (one name across models: model.layers)
    slstm_at: list[int] = field(default_factory=list)  # indices of layers that are sLSTM blocks (others mLSTM)
    heads: int = 4  # heads of the mLSTM and sLSTM cells (inner size and hidden must divide by heads)
    proj_factor: float = 2.0  # mLSTM up-projection: inner size = proj_factor * hidden
    conv_kernel: int = 4  # causal depthwise conv1d kernel size (0 = no convolution)
    qkv_blocksize: int = 4  # mLSTM q/k/v are block-diagonal with this block size (0 = dense)
    ffn_factor: float = 4 / 3  # sLSTM block gated feed-forward: inner size = ceil(ffn_factor * hidden)
    forget_gate: Literal["sigmoid", "exp"] = "sigmoid"  # forget-gate activation of both cells
    mlstm_mode: Literal["parallel", "recurrent"] = "parallel"  # how forward computes the mLSTM cell
    dropout: float = 0.1  # dropout on embeddings and block outputs
    init_std: float = 0.02  # normal init of the item embedding

    def check(self) -> None:
        bad = [i for i in self.slstm_at if not 0 <= i < self.layers]
        if bad:
            raise ConfigError(f"config key 'model.slstm_at': layer indices {bad} out of range 0..{self.layers - 1}")
        inner = round(self.proj_factor * self.hidden)
        if inner % self.heads:
            raise ConfigError(f"config key 'model.heads': xLSTM inner size {inner} (proj_factor * hidden) must "
                              f"divide by model.heads ({self.heads})")
        if self.slstm_at and self.hidden % self.heads:
            raise ConfigError(f"config key 'model.heads': model.hidden ({self.hidden}) must be divisible by "
                              f"model.heads ({self.heads}) for sLSTM blocks")
        if self.qkv_blocksize and inner % self.qkv_blocksize:
            raise ConfigError(f"config key 'model.qkv_blocksize': xLSTM inner size {inner} must be divisible by "
                              f"the block size {self.qkv_blocksize}")


# --- mLSTM cell: parallel and recurrent forms ---------------------------------------------------------------


def mlstm_parallel(q: Tensor, k: Tensor, v: Tensor, i_pre: Tensor, log_f: Tensor, valid: Tensor) -> Tensor:
    """Parallel mLSTM: q, k, v (B, H, T, d); i_pre, log_f (B, H, T); valid (B, T) bool -> h (B, H, T, d).

    h_t = sum_j C_tj v_j / max(|sum_j C_tj|, exp(-m_t)), with C_tj = (q_t . k_j / sqrt(d)) exp(logD_tj - m_t),
    logD_tj = sum_{s=j+1..t} log f_s + i_j for j <= t (real j only) and m_t = max_j logD_tj.
    """
    B, H, T, d = q.shape
    cum = torch.cumsum(log_f, dim=-1)  # (B, H, T)
    log_fg = cum.unsqueeze(-1) - cum.unsqueeze(-2)  # (B, H, T, T): sum of log f over (j, t]
    causal = torch.ones(T, T, dtype=torch.bool, device=q.device).tril()  # (T, T)
    keep = causal & valid[:, None, None, :]  # (B, 1, T, T) real keys at or before the query
    log_d = torch.where(keep, log_fg + i_pre.unsqueeze(-2), float("-inf"))  # (B, H, T, T)
    m = log_d.amax(dim=-1, keepdim=True)  # (B, H, T, 1) stabiliser
    m = torch.where(torch.isfinite(m), m, torch.zeros_like(m))  # a query with no real key (padding) -> 0
    decay = torch.exp(log_d - m)  # (B, H, T, T)
    c = (q @ k.transpose(-2, -1)) * (decay / math.sqrt(d))  # (B, H, T, T)
    normaliser = torch.maximum(c.sum(dim=-1, keepdim=True).abs(), torch.exp(-m))  # (B, H, T, 1)
    return (c / (normaliser + EPS)) @ v  # (B, H, T, d)


def mlstm_recurrent(q: Tensor, k: Tensor, v: Tensor, i_pre: Tensor, log_f: Tensor, valid: Tensor) -> Tensor:
    """Step-by-step mLSTM (the reference): same arguments and result as :func:`mlstm_parallel`.

    m_t = max(log f_t + m_{t-1}, i_t); C_t = f' C_{t-1} + i' k_t v_t^T; n_t = f' n_{t-1} + i' k_t with
    f' = exp(log f_t + m_{t-1} - m_t), i' = exp(i_t - m_t), k scaled by 1/sqrt(d);
    h_t = q_t^T C_t / max(|q_t . n_t|, exp(-m_t)). Padded steps leave (C, n, m) unchanged.
    """
    B, H, T, d = q.shape
    mem = q.new_zeros(B, H, d, d)  # C: (B, H, d, d) matrix memory, rows indexed by the key dimension
    norm = q.new_zeros(B, H, d)  # n: (B, H, d)
    m = q.new_full((B, H), float("-inf"))  # stabiliser; -inf = nothing stored yet
    out = []
    for t in range(T):
        kt = k[:, :, t] / math.sqrt(d)  # (B, H, d)
        m_new = torch.maximum(log_f[:, :, t] + m, i_pre[:, :, t])  # (B, H)
        f_act = torch.exp(log_f[:, :, t] + m - m_new).unsqueeze(-1)  # (B, H, 1)
        i_act = torch.exp(i_pre[:, :, t] - m_new).unsqueeze(-1)  # (B, H, 1)
        kv = kt.unsqueeze(-1) * v[:, :, t].unsqueeze(-2)  # (B, H, d, d) k_t v_t^T
        mem_new = f_act.unsqueeze(-1) * mem + i_act.unsqueeze(-1) * kv
        norm_new = f_act * norm + i_act * kt
        real = valid[:, t].view(B, 1)  # (B, 1)
        mem = torch.where(real.view(B, 1, 1, 1), mem_new, mem)
        norm = torch.where(real.view(B, 1, 1), norm_new, norm)
        m = torch.where(real, m_new, m)
        qt = q[:, :, t]  # (B, H, d)
        num = (qt.unsqueeze(-1) * mem).sum(dim=-2)  # (B, H, d) = q^T C
        den = torch.maximum((qt * norm).sum(dim=-1).abs(), torch.exp(-m)) + EPS  # (B, H)
        out.append(num / den.unsqueeze(-1))
    return torch.stack(out, dim=2)  # (B, H, T, d)


# --- shared pieces ------------------------------------------------------------------------------------------


def small_init_(weight: Tensor, fan_in: int) -> None:
    nn.init.normal_(weight, std=math.sqrt(2.0 / (5.0 * fan_in)))


class HeadwiseLinear(nn.Module):
    """Block-diagonal linear map without bias: ``size`` features in blocks of ``blocksize`` (0: dense)."""

    def __init__(self, size: int, blocksize: int) -> None:
        super().__init__()
        bs = blocksize or size
        if size % bs:
            raise ValueError(f"xLSTM inner size {size} must be divisible by the block size {bs}")
        self.blocks, self.bs = size // bs, bs
        self.weight = nn.Parameter(torch.empty(self.blocks, bs, bs))  # (blocks, in, out)
        small_init_(self.weight, bs)

    def forward(self, x: Tensor) -> Tensor:  # (B, T, size) -> (B, T, size)
        B, T, _ = x.shape
        y = torch.einsum("btni,nio->btno", x.view(B, T, self.blocks, self.bs), self.weight)
        return y.reshape(B, T, -1)


class CausalConv1d(nn.Module):
    """Depthwise causal convolution over time: output t sees inputs t - kernel + 1 .. t."""

    def __init__(self, channels: int, kernel: int) -> None:
        super().__init__()
        self.kernel = kernel
        self.conv = nn.Conv1d(channels, channels, kernel, groups=channels, padding=kernel - 1)

    def forward(self, x: Tensor) -> Tensor:  # (B, T, C) -> (B, T, C)
        T = x.shape[1]
        return self.conv(x.transpose(1, 2))[..., :T].transpose(1, 2)


class HeadNorm(nn.Module):
    """Per-head normalisation (GroupNorm with one group per head) with a learned scale, no bias."""

    def __init__(self, size: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.weight = nn.Parameter(torch.ones(size))

    def forward(self, h: Tensor) -> Tensor:  # (B, H, T, d) -> (B, T, H * d)
        B, H, T, d = h.shape
        h = F.layer_norm(h, (d,), eps=1e-5)
        return h.transpose(1, 2).reshape(B, T, H * d) * self.weight


def _log_forget(pre: Tensor, kind: str) -> Tensor:
    return F.logsigmoid(pre) if kind == "sigmoid" else pre


def _gate_init_(igate: nn.Linear, fgate: nn.Linear, heads: int) -> None:
    nn.init.zeros_(igate.weight)
    nn.init.normal_(igate.bias, std=0.1)
    nn.init.zeros_(fgate.weight)
    with torch.no_grad():
        fgate.bias.copy_(torch.linspace(3.0, 6.0, heads))


# --- blocks -------------------------------------------------------------------------------------------------


class MLSTMBlock(nn.Module):
    """Residual pre-up-projection block around the mLSTM cell."""

    def __init__(self, cfg: XLSTMConfig) -> None:
        super().__init__()
        D, H = cfg.hidden, cfg.heads
        inner = round(cfg.proj_factor * D)
        if inner % H:
            raise ValueError(f"xLSTM inner size {inner} (proj_factor * hidden) must divide by heads ({H})")
        self.cfg, self.inner, self.heads = cfg, inner, H
        self.ln = nn.LayerNorm(D)
        self.up = nn.Linear(D, 2 * inner)
        self.conv = CausalConv1d(inner, cfg.conv_kernel) if cfg.conv_kernel > 0 else None
        self.q = HeadwiseLinear(inner, cfg.qkv_blocksize)
        self.k = HeadwiseLinear(inner, cfg.qkv_blocksize)
        self.v = HeadwiseLinear(inner, cfg.qkv_blocksize)
        self.igate = nn.Linear(3 * inner, H)
        self.fgate = nn.Linear(3 * inner, H)
        self.norm = HeadNorm(inner, H)
        self.skip = nn.Parameter(torch.ones(inner))  # learnable skip from the conv output
        self.down = nn.Linear(inner, D)
        self.drop = nn.Dropout(cfg.dropout)
        small_init_(self.up.weight, D)
        nn.init.zeros_(self.up.bias)
        small_init_(self.down.weight, inner)
        nn.init.zeros_(self.down.bias)
        _gate_init_(self.igate, self.fgate, H)

    def forward(self, x: Tensor, valid: Tensor) -> Tensor:  # x (B, T, D), valid (B, T) -> (B, T, D)
        B, T, _ = x.shape
        branch, z = self.up(self.ln(x)).chunk(2, dim=-1)  # (B, T, I) each
        branch = branch * valid.unsqueeze(-1)  # padding feeds zeros to the conv, like its own zero padding
        conv = F.silu(self.conv(branch)) if self.conv is not None else branch  # (B, T, I)
        q, k, v = self.q(conv), self.k(conv), self.v(branch)  # (B, T, I)
        gate_in = torch.cat([q, k, v], dim=-1)  # (B, T, 3I)
        i_pre = self.igate(gate_in).transpose(1, 2)  # (B, H, T)
        log_f = _log_forget(self.fgate(gate_in), self.cfg.forget_gate).transpose(1, 2)  # (B, H, T)
        q, k, v = (t.view(B, T, self.heads, -1).transpose(1, 2) for t in (q, k, v))  # (B, H, T, d)
        cell = mlstm_parallel if self.cfg.mlstm_mode == "parallel" else mlstm_recurrent
        h = self.norm(cell(q, k, v, i_pre, log_f, valid))  # (B, T, I)
        h = (h + self.skip * conv) * F.silu(z)
        return x + self.drop(self.down(h))


class SLSTMBlock(nn.Module):
    """Residual post-up-projection block: sLSTM cell, then a gated GELU feed-forward."""

    def __init__(self, cfg: XLSTMConfig) -> None:
        super().__init__()
        D, H = cfg.hidden, cfg.heads
        if D % H:
            raise ValueError(f"model.hidden ({D}) must be divisible by model.heads ({H}) for sLSTM blocks")
        self.cfg, self.heads, self.dh = cfg, H, D // H
        self.ln = nn.LayerNorm(D)
        self.conv = CausalConv1d(D, cfg.conv_kernel) if cfg.conv_kernel > 0 else None
        # Input weights of the gates i, f (from the conv) and z, o (from the input), block-diagonal per head.
        self.w = nn.ModuleList(HeadwiseLinear(D, self.dh) for _ in range(4))
        self.r = nn.Parameter(torch.zeros(4, H, self.dh, self.dh))  # recurrent weights (gate, head, in, out)
        self.bias = nn.Parameter(torch.zeros(4, D))  # gate biases i, f, z, o
        self.norm = HeadNorm(D, H)
        self.drop = nn.Dropout(cfg.dropout)
        ffn = math.ceil(cfg.ffn_factor * D)
        self.ln2 = nn.LayerNorm(D)
        self.ffn_up = nn.Linear(D, 2 * ffn)
        self.ffn_down = nn.Linear(ffn, D)
        small_init_(self.r, self.dh)
        with torch.no_grad():
            self.bias[1].copy_(torch.linspace(3.0, 6.0, H).repeat_interleave(self.dh))
        small_init_(self.ffn_up.weight, D)
        nn.init.zeros_(self.ffn_up.bias)
        small_init_(self.ffn_down.weight, ffn)
        nn.init.zeros_(self.ffn_down.bias)

    def cell(self, wx: Tensor, valid: Tensor) -> Tensor:  # wx (4, B, T, D) gate inputs -> h (B, H, T, dh)
        _, B, T, D = wx.shape
        H, dh = self.heads, self.dh
        h = wx.new_zeros(B, D)
        c = wx.new_zeros(B, D)
        n = wx.new_zeros(B, D)
        m = wx.new_full((B, D), float("-inf"))
        out = []
        for t in range(T):
            rec = torch.einsum("bhi,ghio->gbho", h.view(B, H, dh), self.r).reshape(4, B, D)
            i_pre, f_pre, z_pre, o_pre = wx[:, :, t] + rec + self.bias.unsqueeze(1)  # (B, D) each
            log_f = _log_forget(f_pre, self.cfg.forget_gate)
            m_new = torch.maximum(log_f + m, i_pre)
            i_act = torch.exp(i_pre - m_new)
            f_act = torch.exp(log_f + m - m_new)
            c_new = f_act * c + i_act * torch.tanh(z_pre)
            n_new = f_act * n + i_act  # >= exp(0) = 1 at the first real step, so never 0
            h_new = torch.sigmoid(o_pre) * c_new / n_new
            real = valid[:, t].unsqueeze(-1)  # (B, 1)
            h = torch.where(real, h_new, h)
            c = torch.where(real, c_new, c)
            n = torch.where(real, n_new, n)
            m = torch.where(real, m_new, m)
            out.append(h_new * real)
        return torch.stack(out, dim=1).view(B, T, H, dh).transpose(1, 2)  # (B, H, T, dh)

    def forward(self, x: Tensor, valid: Tensor) -> Tensor:  # x (B, T, D), valid (B, T) -> (B, T, D)
        y = self.ln(x) * valid.unsqueeze(-1)  # (B, T, D)
        conv = F.silu(self.conv(y)) if self.conv is not None else y
        wi, wf = self.w[0](conv), self.w[1](conv)
        wz, wo = self.w[2](y), self.w[3](y)
        h = self.norm(self.cell(torch.stack([wi, wf, wz, wo]), valid))  # (B, T, D)
        x = x + self.drop(h)
        a, b = self.ffn_up(self.ln2(x)).chunk(2, dim=-1)
        return x + self.drop(self.ffn_down(F.gelu(a) * b))


class XLSTM(SequenceModel):
    Config = XLSTMConfig
    PRESETS = {
        "small": {"hidden": 64, "layers": 4, "heads": 4},  # ~0.23M params on ML-100K (1682 items)
        "base": {"hidden": 256, "layers": 4, "heads": 4},
        "large": {"hidden": 512, "layers": 8, "heads": 8, "slstm_at": [1]},
    }

    def __init__(self, config: XLSTMConfig, num_items: int, max_len: int) -> None:
        super().__init__()
        config.check()
        self.config = config
        self.num_items = num_items
        self.max_len = max_len
        self.item_emb = nn.Embedding(num_items + 1, config.hidden, padding_idx=0)  # row 0 = padding
        self.emb_drop = nn.Dropout(config.dropout)
        self.blocks = nn.ModuleList(
            SLSTMBlock(config) if i in config.slstm_at else MLSTMBlock(config) for i in range(config.layers)
        )
        self.ln_f = nn.LayerNorm(config.hidden)
        nn.init.normal_(self.item_emb.weight, std=config.init_std)
        with torch.no_grad():
            self.item_emb.weight[0].zero_()

    def item_weight(self) -> Tensor:  # (num_items + 1, D), tied with the input embedding
        return self.item_emb.weight

    def forward(self, items: Tensor) -> Tensor:  # (B, T) -> (B, T, D)
        if items.shape[1] > self.max_len:
            items = items[:, -self.max_len :]
        valid = items != 0  # (B, T)
        x = self.emb_drop(self.item_emb(items) * math.sqrt(self.config.hidden))  # (B, T, D)
        for block in self.blocks:
            x = block(x, valid)
        return self.ln_f(x) * valid.unsqueeze(-1)  # (B, T, D); padded positions are exactly zero
