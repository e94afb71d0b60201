"""BERT4Rec: Cloze masking (a masked position never sees its label), bidirectionality, [MASK] at inference."""

from __future__ import annotations

import torch
from model_helpers import MAX_LEN, NUM_ITEMS, make_batch, tiny


def _masked(seed: int = 0, **overrides):
    model = tiny("bert4rec", **overrides)
    window = make_batch(64, MAX_LEN + 1, seed=seed)
    inputs, targets = model.training_example(window, torch.Generator().manual_seed(5))
    return model, window, inputs, targets


def test_masking_contract() -> None:
    model, window, inputs, targets = _masked()
    seq = window[:, 1:]
    masked = targets != 0
    assert model.mask_id == NUM_ITEMS + 1
    assert (inputs[masked] == model.mask_id).all()  # a masked position reads [MASK], never its label
    assert torch.equal(targets[masked], seq[masked])  # the label is the original item
    assert torch.equal(inputs[~masked], seq[~masked])  # everything else is untouched
    nonempty = (seq != 0).any(dim=1)
    assert (masked.any(dim=1) == nonempty).all()  # >= 1 target per non-empty row, none for empty rows
    rate = masked.sum() / (seq != 0).sum()
    assert 0.1 < rate < 0.35  # mask_prob = 0.2 plus the forced last items


def test_masking_is_deterministic_given_the_generator() -> None:
    _, _, a, ta = _masked()
    _, _, b, tb = _masked()
    assert torch.equal(a, b) and torch.equal(ta, tb)


def test_changing_a_masked_label_changes_no_output() -> None:
    model, window, inputs, targets = _masked()
    model.eval()
    relabelled = window.clone()
    seq = relabelled[:, 1:]
    masked = targets != 0
    seq[masked] = (seq[masked] % NUM_ITEMS) + 1  # a different real item at every masked position
    inputs2, targets2 = model.training_example(relabelled, torch.Generator().manual_seed(5))
    assert torch.equal(inputs2, inputs)  # same draw, the labels are invisible
    assert not torch.equal(targets2, targets)
    with torch.no_grad():
        torch.testing.assert_close(model(inputs2), model(inputs), rtol=0, atol=0)


def test_last_item_masking_masks_only_the_last_item() -> None:
    _, window, inputs, targets = _masked(last_item_prob=1.0)
    seq = window[:, 1:]
    nonempty = seq[:, -1] != 0
    assert torch.equal(targets[:, -1], seq[:, -1])
    assert (targets[:, :-1] == 0).all()
    assert (inputs[nonempty, -1] == NUM_ITEMS + 1).all()


def test_encoder_is_bidirectional() -> None:
    model = tiny("bert4rec").eval()
    items = make_batch(2, MAX_LEN)
    with torch.no_grad():
        base = model(items)
        changed = items.clone()
        changed[0, -1] = 49 if items[0, -1] != 49 else 48
        assert not torch.allclose(model(changed)[0, 0], base[0, 0])  # a later item does reach position 0


def test_padding_is_invisible() -> None:
    model = tiny("bert4rec").eval()
    seq = torch.tensor([[5, 9, 2, 7]])
    with torch.no_grad():
        padded = model(torch.cat([torch.zeros(1, MAX_LEN - 4, dtype=torch.long), seq], dim=1))
        alone = model(seq)  # positions count from the right, so the real items keep their positions
    torch.testing.assert_close(padded[:, -4:], alone, rtol=0, atol=1e-5)


def test_prediction_hidden_appends_mask() -> None:
    model = tiny("bert4rec").eval()
    history = make_batch(3, MAX_LEN)
    with torch.no_grad():
        expected = model(torch.cat([history[:, 1:], torch.full((3, 1), model.mask_id)], dim=1))[:, -1]
        torch.testing.assert_close(model.prediction_hidden(history), expected)


def test_item_weight_excludes_mask_row_and_is_tied() -> None:
    model = tiny("bert4rec")
    w = model.item_weight()
    assert w.shape == (NUM_ITEMS + 1, 16)
    assert w.data_ptr() == model.item_emb.weight.data_ptr()
