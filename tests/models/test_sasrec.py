"""SASRec: causality (a later item never changes an earlier output) and NaN-free padding."""

from __future__ import annotations

import torch
from model_helpers import MAX_LEN, assert_causal, make_batch, tiny


def test_causal_later_item_never_changes_earlier_outputs() -> None:
    items = make_batch(4, MAX_LEN)
    items[0] = torch.arange(1, MAX_LEN + 1)
    assert_causal(tiny("sasrec").eval(), items, (3, 7, MAX_LEN - 1))


def test_padding_does_not_change_real_outputs() -> None:
    model = tiny("sasrec").eval()
    seq = torch.tensor([[5, 9, 2, 7]])
    with torch.no_grad():
        short = model(torch.cat([torch.zeros(1, MAX_LEN - 4, dtype=torch.long), seq], dim=1))
        other = seq.new_tensor([[0, 0, 0, 0, 0, 0, 0, 0]])
        changed = model(torch.cat([other, seq], dim=1))
    torch.testing.assert_close(short[:, -4:], changed[:, -4:], rtol=0, atol=1e-6)


def test_fully_padded_batch_is_finite_in_train_mode() -> None:
    model = tiny("sasrec").train()
    items = torch.zeros(3, MAX_LEN, dtype=torch.long)
    hidden = model(items)
    hidden.sum().backward()
    assert torch.isfinite(hidden).all()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)
