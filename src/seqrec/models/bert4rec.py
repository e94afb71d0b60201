"""BERT4Rec: sequential recommendation with bidirectional encoder representations (Sun et al., CIKM 2019).

A bidirectional transformer encoder (no causal mask; padding keys are masked) with learned absolute positions,
trained as a Cloze task: random items of the input are replaced by a dedicated [MASK] token (id ``num_items +
1``) and the model predicts the original items at those positions. At inference the history is shifted left by
one, [MASK] is appended, and the hidden state at that last position scores the next item.

Petrov & Macdonald (RecSys 2022, "A Systematic Review and Replicability Study of BERT4Rec") showed that most
failed reproductions trained far too briefly: BERT4Rec needs many more epochs than SASRec because each
sequence only yields ``mask_prob * T`` targets per pass. The defaults here assume the trainer's early stopping
with a generous patience; the shipped recipe ``configs/bert4rec-ml-100k.yaml`` is tuned to reach accuracy on
ML-100K.

Deviations from the paper:
- full-catalogue cross-entropy over the real items (the [MASK] row is never a candidate), computed by
  ``seqrec.losses`` from ``(hidden, item_weight, targets)``; hence no output bias vector and no extra
  "projection + GELU + LayerNorm" head (the final LayerNorm plays that role);
- pre-LayerNorm blocks (``models.layers.TransformerBlock``, as SASRec, without the causal mask) with a final
  LayerNorm; item embeddings scaled by sqrt(D) before adding positions;
- no 80/10/10 random/keep replacement: a masked position always reads [MASK] (as in the original code);
- optional "last item masking" (``last_item_prob``): with that probability a training row masks only its last
  item, exactly the inference task (used by several reproductions to speed up convergence).
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
class BERT4RecConfig:
    hidden: int = 64  # D: embedding and hidden size
    layers: int = 2  # transformer blocks
    heads: int = 2  # attention heads (hidden must divide by heads)
    ffn_mult: int = 4  # feed-forward inner size = ffn_mult * hidden
    dropout: float = 0.1  # dropout on embeddings, attention, feed-forward
    init_std: float = 0.02  # normal init of embeddings and linear weights
    mask_prob: float = 0.2  # probability that a real item of a training window is replaced by [MASK]
    last_item_prob: float = 0.0  # probability that a training row masks only its last item (0 = off)

    def check(self) -> None:
        if self.hidden % self.heads:
            raise ConfigError(f"config key 'model.heads': model.hidden ({self.hidden}) must be divisible by "
                              f"model.heads ({self.heads})")
        if not 0.0 < self.mask_prob <= 1.0:
            raise ConfigError(f"config key 'model.mask_prob': must be in (0, 1], got {self.mask_prob}")
        if not 0.0 <= self.last_item_prob <= 1.0:
            raise ConfigError(f"config key 'model.last_item_prob': must be in [0, 1], got {self.last_item_prob}")


class BERT4Rec(SequenceModel):
    Config = BERT4RecConfig
    padding_invariant = True  # padding keys are masked; positions count from the right
    PRESETS = {
        "small": {"hidden": 64, "layers": 2, "heads": 2},  # ~0.21M params on ML-100K (1682 items, max_len 50)
        "base": {"hidden": 256, "layers": 2, "heads": 4},
        "large": {"hidden": 512, "layers": 4, "heads": 8},
        # Scaling-study sizes (bert4rec-scaling-report: 5M, 85.11M, 130.10M, 429.15M). Each block has ~12 D^2
        # parameters, so the transformer dominates; totals below are on ML-100K (1682 items, max_len 50) and
        # grow by D per catalogue item. Train the large ones with bf16/16-mixed + activation checkpointing.
        "5m": {"hidden": 256, "layers": 6, "heads": 4},  # ~5.2M
        "85m": {"hidden": 768, "layers": 12, "heads": 12},  # ~86M (BERT-base shape)
        "130m": {"hidden": 1024, "layers": 10, "heads": 16},  # ~128M
        "430m": {"hidden": 1024, "layers": 34, "heads": 16},  # ~430M
    }

    def __init__(self, config: BERT4RecConfig, num_items: int, max_len: int) -> None:
        super().__init__()
        config.check()
        self.config = config
        self.num_items = num_items
        self.max_len = max_len
        self.mask_id = num_items + 1
        # Rows 0..num_items are padding + items (the scoring table); row num_items + 1 is [MASK].
        self.item_emb = nn.Embedding(num_items + 2, config.hidden, padding_idx=0)
        self.pos_emb = nn.Embedding(max_len, config.hidden)
        self.emb_drop = nn.Dropout(config.dropout)
        self.blocks = nn.ModuleList(
            TransformerBlock(config.hidden, config.heads, config.ffn_mult, config.dropout) for _ in range(config.layers)
        )
        self.ln_f = nn.LayerNorm(config.hidden)
        self.apply(lambda m: init_normal(m, config.init_std))

    def item_weight(self) -> Tensor:  # (num_items + 1, D), tied with the input embedding; [MASK] excluded
        return self.item_emb.weight[: self.num_items + 1]

    def forward(self, items: Tensor) -> Tensor:  # (B, T) ids in 0..num_items + 1 -> (B, T, D)
        B, T = items.shape
        if T > self.max_len:
            items = items[:, -self.max_len :]
            T = self.max_len
        valid = items != 0  # (B, T); [MASK] is a real token
        pos = torch.arange(self.max_len - T, self.max_len, device=items.device)  # newest item = last position
        x = self.item_emb(items) * math.sqrt(self.config.hidden) + self.pos_emb(pos)  # (B, T, D)
        x = self.emb_drop(x) * valid.unsqueeze(-1)
        # Bidirectional: every query sees every real key; itself always, so a fully padded row has no NaN.
        eye = torch.eye(T, dtype=torch.bool, device=items.device)
        attn_mask = (valid.unsqueeze(1) | eye).unsqueeze(1)  # (B, 1, T, T)
        for block in self.blocks:
            x = block(x, attn_mask)
        return self.ln_f(x)  # (B, T, D)

    def training_example(
        self, window: Tensor, generator: torch.Generator | None = None
    ) -> tuple[Tensor, Tensor]:
        """Cloze masking of the last T items of ``window`` (B, T + 1) -> ``(inputs, targets)``, both (B, T).

        Each real item is masked with probability ``mask_prob``; a non-empty row with no draw masks its last
        item. With probability ``last_item_prob`` a row masks only its last item. Targets hold the original
        item at masked positions and 0 elsewhere. All randomness comes from ``generator``.
        """
        seq = window[:, 1:]  # (B, T)
        B, T = seq.shape
        valid = seq != 0  # (B, T)
        device = seq.device
        draw = torch.rand(B, T, generator=generator, device=device) < self.config.mask_prob  # (B, T)
        masked = draw & valid
        last = torch.zeros_like(masked)
        last[:, -1] = valid[:, -1]  # left padding: a non-empty row's last position is its newest item
        if self.config.last_item_prob > 0:
            only_last = torch.rand(B, 1, generator=generator, device=device) < self.config.last_item_prob
            masked = torch.where(only_last, last, masked)
        masked = masked | (last & ~masked.any(dim=1, keepdim=True))  # at least one target per non-empty row
        inputs = torch.where(masked, torch.full_like(seq, self.mask_id), seq)
        targets = torch.where(masked, seq, torch.zeros_like(seq))
        return inputs, targets

    def prediction_hidden(self, history: Tensor) -> Tensor:  # (B, T) left-padded -> (B, D)
        """Drop the oldest position, append [MASK], return the hidden state at [MASK]."""
        mask = torch.full_like(history[:, :1], self.mask_id)  # (B, 1)
        return self.forward(torch.cat([history[:, 1:], mask], dim=1))[:, -1, :]
