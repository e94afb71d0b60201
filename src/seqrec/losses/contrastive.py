"""Item-item contrastive loss with in-batch negatives (Recformer pre-training, Li et al. KDD 2023).

For a batch of B sequence states ``s_b`` and the states ``i_b`` of each sequence's next item encoded alone,

    loss_b = -log( exp(cos(s_b, i_b) / tau) / sum_{c in N(b)} exp(cos(s_b, i_c) / tau) ),

N(b) = {b} plus every c whose item differs from b's: a column holding the same item as the positive (two
users with the same next item in one batch) is the positive again, so it is masked out of the negatives
rather than pushed away. Rows whose item id is 0 are padding: ignored, and never a negative.

:func:`pretrain_losses` is Recformer's pre-training objective, L = L_IIC + lambda * L_MLM, on one
:class:`~seqrec.data.text.PretrainBatch`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import Tensor

if TYPE_CHECKING:
    from seqrec.data.text import PretrainBatch
    from seqrec.models.recformer import Recformer


def in_batch_contrastive_loss(
    seq: Tensor,  # (B, D) sequence representations (any scale; cosine is taken here)
    item: Tensor,  # (B, D) next-item representations, row b = the positive of row b
    item_ids: Tensor,  # (B,) int64 item ids; 0 = padding row
    *,
    temperature: float = 0.05,
) -> Tensor:
    """Mean over non-padding rows of the in-batch softmax CE (0 with zero gradients if there is none)."""
    if seq.dim() != 2 or seq.shape != item.shape or item_ids.shape != seq.shape[:1]:
        raise ValueError(
            f"expected seq (B, D), item (B, D), item_ids (B,), got {tuple(seq.shape)}, {tuple(item.shape)}, "
            f"{tuple(item_ids.shape)}"
        )
    valid = item_ids != 0  # (B,)
    logits = F.normalize(seq.float(), dim=-1) @ F.normalize(item.float(), dim=-1).T / temperature  # (B, B)
    same = item_ids[:, None] == item_ids[None, :]  # (B, B)
    eye = torch.eye(len(item_ids), dtype=torch.bool, device=seq.device)
    drop = (same & ~eye) | ~valid[None, :]  # duplicates of the positive, and padding columns
    logits = logits.masked_fill(drop, float("-inf"))
    if not bool(valid.any()):
        return seq.sum() * 0.0 + item.sum() * 0.0
    targets = torch.arange(len(item_ids), device=seq.device)
    return F.cross_entropy(logits[valid], targets[valid])


def pretrain_losses(model: Recformer, batch: PretrainBatch, *, shared_pass: bool = False) -> dict[str, Tensor]:
    """L = L_IIC + mlm_weight * L_MLM for one batch -> {"loss", "iic", "mlm"} (scalars; "loss" has the graph).

    IIC: each sequence's [CLS] vs its next item encoded alone, cos / tau, in-batch negatives (above). MLM: the
    masked sequence's token states at predicted positions -> the tied LM head -> cross-entropy. ``shared_pass``
    takes the IIC sequence state from the masked pass too (one encoder pass fewer; the paper's code encodes
    the clean sequence separately, the default here).
    """
    cfg = model.config
    masked = model.encode(batch.sequences, tokens=batch.mlm_inputs)  # (B, L, D)
    seq = masked[:, 0] if shared_pass else model.encode_sequences(batch.sequences)  # (B, D)
    item = model.encode_sequences(batch.items)  # (B, D)
    iic = in_batch_contrastive_loss(seq, item, batch.item_ids, temperature=cfg.temperature)
    picked = batch.mlm_labels != -100  # (B, L)
    if bool(picked.any()):
        mlm = F.cross_entropy(model.mlm_logits(masked[picked]).float(), batch.mlm_labels[picked])
    else:
        mlm = masked.sum() * 0.0 + model.mlm_head.bias.sum() * 0.0  # nothing picked: a zero keeping the graph whole
    return {"loss": iic + cfg.mlm_weight * mlm, "iic": iic.detach(), "mlm": mlm.detach()}
