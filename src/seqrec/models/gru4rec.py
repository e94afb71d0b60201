"""GRU4Rec: session-based recommendation with recurrent neural networks (Hidasi et al., ICLR 2016).

Item embedding -> dropout -> multi-layer GRU -> linear projection to D; the state after item t scores item t +
1 by a dot product with the (tied) item embedding table. This is the sequence-wise cross-entropy variant used
by later reproductions (e.g. Hidasi & Czapp, RecSys 2023, "The effect of third party implementations on
reproducibility"; Klenitskiy & Vasilev, RecSys 2023): every position of a training window is a prediction, and
the loss is full-catalogue cross-entropy (see ``seqrec.losses``).

Deviations from the paper:
- no session-parallel mini-batches or BPR/TOP1 losses: windows of user sequences, full CE at every position;
- the output item table is tied with the input embedding (GRU4Rec's later "constrained embedding" option), and
  a linear projection maps the GRU state (``gru_hidden``) to the embedding size D;
- item embeddings are scaled by sqrt(D) as in SASRec (they are initialised with a small std).

Left padding. Sequences are left-padded with 0, but a GRU started at the zero state does not stay at zero
through padding (the gate biases move it), so padding would leak into every later state. ``forward`` therefore
shifts each row so that its real items start at position 0 (right padding), runs the GRU over the whole block
and shifts the outputs back; trailing padding can never influence earlier steps of a recurrence, so the real
positions see exactly the unpadded sequence. This costs two gathers. The alternative, ``pack_padded_sequence``
on the flipped rows, gives the same outputs (``forward_packed``, kept as the reference and tested against) but
was slower on CPU. Measured with B=128, T=50, D=64, gru_hidden=128, uniform lengths 1..50, one thread,
forward+backward, 40 interleaved runs: shift median 94 ms (min 83), packed median 108 ms (min 84). Packing
skips the padded steps but sorts rows and runs a shrinking batch per step, which the CPU GRU kernel handles no
faster; on ML-100K most windows are full, so packing saves even less.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor, nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from seqrec.models.base import SequenceModel


@dataclass
class GRU4RecConfig:
    hidden: int = 64  # D: item embedding size (input and tied output table)
    gru_hidden: int = 128  # GRU state size (projected to D after the last layer)
    layers: int = 1  # stacked GRU layers
    dropout: float = 0.2  # dropout on embeddings, between GRU layers and on the GRU output
    init_std: float = 0.02  # normal init of the embedding and the output projection


def right_align(items: Tensor, valid: Tensor) -> tuple[Tensor, Tensor]:
    """Index that moves each left-padded row's real items to the front: ``out = x.gather(1, idx)``.

    Returns ``(to_right, to_left)``, both (B, T) int64: ``x.gather(1, to_right)`` turns left padding into
    right padding and ``y.gather(1, to_left)`` undoes it.
    """
    B, T = items.shape
    pad = T - valid.sum(dim=1, keepdim=True)  # (B, 1) leading pads per row
    ar = torch.arange(T, device=items.device).unsqueeze(0)  # (1, T)
    to_right = (ar + pad) % T  # right-padded position j reads left-padded position j + pad
    to_left = (ar - pad) % T
    return to_right, to_left


class GRU4Rec(SequenceModel):
    Config = GRU4RecConfig
    padding_invariant = True  # the GRU runs over right-aligned real items; padding trails
    PRESETS = {
        "small": {"hidden": 64, "gru_hidden": 128, "layers": 1},  # ~0.19M params on ML-100K (1682 items)
        "base": {"hidden": 256, "gru_hidden": 256, "layers": 2},
        "large": {"hidden": 512, "gru_hidden": 512, "layers": 3},
    }

    def __init__(self, config: GRU4RecConfig, num_items: int, max_len: int) -> None:
        super().__init__()
        self.config = config
        self.num_items = num_items
        self.max_len = max_len
        self.item_emb = nn.Embedding(num_items + 1, config.hidden, padding_idx=0)  # row 0 = padding
        self.emb_drop = nn.Dropout(config.dropout)
        self.gru = nn.GRU(
            config.hidden,
            config.gru_hidden,
            num_layers=config.layers,
            batch_first=True,
            dropout=config.dropout if config.layers > 1 else 0.0,
        )
        self.out_drop = nn.Dropout(config.dropout)
        self.proj = nn.Linear(config.gru_hidden, config.hidden)
        nn.init.normal_(self.item_emb.weight, std=config.init_std)
        with torch.no_grad():
            self.item_emb.weight[0].zero_()
        nn.init.normal_(self.proj.weight, std=config.init_std)
        nn.init.zeros_(self.proj.bias)

    def item_weight(self) -> Tensor:  # (num_items + 1, D), tied with the input embedding
        return self.item_emb.weight

    def _embed(self, items: Tensor) -> Tensor:  # (B, T) -> (B, T, D)
        return self.emb_drop(self.item_emb(items) * math.sqrt(self.config.hidden))

    def forward(self, items: Tensor) -> Tensor:  # (B, T) -> (B, T, D)
        if items.shape[1] > self.max_len:
            items = items[:, -self.max_len :]
        valid = items != 0  # (B, T)
        to_right, to_left = right_align(items, valid)
        x = self._embed(items.gather(1, to_right))  # (B, T, D) real items first, padding last
        y, _ = self.gru(x)  # (B, T, H); trailing padding never reaches the real steps before it
        y = y.gather(1, to_left.unsqueeze(-1).expand(-1, -1, y.shape[-1]))  # (B, T, H) back to left padding
        y = y * valid.unsqueeze(-1)  # padded positions output exactly zero
        return self.proj(self.out_drop(y))  # (B, T, D)

    def forward_packed(self, items: Tensor) -> Tensor:  # (B, T) -> (B, T, D); reference for ``forward``
        """Same as ``forward`` via ``pack_padded_sequence`` on right-aligned rows (slower on CPU)."""
        if items.shape[1] > self.max_len:
            items = items[:, -self.max_len :]
        B, T = items.shape
        valid = items != 0
        lengths = valid.sum(dim=1)  # (B,)
        to_right, to_left = right_align(items, valid)
        x = self._embed(items.gather(1, to_right))  # (B, T, D)
        # Empty rows cannot be packed: give them length 1 (their output is zeroed below).
        packed = pack_padded_sequence(x, lengths.clamp(min=1).cpu(), batch_first=True, enforce_sorted=False)
        y, _ = self.gru(packed)
        y, _ = pad_packed_sequence(y, batch_first=True, total_length=T)  # (B, T, H), zeros past each length
        y = y.gather(1, to_left.unsqueeze(-1).expand(-1, -1, y.shape[-1]))
        y = y * valid.unsqueeze(-1)
        return self.proj(self.out_drop(y))  # (B, T, D)
