"""In-batch item-item contrastive loss vs a plain per-row loop (duplicates masked from negatives, padding)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from seqrec.losses.contrastive import in_batch_contrastive_loss


def reference(seq: torch.Tensor, item: torch.Tensor, ids: torch.Tensor, tau: float) -> torch.Tensor:
    """Row by row: -log softmax over {positive} + {columns holding a different, real item}."""
    losses = []
    for b in range(len(ids)):
        if ids[b] == 0:
            continue
        pos = F.cosine_similarity(seq[b], item[b], dim=0) / tau
        terms = [pos]
        for c in range(len(ids)):
            if c != b and ids[c] != 0 and ids[c] != ids[b]:
                terms.append(F.cosine_similarity(seq[b], item[c], dim=0) / tau)
        losses.append(torch.logsumexp(torch.stack(terms), 0) - pos)
    return torch.stack(losses).mean()


def test_matches_loop_reference_with_duplicates_and_padding() -> None:
    g = torch.Generator().manual_seed(0)
    B, D = 12, 16
    seq = torch.randn(B, D, generator=g, dtype=torch.float64) * 3
    item = torch.randn(B, D, generator=g, dtype=torch.float64)
    ids = torch.tensor([5, 7, 5, 0, 9, 7, 7, 3, 0, 11, 12, 5])
    a = seq.clone().requires_grad_()
    b = item.clone().requires_grad_()
    got = in_batch_contrastive_loss(a, b, ids, temperature=0.05)
    got.backward()
    a2 = seq.clone().requires_grad_()
    b2 = item.clone().requires_grad_()
    want = reference(a2, b2, ids, 0.05)
    want.backward()
    torch.testing.assert_close(got.double(), want, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(a.grad, a2.grad, rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(b.grad, b2.grad, rtol=1e-4, atol=1e-6)
    assert b.grad[3].abs().sum() == 0 and b.grad[8].abs().sum() == 0  # padding columns are never negatives


def test_distinct_items_equal_plain_cross_entropy() -> None:
    g = torch.Generator().manual_seed(1)
    seq, item = torch.randn(8, 4, generator=g), torch.randn(8, 4, generator=g)
    logits = F.normalize(seq, dim=-1) @ F.normalize(item, dim=-1).T / 0.1
    want = F.cross_entropy(logits, torch.arange(8))
    got = in_batch_contrastive_loss(seq, item, torch.arange(1, 9), temperature=0.1)
    torch.testing.assert_close(got, want)


def test_all_duplicates_give_zero_loss_and_all_padding_is_zero_not_nan() -> None:
    seq, item = torch.randn(4, 3), torch.randn(4, 3)
    same = in_batch_contrastive_loss(seq, item, torch.full((4,), 2))
    assert math.isclose(same.item(), 0.0, abs_tol=1e-6)  # the positive is the only candidate
    a = torch.randn(4, 3, requires_grad=True)
    loss = in_batch_contrastive_loss(a, item, torch.zeros(4, dtype=torch.long))
    loss.backward()
    assert loss.item() == 0.0 and torch.equal(a.grad, torch.zeros_like(a))
