"""Item-item contrastive loss with in-batch negatives (Recformer pre-training, Li et al. KDD 2023).

For a batch of B sequence states ``s_b`` and the states ``i_b`` of each sequence's next item encoded alone,

    loss_b = -log( exp(cos(s_b, i_b) / tau) / sum_{c in N(b)} exp(cos(s_b, i_c) / tau) ),

N(b) = {b} plus every c whose item differs from b's: a column holding the same item as the positive (two
users with the same next item in one batch) is the positive again, so it is masked out of the negatives
rather than pushed away. Rows whose item id is 0 are padding: ignored, and never a negative.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


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
