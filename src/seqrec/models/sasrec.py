"""SASRec: self-attentive sequential recommendation (Kang & McAuley, ICDM 2018).

Causal self-attention over the item sequence with learned absolute positions; the hidden state at position t
predicts item t + 1 by a dot product with the (tied) item embedding table.

Deviations from the paper, all standard in later reproductions (e.g. Klenitskiy & Vasilev, RecSys 2023, "Turning
Dross Into Gold Loss: is BERT4Rec really better than SASRec?"):
- trained with full-catalogue cross-entropy (see ``seqrec.losses``) instead of one-negative BCE; BCE stays
  available as ``loss.name=bce``;
- pre-LayerNorm blocks with a final LayerNorm, GELU feed-forward (the paper's post-LN/ReLU is a config flag away
  in spirit but not kept: pre-LN trains stably without warm-up);
- item embeddings are scaled by sqrt(D) before adding positions.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from seqrec.errors import ConfigError
from seqrec.models.base import SequenceModel, init_normal
from seqrec.models.layers import TransformerBlock


@dataclass
class SASRecConfig:
    hidden: int = 64  # D: embedding and hidden size
    layers: int = 2  # self-attention blocks
    heads: int = 1  # attention heads (hidden must divide by heads)
    ffn_mult: int = 4  # feed-forward inner size = ffn_mult * hidden
    dropout: float = 0.2  # dropout on embeddings, attention, feed-forward
    init_std: float = 0.02  # normal init of embeddings and linear weights
    tie_weights: bool = True  # score with the input item table; False adds a separate output table (gSASRec's
    # default: binary losses with many negatives push the scoring table hard, which a tied table also feeds back
    # into the inputs)

    def check(self) -> None:
        if self.hidden % self.heads:
            raise ConfigError(f"config key 'model.heads': model.hidden ({self.hidden}) must be divisible by "
                              f"model.heads ({self.heads})")


class SASRec(SequenceModel):
    Config = SASRecConfig
    padding_invariant = True  # padding keys are masked; positions count from the right
    PRESETS = {
        "small": {"hidden": 64, "layers": 2, "heads": 1},  # ~0.2M params + catalogue x 64 (ML-100K: ~0.2M)
        "base": {"hidden": 256, "layers": 2, "heads": 4},
        "large": {"hidden": 512, "layers": 4, "heads": 8},
    }

    def __init__(self, config: SASRecConfig, num_items: int, max_len: int) -> None:
        super().__init__()
        self.config = config
        self.num_items = num_items
        self.max_len = max_len
        self.item_emb = nn.Embedding(num_items + 1, config.hidden, padding_idx=0)  # row 0 = padding
        self.pos_emb = nn.Embedding(max_len, config.hidden)
        self.emb_drop = nn.Dropout(config.dropout)
        config.check()
        self.blocks = nn.ModuleList(
            TransformerBlock(config.hidden, config.heads, config.ffn_mult, config.dropout) for _ in range(config.layers)
        )
        self.ln_f = nn.LayerNorm(config.hidden)
        self.out_emb = None if config.tie_weights else nn.Embedding(num_items + 1, config.hidden, padding_idx=0)
        self.apply(lambda m: init_normal(m, config.init_std))

    def item_weight(self) -> Tensor:  # (num_items + 1, D), tied with the input embedding unless tie_weights=False
        return self.item_emb.weight if self.out_emb is None else self.out_emb.weight

    def forward(self, items: Tensor) -> Tensor:  # (B, T) -> (B, T, D)
        B, T = items.shape
        if T > self.max_len:
            items = items[:, -self.max_len :]
            T = self.max_len
        valid = items != 0  # (B, T)
        # Positions count from the right so the newest item always has the same position at train and eval.
        pos = torch.arange(self.max_len - T, self.max_len, device=items.device)
        x = self.item_emb(items) * math.sqrt(self.config.hidden) + self.pos_emb(pos)  # (B, T, D)
        x = self.emb_drop(x) * valid.unsqueeze(-1)
        causal = torch.ones(T, T, dtype=torch.bool, device=items.device).tril()  # (T, T)
        # Keys must be causal and real items; each query may always attend to itself, so a fully padded row
        # has a non-empty softmax and never produces NaN.
        eye = torch.eye(T, dtype=torch.bool, device=items.device)
        attn_mask = ((causal & valid.unsqueeze(1)) | eye).unsqueeze(1)  # (B, 1, T, T)
        for block in self.blocks:
            x = block(x, attn_mask)
        return self.ln_f(x)  # (B, T, D)
