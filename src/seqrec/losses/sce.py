"""Scalable Cross-Entropy (SCE; Mezentsev, Gusak, Oseledets & Frolov, RecSys 2024, arXiv:2409.18721).

SCE approximates full CE by keeping, for every row, only the negatives most likely to have large logits,
found without scoring the catalogue: a random Gaussian projection ``Omega`` (D, n_b) maps rows and items onto
``n_b`` random directions; items with the largest projection on direction ``j`` form bucket ``j``, and a row
competes against the items of the bucket it projects onto most strongly. The CE is then computed over the
positive and those bucketed hard negatives (accidental hits masked), with the fused CCE⁻ machinery of
:mod:`seqrec.losses.sampled`, so no ``(N, V)`` or ``(N, K, D)`` tensor is materialised.

Deviations from the paper's algorithm, chosen for a fixed and bounded cost per row:
* each row goes to its argmax bucket (the paper takes the top ``b_x`` rows of every bucket, so a row may
  land in several buckets or none); every row gets exactly ``K = num_negatives`` (the paper's ``b_y``)
  negatives and contributes to the loss;
* no ``mix_x`` option (random mixing of the rows before bucketing).
The selection is not differentiated (as in the paper); gradients flow through the selected logits only.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor


def default_num_buckets(num_rows: int) -> int:
    return max(1, int(round(math.sqrt(num_rows))))


@torch.no_grad()
def sce_negatives(
    hidden: Tensor,  # (M, D) valid rows
    weight: Tensor,  # (V, D), row 0 = padding
    num_negatives: int,  # K: items per bucket
    num_buckets: int | None = None,  # n_b (None: sqrt(M))
    generator: torch.Generator | None = None,
) -> Tensor:  # (M, K) int32 item ids in [1, V)
    """Bucketed hard negatives via one random projection (see module docstring)."""
    M, D = hidden.shape
    V = weight.shape[0]
    K = min(num_negatives, V - 1)
    nb = num_buckets or default_num_buckets(M)
    gen_device = generator.device if generator is not None else hidden.device
    omega = torch.randn(D, nb, generator=generator, device=gen_device).to(hidden.device)  # (D, n_b)
    bucket = (hidden.detach().float() @ omega).argmax(dim=1)  # (M,) bucket of each row
    proj = weight[1:].detach().float() @ omega  # (V-1, n_b)
    items = proj.topk(K, dim=0).indices.T + 1  # (n_b, K) item ids of each bucket
    return items.to(torch.int32)[bucket]  # (M, K)
