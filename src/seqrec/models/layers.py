"""Layers shared by several models: the pre-LN transformer block of SASRec and BERT4Rec.

The block takes its sizes as arguments (not a model's config), so each model passes what it has; the attention
mask decides causal (SASRec) or bidirectional (BERT4Rec). Attribute names (``ln1``, ``qkv``, ``proj``, ``ln2``,
``ffn``) are part of the checkpoint format: state-dict keys read ``blocks.<i>.<name>``.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn


class TransformerBlock(nn.Module):
    """Pre-LN transformer block: multi-head self-attention (``scaled_dot_product_attention``) + GELU FFN."""

    def __init__(self, hidden: int, heads: int, ffn_mult: int, dropout: float) -> None:
        super().__init__()
        self.heads = heads  # hidden % heads == 0 is checked by the model configs (ConfigError at config time)
        self.dropout = dropout
        self.ln1 = nn.LayerNorm(hidden)
        self.qkv = nn.Linear(hidden, 3 * hidden)
        self.proj = nn.Linear(hidden, hidden)
        self.ln2 = nn.LayerNorm(hidden)
        self.ffn = nn.Sequential(
            nn.Linear(hidden, ffn_mult * hidden),
            nn.GELU(),
            nn.Linear(ffn_mult * hidden, hidden),
            nn.Dropout(dropout),
        )
        self.resid_drop = nn.Dropout(dropout)

    def forward(self, x: Tensor, attn_mask: Tensor) -> Tensor:  # x (B, T, D), attn_mask (B, 1, T, T) bool
        B, T, D = x.shape
        q, k, v = self.qkv(self.ln1(x)).split(D, dim=-1)
        q, k, v = (t.view(B, T, self.heads, D // self.heads).transpose(1, 2) for t in (q, k, v))  # (B, H, T, d)
        y = F.scaled_dot_product_attention(
            q, k, v, attn_mask=attn_mask, dropout_p=self.dropout if self.training else 0.0
        )  # (B, H, T, d)
        y = y.transpose(1, 2).reshape(B, T, D)
        x = x + self.resid_drop(self.proj(y))
        return x + self.ffn(self.ln2(x))
