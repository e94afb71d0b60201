"""GRU4Rec: causality, left padding handled exactly, and the shift path equals the packed reference."""

from __future__ import annotations

import torch
from model_helpers import MAX_LEN, assert_causal, make_batch, tiny

from seqrec.models.gru4rec import right_align


def test_causal_later_item_never_changes_earlier_outputs() -> None:
    assert_causal(tiny("gru4rec").eval(), make_batch(5, MAX_LEN), (2, 6, MAX_LEN - 1))


def test_left_padding_equals_unpadded_sequence() -> None:
    model = tiny("gru4rec").eval()
    seq = torch.tensor([[5, 9, 2, 7, 31]])
    with torch.no_grad():
        alone = model(seq)  # (1, 5, D) no padding at all
        padded = model(torch.cat([torch.zeros(1, MAX_LEN - 5, dtype=torch.long), seq], dim=1))
    torch.testing.assert_close(padded[:, -5:], alone, rtol=0, atol=1e-6)
    assert (padded[:, :-5] == model.proj.bias).all()  # padded positions carry no state


def test_shift_forward_equals_packed_reference() -> None:
    model = tiny("gru4rec").eval()
    items = make_batch(7, MAX_LEN, seed=3)
    with torch.no_grad():
        torch.testing.assert_close(model(items), model.forward_packed(items), rtol=0, atol=1e-6)


def test_right_align_round_trip() -> None:
    items = make_batch(6, 9)
    valid = items != 0
    to_right, to_left = right_align(items, valid)
    right = items.gather(1, to_right)
    lengths = valid.sum(1)
    for row, n in zip(right, lengths, strict=True):
        assert (row[:n] != 0).all() and (row[n:] == 0).all()
    assert torch.equal(right.gather(1, to_left), items)
